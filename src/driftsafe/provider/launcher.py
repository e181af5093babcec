"""The launcher Terraform runs for each provider start: hand the start to the fork server.

Terraform starts the provider three or four times per command, so this process
is on the critical path every time and must start in a few milliseconds: it
imports only what an interpreter has loaded anyway (plus ``_socket``), and
nothing of pyvider, grpc or driftsafe. It passes its stdin/stdout/stderr over
a Unix socket (SCM_RIGHTS) to the warm fork server (``forkserver.py``) with its
argv, environment and working directory; the server forks an already-imported
provider that serves Terraform exactly as a cold start would, and reports its
exit code back here. This process forwards signals to that child and exits
with its code.

When no server answers, ``launch`` returns None and ``__main__`` serves the
start cold (``plugin.serve_cold``); a server is started for the next ones.
``DRIFTSAFE_PROVIDER_FORKSERVER=0`` always serves cold.
"""

from __future__ import annotations

import _socket
import os
import sys

ENABLE_ENV = "DRIFTSAFE_PROVIDER_FORKSERVER"
# Set (to 1) by driftsafe's engine on a provider it starts to serve one whole
# Terraform run through TF_REATTACH_PROVIDERS (see goplugin._watch_run).
SESSION_ENV = "DRIFTSAFE_PROVIDER_SESSION"
CONNECT_TIMEOUT = 10.0
# The fork server keeps only these from the environment of the launcher that
# spawned it: Terraform passes plugins everything, TF_VAR_* secrets included,
# and the server outlives that launcher. Each forked child gets its own
# launcher's environment instead.
SERVER_ENV = ("PATH", "HOME", "LANG", "TMPDIR", "XDG_RUNTIME_DIR", "PYTHONPATH")
SERVER_ENV_PREFIXES = ("LC_", "PYVIDER_LOG_", "PROVIDE_LOG_")
FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
ORPHAN_CHECK_SECONDS = 0.5
HEADER_BYTES = 4
GO = b"G"
REQUEST_VERSION = b"ds1"


def enabled(environ: os._Environ[str] | dict[str, str]) -> bool:
    if environ.get(ENABLE_ENV, "1").lower() in ("0", "false", "no", "off"):
        return False
    # The fork server drops log calls below WARNING; other levels are served cold.
    return environ.get("PYVIDER_LOG_LEVEL", "WARNING").upper() == "WARNING"


def code_key() -> str:
    """Names the server for this interpreter and this provider code.

    Editing the provider (or switching interpreters) simply starts a new server;
    the server itself notices a changed pyvider (``forkserver.Server.stale``).
    """
    here = os.path.dirname(os.path.abspath(__file__))
    parts = [sys.executable, sys.version]
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            st = os.stat(os.path.join(here, name))
            parts.append(f"{name}:{st.st_mtime_ns}:{st.st_size}")
    import binascii

    data = "\n".join(parts).encode()
    # Two CRCs (of the text and of its reverse) make a 64-bit name: collisions
    # would only ever mix up two versions of this provider for one user.
    return f"{binascii.crc32(data):08x}{binascii.crc32(data[::-1]):08x}"


def private_dir(environ: os._Environ[str] | dict[str, str]) -> str | None:
    """This user's private directory for sockets, or None if it is not private."""
    base = environ.get("XDG_RUNTIME_DIR") or environ.get("TMPDIR") or "/tmp"
    directory = os.path.join(base, f"driftsafe-{os.getuid()}")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        st = os.stat(directory)
    except OSError:
        return None
    # Whoever can connect can run code as us: only a private directory will do.
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return directory


def socket_path(environ: os._Environ[str] | dict[str, str]) -> str | None:
    directory = private_dir(environ)
    if directory is None:
        return None
    path = os.path.join(directory, f"provider-{code_key()}.sock")
    return path if len(path) < 100 else None


def encode_request(args: list[str], started: float) -> bytes:
    """argv, working directory, start time and environment, NUL-separated bytes."""
    fields = [REQUEST_VERSION, repr(started).encode(), os.getcwdb(), str(len(args)).encode()]
    fields += [os.fsencode(a) for a in args]
    fields += [k + b"=" + v for k, v in os.environb.items()]
    return b"\0".join(fields)


