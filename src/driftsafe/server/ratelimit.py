"""Failed authentications per client address: after too many in a window, every
credential from that address is refused (429 with Retry-After) until the window has
room again. One limiter serves the backend, the API and the console's login, so a
guesser cannot move from one to the other. Kept in memory, per server process."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

# Addresses remembered at most (the least recently failing are forgotten first), so a
# flood from many addresses cannot grow the table without bound.
MAX_ADDRESSES = 50_000


class AuthLimiter:
    def __init__(
        self,
        max_failures: int = 20,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._announced: dict[str, float] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float] | None:
        times = self._failures.get(address)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[address]
            self._announced.pop(address, None)
            return None
        return times

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until ``address`` may try again, or None when it may now."""
        if self.max_failures <= 0:
            return None
        with self._lock:
            now = self._clock()
            times = self._recent(address, now)
            if times is None or len(times) < self.max_failures:
                return None
            return max(1, math.ceil(times[-self.max_failures] + self.window - now))

    def first_refusal(self, address: str) -> bool:
        """True once per block: the refusal worth an audit event (not every one of a
        flood is written to the audit log)."""
        with self._lock:
            now = self._clock()
            started = self._announced.get(address)
            if started is not None and now - started < self.window:
                return False
            self._announced[address] = now
            return True

    def failed(self, address: str) -> None:
        with self._lock:
            now = self._clock()
            times = self._recent(address, now)
            if times is None:
                times = self._failures[address] = deque(maxlen=max(1, self.max_failures))
            times.append(now)
            self._failures.move_to_end(address)
            while len(self._failures) > MAX_ADDRESSES:
                gone, _ = self._failures.popitem(last=False)
                self._announced.pop(gone, None)
