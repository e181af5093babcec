"""Stop, start and restart the machine's PostgreSQL cluster, always leaving it running.

Used by bench/faults.py (a PostgreSQL restart is one of its faults) and by the one test
that takes PostgreSQL down (tests/server/test_server_outages.py). Needs root (or the
cluster's owner) and Debian's ``pg_ctlcluster``.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def cluster() -> tuple[str, str] | None:
    """(version, name) of the local cluster, or None when it cannot be controlled here."""
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_isready") is None:
        return None
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*") if p.is_dir())
    if not versions:
        return None
    return versions[-1], "main"


def _ctl(action: str) -> None:
    found = cluster()
    if found is None:
        raise RuntimeError("no pg_ctlcluster/pg_isready here: PostgreSQL cannot be controlled")
    version, name = found
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action],
        check=True,
        capture_output=True,
        timeout=120,
    )


def ready(host: str = "127.0.0.1", port: int = 5432) -> bool:
    proc = subprocess.run(
        ["pg_isready", "-h", host, "-p", str(port), "-q"], capture_output=True, timeout=30
    )
    return proc.returncode == 0


def wait_ready(timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return True
        time.sleep(0.1)
    return ready()


def ensure_running() -> None:
    """Start the cluster if it is down and wait until it accepts connections."""
    if ready():
        return
    with contextlib.suppress(subprocess.CalledProcessError):
        _ctl("start")
    if not wait_ready():
        raise RuntimeError("PostgreSQL did not come back: start it by hand (pg_ctlcluster)")


def restart() -> None:
    """``pg_ctlcluster ... restart``; running again (pg_isready) when this returns."""
    try:
        _ctl("restart")
    finally:
        ensure_running()


@contextlib.contextmanager
def stopped() -> Iterator[None]:
    """PostgreSQL down for the ``with`` body; started again however the body ends."""
    try:
        _ctl("stop")
        yield
    finally:
        ensure_running()
