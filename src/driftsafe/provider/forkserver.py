"""A warm fork server for the lab provider.

Terraform starts the provider 3-4 times per command, and each cold start spends
~0.5 s importing pyvider, grpc and protobuf. The fork server imports all that
once and forks a ready provider per request: the launcher (``python -m
driftsafe.provider``, only stdlib imports) passes its stdin/stdout/stderr over a
Unix socket (SCM_RIGHTS) with its argv, environment and working directory; the
forked child adopts them and serves Terraform exactly as a cold start would,
then reports its exit code back to the launcher.

Lifetime: the server exits after ``IDLE_SECONDS`` without a request. Its socket
name includes a hash of the interpreter and the provider's code, so editing the
provider simply starts a new server. A child dies with its launcher: when
Terraform kills the launcher, the child sees the connection close and exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ENABLE_ENV = "DRIFTSAFE_PROVIDER_FORKSERVER"
IDLE_SECONDS = 120.0
CONNECT_TIMEOUT = 10.0
_HEADER = 4
_GO = b"G"
# The server keeps only these from the environment of the launcher that spawned
# it: Terraform passes plugins everything, TF_VAR_* secrets included, and the
# server outlives that launcher. Each forked child gets its own launcher's env.
_SERVER_ENV = ("PATH", "HOME", "LANG", "TMPDIR", "XDG_RUNTIME_DIR", "PYTHONPATH")
_SERVER_ENV_PREFIXES = ("LC_", "PYVIDER_", "PROVIDE_")
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def enabled() -> bool:
    if os.environ.get(ENABLE_ENV, "1").lower() in ("0", "false", "no", "off"):
        return False
    # The fork server drops log calls below WARNING; other levels are served cold.
    return os.environ.get("PYVIDER_LOG_LEVEL", "WARNING").upper() == "WARNING"


def _code_key() -> str:
    digest = hashlib.sha256(sys.executable.encode() + sys.version.encode())
    here = Path(__file__).resolve().parent
    stamps = [here / name for name in sorted(os.listdir(here)) if name.endswith(".py")]
    spec = importlib.util.find_spec("pyvider")
    if spec is not None and spec.origin:
        stamps.append(Path(spec.origin))
    for path in stamps:
        st = path.stat()
        digest.update(f"{path}:{st.st_mtime_ns}:{st.st_size}".encode())
    return digest.hexdigest()[:16]


def socket_path() -> str | None:
    """The server's socket in a private per-user directory, or None if unsafe."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    directory = os.path.join(base, f"driftsafe-{os.getuid()}")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        st = os.stat(directory)
    except OSError:
        return None
    # Whoever can connect can run code as us: only a private directory will do.
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    path = os.path.join(directory, f"provider-{_code_key()}.sock")
    return path if len(path) < 100 else None


# --- launcher side ---------------------------------------------------------------


def launch(args: list[str], started: float) -> int | None:
    """Serve this start through the fork server; None means "serve it cold"."""
    path = socket_path()
    if path is None:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        _spawn_server(path)
        return None
    with sock:
        payload = json.dumps(
            {"args": args, "env": dict(os.environ), "cwd": os.getcwd(), "started": started}
        ).encode()
        try:
            # A stuck server must not hang Terraform: give up and serve cold.
            sock.settimeout(CONNECT_TIMEOUT)
            socket.send_fds(sock, [len(payload).to_bytes(_HEADER, "big") + payload], [0, 1, 2])
            reader = sock.makefile("rb")
            reply = reader.readline()
            if not reply:
                return None  # the server could not fork; nothing was served yet
            pid = int(json.loads(reply)["pid"])
            # Only now may the child touch stdout: had we given up above, it
            # would find the connection closed and exit without a word.
            sock.sendall(_GO)
            sock.settimeout(None)
        except (OSError, ValueError, KeyError):
            return None
        for sig in _FORWARDED:
            signal.signal(sig, lambda signum, _frame: _forward(pid, signum))
        try:
            finished = reader.readline()
        except OSError:
            finished = b""
    if not finished:
        return 1  # the child died without reporting (killed)
    return int(json.loads(finished)["exit"])


def _forward(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _spawn_server(path: str) -> None:
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
                if k in _SERVER_ENV or k.startswith(_SERVER_ENV_PREFIXES)
            }
            os.execve(
                sys.executable, [sys.executable, "-m", "driftsafe.provider.forkserver", path], env
            )
        finally:
            os._exit(1)
    os.waitpid(pid, 0)


# --- server side -----------------------------------------------------------------


def run_server(path: str) -> None:
    lock = open(path + ".lock", "w")  # noqa: SIM115 - held for the server's lifetime
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another server owns this socket
    from driftsafe.provider.plugin import preload

    preload()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    listener.settimeout(IDLE_SECONDS)
    # Children are not waited for here: their launchers get the exit code.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                break
            conn.settimeout(None)
            with conn:
                _handle(conn, listener, lock)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        listener.close()


def _handle(conn: socket.socket, listener: socket.socket, lock: Any) -> None:
    try:
        data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
        if len(fds) != 3 or len(data) < _HEADER:
            raise ValueError("bad request")
        size = int.from_bytes(data[:_HEADER], "big")
        body = data[_HEADER:]
        while len(body) < size:
            chunk = conn.recv(size - len(body))
            if not chunk:
                raise ValueError("short request")
            body += chunk
        request = json.loads(body)
    except (OSError, ValueError):
        return  # the launcher sees EOF and serves itself cold
    pid = os.fork()
    if pid != 0:
        for fd in fds:
            os.close(fd)
        return
    code = 1
    try:
        listener.close()
        lock.close()
        code = _child(conn, fds, request)
    finally:
        os._exit(code)


def _child(conn: socket.socket, fds: list[int], request: dict[str, Any]) -> int:
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        if fd > 2:
            os.close(fd)
    conn.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
    if conn.recv(len(_GO)) != _GO:
        return 1  # the launcher gave up on us and serves itself
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])

    def watch_launcher() -> None:
        # The launcher never sends anything more: any return means it is gone,
        # and with it Terraform's handle on this provider.
        with contextlib.suppress(OSError):
            conn.recv(1)
        os._exit(1)

    threading.Thread(target=watch_launcher, daemon=True).start()
    from driftsafe.provider.plugin import serve

    code = serve(list(request["args"]), float(request["started"]), forked=True)
    with contextlib.suppress(OSError):
        sys.stdout.flush()
        sys.stderr.flush()
        conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
    return code


if __name__ == "__main__":
    run_server(sys.argv[1])
