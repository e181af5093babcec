"""A warm fork server for the lab provider.

Terraform starts the provider 3-4 times per command, and each cold start spends
~0.3 s importing pyvider, grpc and protobuf and discovering components. The
fork server does all that once (``plugin.preload``) and forks a ready provider
per request: the launcher (``launcher.py``) passes its stdin/stdout/stderr over
a Unix socket (SCM_RIGHTS) with its argv, environment and working directory;
the forked child adopts them and serves Terraform exactly as a cold start would,
then reports its exit code back to the launcher.

Secrets: the server runs with a minimal environment (see
``launcher.SERVER_ENV``) and never holds a run's data. A child gets its own
launcher's environment (TF_VAR_* included), serves one Terraform start, exits.

Lifetime: the server exits after ``IDLE_SECONDS`` without a request, and when
the code it preloaded changed on disk (a new server then starts under the new
code's socket name). A child dies with its launcher: when Terraform kills the
launcher, the child sees the connection close and exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import signal
import socket
import sys
import threading
from typing import Any

from driftsafe.provider import launcher
from driftsafe.provider.goplugin import sweep_sockets
from driftsafe.provider.plugin import Prepared, preload, serve_forked

IDLE_SECONDS = 120.0
MAX_REQUEST_BYTES = 16 << 20


class Server:
    def __init__(self, path: str, prepared: Prepared) -> None:
        self.path = path
        self.prepared = prepared
        self.key = launcher.code_key()
        self.pyvider_stamp = _pyvider_stamp()

    def stale(self) -> bool:
        """Has the code this server preloaded changed on disk since?"""
        return launcher.code_key() != self.key or _pyvider_stamp() != self.pyvider_stamp


def _pyvider_stamp() -> tuple[int, int]:
    import pyvider

    st = os.stat(pyvider.__file__ or "")
    return st.st_mtime_ns, st.st_size


def run_server(path: str) -> None:
    lock = open(path + ".lock", "w")  # noqa: SIM115 - held for the server's lifetime
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another server owns this socket
    server = Server(path, preload())
    sweep_sockets(os.path.dirname(path))
    # Everything preloaded is long-lived: keep the collector away from it, so a
    # child's first collection does not walk (and copy-on-write) the whole heap.
    gc.collect()
    gc.freeze()
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
                if server.stale():
                    break  # the launcher sees EOF and serves itself cold
                _handle(conn, listener, lock, server)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        listener.close()
        sweep_sockets(os.path.dirname(path))


def _receive(conn: socket.socket) -> tuple[bytes, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
    if len(data) < launcher.HEADER_BYTES:
        for fd in fds:
            os.close(fd)
        raise ValueError("short request")
    size = int.from_bytes(data[: launcher.HEADER_BYTES], "big")
    if size > MAX_REQUEST_BYTES:
        for fd in fds:
            os.close(fd)
        raise ValueError("request too large")
    body = data[launcher.HEADER_BYTES :]
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            for fd in fds:
                os.close(fd)
            raise ValueError("short request")
        body += chunk
    return body, fds


def _handle(conn: socket.socket, listener: socket.socket, lock: Any, server: Server) -> None:
    try:
        body, fds = _receive(conn)
    except (OSError, ValueError):
        return  # the launcher sees EOF and serves itself cold
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        return
    pid = os.fork()
    if pid != 0:
        for fd in fds:
            os.close(fd)
        return
    code = 1
    try:
        listener.close()
        lock.close()
        code = _child(conn, fds, body, server.prepared)
    finally:
        os._exit(code)


def _child(conn: socket.socket, fds: list[int], body: bytes, prepared: Prepared) -> int:
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        if fd > 2:
            os.close(fd)
    try:
        args, cwd, started, env = launcher.decode_request(body)
    except ValueError:
        return 1  # the launcher sees EOF and serves itself cold
    conn.sendall(f"pid {os.getpid()}\n".encode())
    if conn.recv(len(launcher.GO)) != launcher.GO:
        return 1  # the launcher gave up on us and serves itself
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)

    def watch_launcher() -> None:
        # The launcher never sends anything more: any return means it is gone,
        # and with it Terraform's handle on this provider.
        with contextlib.suppress(OSError):
            conn.recv(1)
        os._exit(1)

    threading.Thread(target=watch_launcher, daemon=True).start()
    code = serve_forked(args, started, prepared)
    with contextlib.suppress(OSError):
        sys.stdout.flush()
        sys.stderr.flush()
        conn.sendall(f"exit {code}\n".encode())
    return code


if __name__ == "__main__":
    run_server(sys.argv[1])
