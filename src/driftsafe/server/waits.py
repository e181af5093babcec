"""Wake LOCK ?wait= requests when a lock is released, in this process or (through the
store's PostgreSQL LISTEN) in another one."""

from __future__ import annotations

import asyncio
from collections import defaultdict


class WaitHub:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[str, set[asyncio.Event]] = defaultdict(set)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, workspace: str) -> asyncio.Event:
        event = asyncio.Event()
        self._events[workspace].add(event)
        return event

    def unsubscribe(self, workspace: str, event: asyncio.Event) -> None:
        events = self._events.get(workspace)
        if events is not None:
            events.discard(event)
            if not events:
                del self._events[workspace]

    def wake_threadsafe(self, workspace: str) -> None:
        """Called from store threads: hop onto the event loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake, workspace)

    def _wake(self, workspace: str) -> None:
        for event in list(self._events.get(workspace, ())):
            event.set()
