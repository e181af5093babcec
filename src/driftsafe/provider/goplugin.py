"""Serve Terraform over go-plugin's gRPC protocol: handshake, TLS, services.

Two ways: one *start* (Terraform ran the provider and stops it with go-plugin's
``Shutdown``), or one *session* (driftsafe's engine ran it for a whole Terraform
run, which reaches it through ``TF_REATTACH_PROVIDERS``; see
``driftsafe/engine/sessions.py``): the first stdout line is then the address as
JSON, the run's pid arrives on stdin, and the session ends with that process.

pyvider's own server (``pyvider.rpcplugin``) does the same job, but a start
through it cost ~190 ms on top of the RPCs themselves, and Terraform starts the
provider three or four times per command. Measured per start (Terraform's
trace log and timestamps in the provider): ~100 ms of it was a fixed
``asyncio.sleep(0.1)`` between answering go-plugin's ``Shutdown`` and exiting,
while Terraform waits for the process to end; ~25 ms was its CLI, config,
logging and discovery; the rest was a slow launcher. Here a start builds the
gRPC server, generates its certificate, prints the handshake and stops the
moment ``Shutdown`` has been answered (a few ms each).

Only the transport is ours: every ``tfplugin6.Provider`` RPC is still pyvider's
``ProviderHandler``, so the resources behave exactly as before.

What go-plugin expects of a plugin, and what this does:

- handshake on stdout: ``CORE|APP|NETWORK|ADDRESS|grpc|CERT``, where APP is the
  negotiated protocol version (6, from ``PLUGIN_PROTOCOL_VERSIONS``) and CERT the
  server certificate's DER in unpadded base64;
- AutoMTLS: when the host sends ``PLUGIN_CLIENT_CERT`` the server speaks TLS
  with a fresh self-signed certificate for ``localhost``. The client certificate
  is not verified: go-plugin's is ECDSA P-521, which gRPC's TLS stack refuses
  for client authentication (pyvider documents the same); the Unix socket sits
  in a private 0700 directory, so only this user can reach it;
- ``plugin.GRPCController/Shutdown`` ends the process; SIGTERM does too, and
  SIGINT is ignored (Terraform answers Ctrl-C with ``StopProvider``);
- ``plugin.GRPCStdio`` and ``plugin.GRPCBroker``: this provider forwards no
  stdio and brokers no services; both streams end at once or at shutdown;
- ``grpc.health.v1.Health`` reports ``plugin`` as serving.

A session speaks plaintext gRPC (a reattach config has no TLS) on the same
private socket, and Terraform never sends it ``Shutdown`` (Test mode).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import importlib
import ipaddress
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

CORE_PROTOCOL_VERSION = 1
PROTOCOL_VERSION = 6
MAGIC_COOKIE_KEY = "TF_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"
# Terraform's own limit (grpcMaxMessageSize); gRPC's default of 4 MB would reject
# a large configuration before a handler saw it.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
# How long in-flight RPCs get to finish once shutdown is asked for.
STOP_GRACE_SECONDS = 5.0
CERT_VALIDITY = datetime.timedelta(days=7)
SOCKET_PREFIX = "plugin-"
# grpc and grpc_health ship no type information: imported by name, typed as modules.
_UNTYPED_MODULES = ("grpc", "grpc_health.v1.health_pb2", "grpc_health.v1.health_pb2_grpc")


class PluginError(Exception):
    """This start cannot be served; the message says why (go-plugin shows stderr)."""


@dataclass(frozen=True)
class ServerCert:
    key_pem: bytes
    cert_pem: bytes
    der: bytes

    @property
    def handshake(self) -> str:
        return base64.b64encode(self.der).decode().rstrip("=")


def new_server_cert() -> ServerCert:
    """A fresh self-signed certificate for ``localhost``, as go-plugin's own plugins make.

    Its own key per start, never written anywhere: go-plugin pins it for this one
    connection. EC P-256 takes well under a millisecond once the library is warm.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "driftsafe lab provider"),
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(
            # go-plugin dials with ServerName "localhost" and trusts exactly this cert.
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return ServerCert(
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        der=cert.public_bytes(serialization.Encoding.DER),
    )


def negotiate_version(environ: os._Environ[str] | dict[str, str]) -> int:
    """Protocol 6, if the host offers it (go-plugin passes its versions in the env)."""
    offered = environ.get("PLUGIN_PROTOCOL_VERSIONS", "")
    if not offered:
        return PROTOCOL_VERSION  # an old host that names none: go-plugin serves its default
    versions = {v.strip() for v in offered.split(",")}
    if str(PROTOCOL_VERSION) not in versions:
        raise PluginError(
            f"this provider speaks plugin protocol {PROTOCOL_VERSION}; the host offers "
            f"{offered}. Use Terraform 1.0 or later."
        )
    return PROTOCOL_VERSION


def launched_by_terraform(environ: os._Environ[str] | dict[str, str]) -> bool:
    return environ.get(MAGIC_COOKIE_KEY) == MAGIC_COOKIE_VALUE


def socket_dir(environ: os._Environ[str] | dict[str, str]) -> str:
    """A private directory for the plugin's socket (go-plugin may name one)."""
    from driftsafe.provider.launcher import private_dir

    directory = environ.get("PLUGIN_UNIX_SOCKET_DIR") or private_dir(environ)
    if directory is None:
        raise PluginError("no private directory for the plugin's socket (see TMPDIR)")
    return directory


def sweep_sockets(directory: str) -> None:
    """Remove sockets left by providers that were killed (they cannot clean up)."""
    for name in os.listdir(directory):
        pid = name.removeprefix(SOCKET_PREFIX).removesuffix(".sock")
        if not (name.startswith(SOCKET_PREFIX) and name.endswith(".sock") and pid.isdigit()):
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))
        except PermissionError:
            pass  # alive, and someone else's


