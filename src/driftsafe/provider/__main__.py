"""Start the lab provider as a Terraform plugin: ``python -m driftsafe.provider``."""

from __future__ import annotations

import os
import sys
import time

# Set DRIFTSAFE_PROVIDER_TRACE=FILE to append one JSON line per provider process
# (start, imports done, exit): how bench/provider.py counts starts and their cost.
TRACE_ENV = "DRIFTSAFE_PROVIDER_TRACE"


def _trace(path: str, started: float, imported: float) -> None:
    import json

    with open(path, "a", encoding="utf-8") as handle:
        handle.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "start": started,
                    "imported": imported,
                    "end": time.time(),
                }
            )
            + "\n"
        )


def main() -> None:
    started = time.time()
    # pyvider refuses to serve when argv[0] does not look like a Terraform
    # provider (it guards against a human running it by hand); under `-m`,
    # argv[0] is this file, so present the launcher's name instead.
    sys.argv = ["terraform-provider-lab", "provide", *sys.argv[1:]]
    # Logs must never reach stdout: that is go-plugin's handshake channel.
    os.environ.setdefault("PYVIDER_LOG_LEVEL", "WARNING")
    from pyvider.cli.__main__ import main as pyvider_main

    imported = time.time()
    trace = os.environ.get(TRACE_ENV)
    try:
        pyvider_main()
    finally:
        if trace:
            _trace(trace, started, imported)


if __name__ == "__main__":
    main()
