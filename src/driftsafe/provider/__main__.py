"""Start the lab provider as a Terraform plugin: ``python -m driftsafe.provider``."""

from __future__ import annotations

import os
import sys
import time

# Set DRIFTSAFE_PROVIDER_TRACE=FILE to append one JSON line per provider process
# (start, imports done, exit): how bench/provider.py counts starts and their cost.
TRACE_ENV = "DRIFTSAFE_PROVIDER_TRACE"
# Set DRIFTSAFE_PROVIDER_PROFILE=DIR to write a cProfile dump per provider process.
PROFILE_ENV = "DRIFTSAFE_PROVIDER_PROFILE"


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


def _drop_trace_calls() -> None:
    """Make trace-level log calls free when the level is above TRACE.

    Foundation routes ``trace()`` through structlog's unfiltered ``msg()``, so each
    trace call in pyvider's per-RPC paths runs the whole processor chain before a
    late level filter drops it: thousands per plan, most of a plan's CPU time
    after imports. Below TRACE they are dropped anyway; drop them at the call.
    """
    from provide.foundation.logger import core

    def _nop(*args: object, **kwargs: object) -> None:
        return None

    core.GlobalLoggerProxy.trace = _nop  # type: ignore[method-assign]
    core.FoundationLogger.trace = _nop  # type: ignore[method-assign]


def main() -> None:
    started = time.time()
    # pyvider refuses to serve when argv[0] does not look like a Terraform
    # provider (it guards against a human running it by hand); under `-m`,
    # argv[0] is this file, so present the launcher's name instead.
    sys.argv = ["terraform-provider-lab", "provide", *sys.argv[1:]]
    # Logs must never reach stdout: that is go-plugin's handshake channel.
    os.environ.setdefault("PYVIDER_LOG_LEVEL", "WARNING")
    os.environ.setdefault("PROVIDE_LOG_LEVEL", os.environ["PYVIDER_LOG_LEVEL"])
    from pyvider.cli.__main__ import main as pyvider_main

    if os.environ["PYVIDER_LOG_LEVEL"].upper() != "TRACE":
        _drop_trace_calls()

    imported = time.time()
    trace = os.environ.get(TRACE_ENV)
    profile_dir = os.environ.get(PROFILE_ENV)
    try:
        if profile_dir:
            import cProfile

            cProfile.runctx(
                "pyvider_main()", globals(), {"pyvider_main": pyvider_main},
                os.path.join(profile_dir, f"provider-{os.getpid()}.prof"),
            )
        else:
            pyvider_main()
    finally:
        if trace:
            _trace(trace, started, imported)


if __name__ == "__main__":
    main()
