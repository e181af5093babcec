"""The pyvider plugin itself: imports, log levels, and serving one Terraform start.

Both ways a provider process starts use this module: a cold start from the
launcher (``__main__``), and a child forked by the warm ``forkserver``. pyvider is
imported inside the functions, so importing this module stays cheap for the
launcher, which usually hands its start to the fork server.
"""

from __future__ import annotations

import os
import sys
import time

# Set DRIFTSAFE_PROVIDER_TRACE=FILE to append one JSON line per provider process
# (start, imports done, exit): how bench/provider.py counts starts and their cost.
TRACE_ENV = "DRIFTSAFE_PROVIDER_TRACE"
# Set DRIFTSAFE_PROVIDER_PROFILE=DIR to write a cProfile dump per provider process.
PROFILE_ENV = "DRIFTSAFE_PROVIDER_PROFILE"
LAUNCHER_NAME = "terraform-provider-lab"


def _trace(path: str, started: float, imported: float, forked: bool) -> None:
    import json

    record = {
        "pid": os.getpid(),
        "start": started,
        "imported": imported,
        "end": time.time(),
        "forked": forked,
    }
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


_LEVELS = ("trace", "debug", "info", "warning", "error", "critical")


def _drop_calls_below(level: str) -> None:
    """Make log calls below ``level`` free.

    Foundation routes ``trace()`` through structlog's unfiltered ``msg()``, and its
    level filter sits late in the processor chain, so every trace/debug/info call
    in pyvider's per-RPC paths runs the whole chain before being dropped:
    thousands per plan, most of a plan's CPU time after imports. They are dropped
    anyway; drop them at the call.
    """
    from provide.foundation.logger import core

    def _nop(*args: object, **kwargs: object) -> None:
        return None

    wanted = level.lower()
    if wanted not in _LEVELS:
        return
    for name in _LEVELS[: _LEVELS.index(wanted)]:
        setattr(core.GlobalLoggerProxy, name, _nop)
        setattr(core.FoundationLogger, name, _nop)


def set_log_defaults(environ: dict[str, str] | os._Environ[str]) -> None:
    # Logs go to stderr at WARNING: stdout is go-plugin's handshake channel, and
    # lower levels cost real time per RPC.
    environ.setdefault("PYVIDER_LOG_LEVEL", "WARNING")
    environ.setdefault("PROVIDE_LOG_LEVEL", environ["PYVIDER_LOG_LEVEL"])


def preload() -> None:
    """Import everything a provider start needs (the fork server calls this once)."""
    set_log_defaults(os.environ)
    import pyvider.cli.__main__  # noqa: F401
    import pyvider.handler  # noqa: F401
    import pyvider.protocols.tfprotov6.handlers  # noqa: F401
    import pyvider.rpcplugin  # noqa: F401

    from driftsafe.provider.components import resource_classes

    resource_classes()
    _drop_calls_below(os.environ["PYVIDER_LOG_LEVEL"])


def reload_env_config() -> None:
    """Re-read pyvider's plugin settings from this process's environment.

    pyvider reads them (PLUGIN_PROTOCOL_VERSIONS, PLUGIN_CLIENT_CERT, ...) into a
    module global at import. A forked start must see its own launcher's
    environment, not the one the fork server imported under; the global is
    updated in place because other modules hold a reference to it.
    """
    import attrs
    from pyvider.rpcplugin import config

    fresh = config.RPCPluginConfig.from_env()
    for field in attrs.fields(type(fresh)):
        object.__setattr__(config.rpcplugin_config, field.name, getattr(fresh, field.name))


def serve(args: list[str], started: float, forked: bool = False) -> int:
    """Run the pyvider provider server in this process; return its exit code."""
    # pyvider refuses to serve when argv[0] does not look like a Terraform
    # provider (it guards against a human running it by hand); under `-m`,
    # argv[0] is this file, so present the launcher's name instead.
    sys.argv = [LAUNCHER_NAME, "provide", *args]
    set_log_defaults(os.environ)
    if forked:
        reload_env_config()
    else:
        preload()
    from pyvider.cli.__main__ import main as pyvider_main

    imported = time.time()
    trace = os.environ.get(TRACE_ENV)
    profile_dir = os.environ.get(PROFILE_ENV)
    try:
        if profile_dir:
            import cProfile

            cProfile.runctx(
                "pyvider_main()",
                globals(),
                {"pyvider_main": pyvider_main},
                os.path.join(profile_dir, f"provider-{os.getpid()}.prof"),
            )
        else:
            pyvider_main()
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        if trace:
            _trace(trace, started, imported, forked)
    return 0
