"""Run the server: ``serve`` (the command, in the foreground) and ``start_server`` (a
background thread on a free port, for tests, the drill and the benchmark)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from driftsafe.errors import ConfigError, DriftsafeError
from driftsafe.server.app import JsonLogFormatter, begin_shutdown, create_app
from driftsafe.settings import Settings
from driftsafe.store import SqlStore, open_store


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(
    host: str,
    *,
    insecure_no_auth: bool,
    tls: tuple[Path, Path] | None,
    allow_plain_http: bool = False,
) -> list[str]:
    """Refuse a bind that would expose the server unsafely; return the warnings a
    bind allowed anyway deserves (shown at start and in ``/healthz``)."""
    if insecure_no_auth and not is_loopback(host):
        raise ConfigError(
            f"--insecure-no-auth lets anyone write state: it is only allowed on a loopback "
            f"address (127.0.0.1, ::1), not {host!r}"
        )
    if tls is not None:
        for path in tls:
            if not path.is_file():
                raise ConfigError(f"TLS file {path} does not exist")
        return []
    if is_loopback(host):
        return []
    if not allow_plain_http:
        raise ConfigError(
            f"plain HTTP on {host!r} sends every token (the Basic-auth password Terraform "
            "sends) in clear text over the network: give --tls-cert and --tls-key, or, "
            "behind a proxy that terminates TLS, --allow-plain-http"
        )
    return [
        f"plain HTTP on non-loopback address {host!r}: tokens cross the network in clear "
        "text unless a proxy in front terminates TLS (--allow-plain-http)"
    ]


class _NoDelayH11(H11Protocol):
    """h11 with TCP_NODELAY: uvicorn writes headers and body separately, and with
    Nagle's algorithm the body then waits for the client's delayed ACK (~40 ms)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def _config(
    app: object, *, tls: tuple[Path, Path] | None, log_level: str, grace: float
) -> uvicorn.Config:
    kwargs: dict[str, object] = {}
    if tls is not None:
        kwargs = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])}
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        log_config=None,
        access_log=False,
        log_level=log_level,
        lifespan="on",
        timeout_keep_alive=30,
        # Terraform sends LOCK/UNLOCK; h11 accepts any method token.
        http=_NoDelayH11,
        # On shutdown: stop accepting, let requests in flight finish (a big upload is
        # read and stored), cancel what still runs after this many seconds.
        timeout_graceful_shutdown=max(1, round(grace)),
        **kwargs,  # type: ignore[arg-type]
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int, tls: bool) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"


@dataclass
class RunningServer:
    """A server on a background thread. ``stop()`` shuts it down and closes the store
    when the server opened it."""

    url: str
    store: SqlStore
    _stop: Callable[[], None] = field(repr=False)

    def stop(self) -> None:
        self._stop()


def start_server(
    settings: Settings,
    *,
    db: str | None = None,
    store: SqlStore | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    insecure_no_auth: bool = False,
    tls: tuple[Path, Path] | None = None,
    allow_plain_http: bool = False,
    startup_timeout: float = 15.0,
) -> RunningServer:
    """Start the server in a thread on ``host:port`` (0: a free port) and return once
    it accepts connections."""
    warnings = check_bind(
        host, insecure_no_auth=insecure_no_auth, tls=tls, allow_plain_http=allow_plain_http
    )
    own_store = store is None
    the_store = store if store is not None else open_store(settings, db)
    sock = _bind(host, port)
    real_port = sock.getsockname()[1]
    app = create_app(settings, the_store, insecure_no_auth=insecure_no_auth, warnings=warnings)
    server = uvicorn.Server(
        _config(app, tls=tls, log_level="warning", grace=settings.shutdown_grace)
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # reported to the starter, never lost
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"driftsafe-server-{real_port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if failure or not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout=5)
            sock.close()
            if own_store:
                the_store.close()
            raise DriftsafeError(f"server did not start: {failure[0] if failure else 'timeout'}")
        time.sleep(0.01)

    def stop() -> None:
        begin_shutdown(app)
        server.should_exit = True
        thread.join(timeout=settings.shutdown_grace + 15)
        sock.close()
        if own_store:
            the_store.close()

    return RunningServer(_url(host, real_port, tls is not None), the_store, stop)


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal capture (``serve`` installs its own handlers)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _request_exit(server: uvicorn.Server, app: object) -> None:
    # A second signal forces the exit, as uvicorn does.
    if server.should_exit:
        server.force_exit = True
    begin_shutdown(app)  # type: ignore[arg-type]
    server.should_exit = True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    for name in ("driftsafe", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


def serve(
    settings: Settings,
    *,
    db: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8787,
    insecure_no_auth: bool = False,
    tls: tuple[Path, Path] | None = None,
    allow_plain_http: bool = False,
    announce: Callable[[str], None],
) -> None:
    """Serve in the foreground until SIGINT/SIGTERM. ``announce`` gets notices (a new
    key file, warnings) and then the ``driftsafe serve: listening on URL`` line."""
    warnings = check_bind(
        host, insecure_no_auth=insecure_no_auth, tls=tls, allow_plain_http=allow_plain_http
    )
    if tls is not None:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                str(tls[0]), str(tls[1])
            )
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"cannot load TLS certificate/key: {exc}") from None
    notices: list[str] = []
    store = open_store(settings, db, notices=notices)
    for notice in notices:
        announce(notice)
    for warning in warnings:
        announce(f"WARNING: {warning}")
    try:
        sock = _bind(host, port)
        configure_logging(settings.log_level)
        app = create_app(settings, store, insecure_no_auth=insecure_no_auth, warnings=warnings)
        server = _QuietServer(
            _config(app, tls=tls, log_level=settings.log_level, grace=settings.shutdown_grace)
        )
        url = _url(host, sock.getsockname()[1], tls is not None)

        async def main() -> None:
            # Our own handlers instead of uvicorn's: uvicorn re-raises SIGTERM after
            # shutdown, which would kill us before the store is closed.
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, _request_exit, server, app)
            task = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started and not task.done():
                await asyncio.sleep(0.01)
            if server.started:
                announce(f"driftsafe serve: listening on {url}")
            await task

        asyncio.run(main())
        sock.close()
    finally:
        store.close()
