"""Wake LOCK ?wait= requests when a lock is released, in this process or (through the
store's PostgreSQL LISTEN) in another one."""

from __future__ import annotations

import asyncio
from collections import defaultdict

# The workspace name that wakes every waiter (never a valid workspace name).
EVERYONE = "*"


class WaitHub:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[str, set[asyncio.Event]] = defaultdict(set)
        # Set when the server starts shutting down: waiters stop waiting (423).
        self.draining = False

    def drain(self) -> None:
        """Shutdown began: wake every waiter now, so each answers 423 with the holder
        instead of holding the server up for the rest of its wait. Loop thread only."""
        self.draining = True
        self._wake(EVERYONE)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def drain_threadsafe(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.drain)

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
        if workspace == EVERYONE:
            events = [event for group in self._events.values() for event in group]
        else:
            events = list(self._events.get(workspace, ()))
        for event in events:
            event.set()
