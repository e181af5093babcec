"""Start the lab provider as a Terraform plugin: ``python -m driftsafe.provider``.

Terraform starts a provider several times per command, and a cold start of a
pyvider provider is mostly imports (~0.5 s). So by default this process is a
thin launcher: it hands its stdio, environment and directory to a warm fork
server (see ``forkserver.py``), which forks an already-imported provider for it.
When no server is running yet, this start is served cold and a server is
started for the next ones. ``DRIFTSAFE_PROVIDER_FORKSERVER=0`` always serves cold.
"""

from __future__ import annotations

import os
import sys
import time

from driftsafe.provider.plugin import serve


def exit_when_orphaned(interval: float = 0.5) -> None:
    """Exit as soon as the process that started us (Terraform) is gone.

    When Terraform is killed mid-apply (the drill does exactly that) nobody will
    ever ask this provider to stop; without this it would linger forever.
    """
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def main() -> None:
    started = time.time()
    args = sys.argv[1:]
    exit_when_orphaned()
    from driftsafe.provider import forkserver

    code = forkserver.launch(args, started) if forkserver.enabled() else None
    if code is None:
        code = serve(args, started)
    sys.exit(code)


if __name__ == "__main__":
    main()
