"""The provider itself, made ready once and served per Terraform start.

Both ways a provider process starts use this module: a cold start from the
launcher (``serve_cold``), and a child forked by the warm ``forkserver``
(``serve_forked``), which calls ``preload`` once before it forks anything.
``preload`` does every piece of work that does not depend on the start itself:
imports, component discovery, the provider instance and its schema. A start
then only builds its gRPC server (``goplugin.py``) around pyvider's handler.
pyvider is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any

# Set DRIFTSAFE_PROVIDER_TRACE=FILE to append one JSON line per provider process
# (start, ready to serve, exit): how bench/provider.py counts starts and their cost.
TRACE_ENV = "DRIFTSAFE_PROVIDER_TRACE"
# Set DRIFTSAFE_PROVIDER_PROFILE=DIR to write a cProfile dump per provider process.
PROFILE_ENV = "DRIFTSAFE_PROVIDER_PROFILE"
LAUNCHER_NAME = "terraform-provider-lab"


@dataclass(frozen=True)
class Prepared:
    """What ``preload`` made: pyvider's tfplugin6 servicer and its registration."""

    handler: Any
    add_to_server: Any


def _trace(path: str, started: float, imported: float, forked: bool, session: bool) -> None:
    import json
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    record = {
        "pid": os.getpid(),
        "start": started,
        "imported": imported,
        "end": time.time(),
        "forked": forked,
        "session": session,
        # CPU seconds this process used (a forked child counts from its fork).
        "cpu": usage.ru_utime + usage.ru_stime,
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


def preload() -> Prepared:
    """Import and build everything a start needs (the fork server calls this once).

    The provider instance made here is pristine: each forked child configures
    its own copy, so nothing one Terraform run tells the provider reaches another.
    """
    import asyncio

    set_log_defaults(os.environ)
    import pyvider.protocols.tfprotov6.handlers  # noqa: F401
    import pyvider.protocols.tfprotov6.protobuf as pb
    from pyvider.handler import ProviderHandler

    from driftsafe.provider import goplugin

    _drop_calls_below(os.environ["PYVIDER_LOG_LEVEL"])
    asyncio.run(_prepare_hub())
    goplugin.preload()
    import pyvider.common.config  # noqa: F401 - read per start (_register_start_config)
    import pyvider.lint  # noqa: F401

    return Prepared(ProviderHandler(), pb.add_ProviderServicer_to_server)


async def _prepare_hub() -> None:
    """What pyvider's ``provide`` command does before serving, done once ahead of time."""
    import asyncio

    from pyvider.hub import DISCOVERY_READY_EVENT, hub
    from pyvider.hub.discovery import ComponentDiscovery

    await ComponentDiscovery(hub).discover_all()
    ready = asyncio.Event()
    ready.set()
    hub.register("singleton", DISCOVERY_READY_EVENT, ready)
    providers = hub.get_components("provider")
    if not providers:
        raise RuntimeError("the lab provider's components were not found (entry point 'pyvider')")
    # LabProvider (components.py) takes no arguments; the hub types it as BaseProvider.
    provider_class: Any = next(iter(providers.values()))
    provider = provider_class()
    await provider.setup()
    hub.register("singleton", "provider", provider)
    for resource_class in hub.get_components("resource").values():
        resource_class.get_schema()  # cached per class: every child inherits it built


def _register_start_config() -> None:
    """Settings pyvider reads per start from the environment and the working directory."""
    from pyvider.common.config import PyviderConfig
    from pyvider.hub import hub
    from pyvider.lint import LintSelector

    hub.register("singleton", "lint_selector", LintSelector.parse(PyviderConfig().lint_rules))


def _run(prepared: Prepared, started: float, forked: bool) -> int:
    from driftsafe.provider import goplugin

    session = _is_session(os.environ)

    _register_start_config()
    imported = time.time()
    trace = os.environ.get(TRACE_ENV)
    profile_dir = os.environ.get(PROFILE_ENV)
    try:
        if profile_dir:
            import cProfile

            profiler = cProfile.Profile()
            code = profiler.runcall(
                goplugin.serve, prepared.handler, prepared.add_to_server, session=session
            )
            profiler.dump_stats(os.path.join(profile_dir, f"provider-{os.getpid()}.prof"))
            return code
        return goplugin.serve(prepared.handler, prepared.add_to_server, session=session)
    finally:
        if trace:
            _trace(trace, started, imported, forked, session)


def _pyvider_cli(args: list[str]) -> int:
    """pyvider's own command line, for anything but a plain start by Terraform."""
    # pyvider refuses to serve when argv[0] does not look like a Terraform
    # provider (it guards against a human running it by hand); under `-m`,
    # argv[0] is this file, so present the launcher's name instead.
    sys.argv = [LAUNCHER_NAME, "provide", *args]
    set_log_defaults(os.environ)
    import pyvider.cli.__main__

    try:
        pyvider.cli.__main__.main()
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def _is_session(environ: os._Environ[str]) -> bool:
    from driftsafe.provider.launcher import SESSION_ENV

    return environ.get(SESSION_ENV) == "1"


def _is_plain_start(args: list[str]) -> bool:
    from driftsafe.provider import goplugin

    return not args and (_is_session(os.environ) or goplugin.launched_by_terraform(os.environ))


def serve_cold(args: list[str], started: float) -> int:
    """Serve this start in this process, importing everything first (~0.3 s)."""
    if not _is_session(os.environ):
        _exit_when_orphaned()  # a session ends with its run instead
    if not _is_plain_start(args):
        return _pyvider_cli(args)
    return _run(preload(), started, forked=False)


def serve_forked(args: list[str], started: float, prepared: Prepared) -> int:
    """Serve a start in a child of the fork server, with the launcher's env and cwd."""
    if not _is_plain_start(args):
        return _pyvider_cli(args)
    return _run(prepared, started, forked=True)


def _exit_when_orphaned(interval: float = 0.5) -> None:
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
