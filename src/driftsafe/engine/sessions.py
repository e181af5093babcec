"""Serve the lab provider to one whole Terraform run, through ``TF_REATTACH_PROVIDERS``.

Terraform starts a provider three times per ``plan`` and four per ``apply``, and
each start of a Python provider costs tens of milliseconds even when forked warm:
more than Terraform's own work on a small root. When driftsafe runs Terraform on
a root that uses the lab provider, it starts the provider once, before
Terraform, and hands its address to Terraform as an unmanaged ("reattached")
provider: every provider instance of that run is then a connection to the same
process instead of a new process.

The session belongs to exactly one run, so concurrent runs (on one root or
several) never share a provider, and nothing a run told its provider (secrets
included) outlives it: the provider learns the run's pid and exits when that
process ends, however it ends (the drill SIGKILLs applies). When anything about
the session fails, the run goes ahead the ordinary way, with Terraform starting
the provider itself. ``DRIFTSAFE_PROVIDER_SESSIONS=0`` turns sessions off.

The provider side is ``driftsafe.provider`` (launched by module name: the engine
never imports it); its first stdout line is the address it serves on.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from driftsafe.engine.cliconfig import PROVIDER_MODULE, PROVIDER_SOURCE, canonical_python

REATTACH_ENV = "TF_REATTACH_PROVIDERS"
SESSION_ENV = "DRIFTSAFE_PROVIDER_SESSION"  # read by driftsafe.provider.launcher
# A warm start answers in ~50 ms; a cold one imports pyvider first (~0.5 s, more
# on a loaded machine). Past this, the run starts its providers itself.
READY_TIMEOUT = 20.0
# Terraform subcommands that start providers. `init` must never see a reattached
# provider: it then writes no lock file entry for it (tried: no lock file at all).
PROVIDER_COMMANDS = frozenset(
    [
        "apply",
        "console",
        "destroy",
        "import",
        "plan",
        "providers",
        "refresh",
        "show",
        "state",
        "test",
        "validate",
    ]
)
LOCK_FILE = ".terraform.lock.hcl"


@dataclass
class Session:
    """A provider process waiting for (or serving) its one Terraform run."""

    proc: subprocess.Popen[bytes]
    env: dict[str, str]  # what the run's environment needs: TF_REATTACH_PROVIDERS

    def attach(self, pid: int) -> None:
        """Tell the provider which process is its run; it exits when that one does."""
        self._send(f"{pid}\n".encode())

    def close(self) -> None:
        """The run never started: the provider sees stdin close and exits."""
        self._send(b"")

    def _send(self, data: bytes) -> None:
        stdin = self.proc.stdin
        try:
            if stdin is not None:
                if data:
                    stdin.write(data)
                stdin.close()
        except OSError:
            pass  # the provider is gone already; its exit is reaped below
        # Reap it without holding anyone up (the run may outlive this call by hours).
        threading.Thread(target=self._reap, name="provider-session", daemon=True).start()

    def _reap(self) -> None:
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def root_dir(args: Sequence[str], cwd: str | os.PathLike[str]) -> Path:
    for arg in args:
        if arg.startswith("-chdir="):
            return Path(cwd) / arg.split("=", 1)[1]
        if not arg.startswith("-"):
            break
    return Path(cwd)


def uses_lab_provider(root: Path) -> bool:
    """Does this initialised root depend on the lab provider (its lock file says)?"""
    try:
        return f'"{PROVIDER_SOURCE}"' in (root / LOCK_FILE).read_text()
    except OSError:
        return False


def runs_providers(args: Sequence[str]) -> bool:
    positional = [a for a in args if not a.startswith("-")]
    if not positional or positional[0] not in PROVIDER_COMMANDS:
        return False
    # `providers lock` and `providers mirror` install packages: only `schema` serves.
    return positional[0] != "providers" or positional[1:2] == ["schema"]


def wanted(args: Sequence[str], cwd: str | os.PathLike[str], env: Mapping[str, str]) -> bool:
    if env.get(REATTACH_ENV):
        return False  # someone reattaches providers already (a debugger): leave it be
    return runs_providers(args) and uses_lab_provider(root_dir(args, cwd))


def start(
    args: Sequence[str], cwd: str | os.PathLike[str], env: Mapping[str, str]
) -> Session | None:
    """A provider session for this run, or None: the run then starts providers itself."""
    if not wanted(args, cwd, env):
        return None
    try:
        proc = subprocess.Popen(
            [canonical_python(), "-m", PROVIDER_MODULE],
            cwd=root_dir(args, cwd),
            env={**env, SESSION_ENV: "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            # Signals meant for driftsafe's process group are not the provider's;
            # it ends with its run.
            start_new_session=True,
        )
    except OSError:
        return None
    session = Session(proc, {})
    address = _read_address(proc)
    if address is None:
        proc.kill()
        session.close()
        return None
    session.env[REATTACH_ENV] = json.dumps({PROVIDER_SOURCE: address})
    return session


def _read_address(proc: subprocess.Popen[bytes]) -> dict[str, object] | None:
    """The provider's first line, as a go-plugin reattach config; None if it never comes."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], READY_TIMEOUT)
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            return None
        line += chunk
    try:
        info = json.loads(line)
        return {
            "Protocol": "grpc",
            "ProtocolVersion": int(info["protocol"]),
            "Pid": int(info["pid"]),
            # Test mode: Terraform must not try to stop a provider it did not start;
            # it ends with the run (see module docstring).
            "Test": True,
            "Addr": {"Network": str(info["network"]), "String": str(info["address"])},
        }
    except (ValueError, KeyError, TypeError):
        return None