def decode_request(data: bytes) -> tuple[list[str], str, float, dict[str, str]]:
    """The server's side of ``encode_request``: (args, cwd, started, env)."""
    fields = data.split(b"\0")
    if fields[0] != REQUEST_VERSION:
        raise ValueError("unknown request version")
    started = float(fields[1])
    cwd = os.fsdecode(fields[2])
    count = int(fields[3])
    args = [os.fsdecode(a) for a in fields[4 : 4 + count]]
    env: dict[str, str] = {}
    for item in fields[4 + count :]:
        key, sep, value = item.partition(b"=")
        if sep:
            env[os.fsdecode(key)] = os.fsdecode(value)
    return args, cwd, started, env


class _Lines:
    """Reads newline-terminated replies from the server's socket."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def readline(self) -> bytes:
        while b"\n" not in self.buffer:
            try:
                chunk = self.sock.recv(256)
            except OSError:
                chunk = b""
            if not chunk:
                line, self.buffer = self.buffer, b""
                return line
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"


def launch(args: list[str], started: float) -> int | None:
    """Serve this start through the fork server; None means "serve it cold"."""
    path = socket_path(os.environ)
    if path is None:
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        spawn_server(path)
        return None
    try:
        return _served(sock, args, started)
    finally:
        sock.close()


def _served(sock: _socket.socket, args: list[str], started: float) -> int | None:
    payload = encode_request(args, started)
    fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
    lines = _Lines(sock)
    try:
        # A stuck server must not hang Terraform: give up and serve cold.
        sock.settimeout(CONNECT_TIMEOUT)
        header = len(payload).to_bytes(HEADER_BYTES, "big")
        sent = sock.sendmsg([header + payload], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        if sent < len(header) + len(payload):
            sock.sendall((header + payload)[sent:])
        reply = lines.readline()
        if not reply.startswith(b"pid "):
            return None  # the server could not (or would not) fork: nothing was served
        pid = int(reply[4:])
        # Only now may the child touch stdout: had we given up above, it would
        # find the connection closed and exit without a word.
        sock.sendall(GO)
        sock.settimeout(None)
    except (OSError, ValueError):
        return None
    _forward_signals(pid)
    if os.environ.get(SESSION_ENV) != "1":
        # A session lives as long as its Terraform run, whoever started it.
        _exit_when_orphaned()
    finished = lines.readline()
    if not finished.startswith(b"exit "):
        return 1  # the child died without reporting (killed)
    return int(finished[5:])


def _forward_signals(pid: int) -> None:
    import signal

    def forward(signum: int, _frame: object) -> None:
        # (contextlib.suppress would cost this launcher 2 ms of imports.)
        try:  # noqa: SIM105
            os.kill(pid, signum)
        except ProcessLookupError:
            pass  # the child is gone already; its exit reaches us through the socket

    for name in FORWARDED:
        signal.signal(getattr(signal, name), forward)


def _exit_when_orphaned() -> None:
    """Exit as soon as Terraform, our parent, is gone (SIGKILLed mid-apply, say).

    The forked child then sees this end of the socket close and exits too. A
    timer signal rather than a thread: nothing else runs here.
    """
    import signal

    parent = os.getppid()

    def check(_signum: int, _frame: object) -> None:
        if os.getppid() != parent:
            os._exit(1)

    signal.signal(signal.SIGALRM, check)
    signal.setitimer(signal.ITIMER_REAL, ORPHAN_CHECK_SECONDS, ORPHAN_CHECK_SECONDS)


def spawn_server(path: str) -> None:
    """Start a detached fork server for the next launches (double fork)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.chdir("/")
            env = {
                k: v
                for k, v in os.environ.items()
                if k in SERVER_ENV or k.startswith(SERVER_ENV_PREFIXES)
            }
            os.execve(
                sys.executable, [sys.executable, "-m", "driftsafe.provider.forkserver", path], env
            )
        finally:
            os._exit(1)
    os.waitpid(pid, 0)