def preload() -> None:
    """Import what a start needs, ahead of the fork."""
    for name in _UNTYPED_MODULES:
        importlib.import_module(name)
    import pyvider.rpcplugin.protocol.grpc_broker_pb2_grpc  # noqa: F401
    import pyvider.rpcplugin.protocol.grpc_controller_pb2_grpc  # noqa: F401
    import pyvider.rpcplugin.protocol.grpc_stdio_pb2_grpc  # noqa: F401

    new_server_cert()  # warms the x509 and TLS code paths


def _services(stopping: asyncio.Event) -> list[tuple[Any, Any]]:
    """go-plugin's own services, each paired with its registration function."""
    health_pb2 = importlib.import_module("grpc_health.v1.health_pb2")
    health_pb2_grpc = importlib.import_module("grpc_health.v1.health_pb2_grpc")
    from pyvider.rpcplugin.protocol import (
        grpc_broker_pb2_grpc,
        grpc_controller_pb2,
        grpc_controller_pb2_grpc,
        grpc_stdio_pb2_grpc,
    )

    class Controller(grpc_controller_pb2_grpc.GRPCControllerServicer):
        async def Shutdown(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC name
            # The server stops after this answer has gone out (stop() keeps a grace).
            stopping.set()
            return grpc_controller_pb2.Empty()

    class Stdio(grpc_stdio_pb2_grpc.GRPCStdioServicer):
        async def StreamStdio(self, request: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802
            # Nothing is forwarded: logs go to stderr, which go-plugin reads directly.
            return
            yield  # pragma: no cover - makes this an (empty) async generator

    class Broker(grpc_broker_pb2_grpc.GRPCBrokerServicer):
        async def StartStream(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802
            # No brokered services: hold the stream until the host or shutdown ends it.
            async def drain() -> None:
                async for _ in request_iterator:
                    pass

            reader = asyncio.ensure_future(drain())
            waiter = asyncio.ensure_future(stopping.wait())
            try:
                await asyncio.wait({reader, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (reader, waiter):
                    task.cancel()
            return
            yield  # pragma: no cover

    health_servicer: Any = health_pb2_grpc.HealthServicer

    class Health(health_servicer):  # type: ignore[misc]
        async def Check(self, request: Any, context: Any) -> Any:  # noqa: N802
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    return [
        (Controller(), grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server),
        (Stdio(), grpc_stdio_pb2_grpc.add_GRPCStdioServicer_to_server),
        (Broker(), grpc_broker_pb2_grpc.add_GRPCBrokerServicer_to_server),
        (Health(), health_pb2_grpc.add_HealthServicer_to_server),
    ]


async def _serve(provider_servicer: Any, add_provider: Any, session: bool) -> None:
    grpc = importlib.import_module("grpc")

    # A session is dialled through TF_REATTACH_PROVIDERS, which has no TLS.
    version = PROTOCOL_VERSION if session else negotiate_version(os.environ)
    tls = not session and bool(os.environ.get("PLUGIN_CLIENT_CERT", "").strip())
    cert = new_server_cert() if tls else None
    path = os.path.join(socket_dir(os.environ), f"{SOCKET_PREFIX}{os.getpid()}.sock")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, lambda: None)

    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
    )
    add_provider(provider_servicer, server)
    for servicer, add in _services(stopping):
        add(servicer, server)
    address = f"unix:{path}"
    if cert is not None:
        creds = grpc.ssl_server_credentials([(cert.key_pem, cert.cert_pem)])
        bound = server.add_secure_port(address, creds)
    else:
        bound = server.add_insecure_port(address)
    if not bound:
        raise PluginError(f"gRPC could not listen on {path}")
    await server.start()
    try:
        if session:
            line = json.dumps(
                {"pid": os.getpid(), "network": "unix", "address": path, "protocol": version}
            )
            _watch_run(loop, stopping)
        else:
            fields = [str(CORE_PROTOCOL_VERSION), str(version), "unix", path, "grpc"]
            line = "|".join([*fields, cert.handshake if cert is not None else ""])
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        await stopping.wait()
    finally:
        await server.stop(STOP_GRACE_SECONDS)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _watch_run(loop: asyncio.AbstractEventLoop, stopping: asyncio.Event) -> None:
    """A session serves one Terraform run and ends with it.

    Whoever started the session writes that run's pid on our stdin once Terraform
    is running; the session stops when that process ends (killed or not), or when
    stdin closes without a pid (the run never started).
    """
    received = bytearray()

    def on_stdin() -> None:
        try:
            data = os.read(0, 64)
        except OSError:
            data = b""
        received.extend(data)
        if b"\n" not in received and data:
            return
        loop.remove_reader(0)
        line = bytes(received).split(b"\n", 1)[0].strip()
        if not line.isdigit():
            stopping.set()  # closed before a pid: nothing will ever connect
            return
        _watch_pid(loop, int(line), stopping)

    loop.add_reader(0, on_stdin)


def _watch_pid(loop: asyncio.AbstractEventLoop, pid: int, stopping: asyncio.Event) -> None:
    try:
        # Readable once the process has exited: no polling, no pid-reuse race.
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        stopping.set()
        return
    except (AttributeError, OSError):
        loop.create_task(_poll_pid(pid, stopping))  # no pidfd (not Linux)
        return

    def ended() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        stopping.set()

    loop.add_reader(pidfd, ended)


async def _poll_pid(pid: int, stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            stopping.set()
            return
        await asyncio.sleep(0.25)


def serve(provider_servicer: Any, add_provider: Any, *, session: bool = False) -> int:
    """Serve until shut down (a Terraform start) or until the run ends (a session)."""
    try:
        asyncio.run(_serve(provider_servicer, add_provider, session))
    except PluginError as exc:
        print(f"terraform-provider-lab: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0
