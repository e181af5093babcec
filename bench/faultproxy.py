"""A small asyncio TCP proxy for bench/faults.py: it sits between clients and one
server on loopback and, when a fault is armed, applies it to the next traffic it sees:

- ``proxy_delay``: holds the next chunk (either way) for a while, then sends it on;
- ``proxy_drop_response``: the server answered (so it processed the request), and
  the proxy resets the client's connection instead of passing the answer on;
- ``proxy_reset``: resets the connection of the next request before the server sees it.

A fault is counted when applied, not when armed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections import Counter, deque

DELAY = "proxy_delay"
DROP_RESPONSE = "proxy_drop_response"
RESET = "proxy_reset"
KINDS = (DELAY, DROP_RESPONSE, RESET)

CHUNK = 65536


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a crashed peer or a middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, upstream_port: int, rng: random.Random) -> None:
        self.upstream_port = upstream_port
        self.rng = rng
        self.armed: deque[str] = deque()
        self.applied: Counter[str] = Counter()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def arm(self, kind: str) -> None:
        self.armed.append(kind)

    def _take(self, kinds: tuple[str, ...]) -> str | None:
        if self.armed and self.armed[0] in kinds:
            kind = self.armed.popleft()
            self.applied[kind] += 1
            return kind
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            # Cancelled by close() only: the run is over and the connection goes with it.
            writer.transport.abort()
        finally:
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            _reset(writer)  # the server is down: the client sees a refused request
            return
        pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer, writer, upstream=True)),
            asyncio.ensure_future(self._pump(up_reader, writer, writer, upstream=False)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            _reset(up_writer)
            writer.transport.abort()

    async def _pump(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
        *,
        upstream: bool,
    ) -> None:
        """Copy ``src`` to ``dst``; ``upstream``: client -> server."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                data = await src.read(CHUNK)
                if not data:
                    return
                if upstream:
                    kind = self._take((RESET, DELAY))
                    if kind == RESET:
                        _reset(client)
                        return
                else:
                    kind = self._take((DROP_RESPONSE, DELAY))
                    if kind == DROP_RESPONSE:
                        _reset(client)
                        return
                if kind == DELAY:
                    await asyncio.sleep(self.rng.uniform(0.2, 1.5))
                dst.write(data)
                await dst.drain()
