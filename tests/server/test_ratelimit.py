"""The per-address limiter of failed authentications, on a clock the test moves."""

from __future__ import annotations

from driftsafe.server.ratelimit import AuthLimiter


def test_a_window_of_failures_blocks_then_frees() -> None:
    now = [1000.0]
    limiter = AuthLimiter(max_failures=3, window=60, clock=lambda: now[0])
    for _ in range(2):
        limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") is None
    limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == 60
    assert limiter.retry_after("10.0.0.2") is None  # per address
    assert limiter.first_refusal("10.0.0.1") and not limiter.first_refusal("10.0.0.1")
    now[0] += 30
    assert limiter.retry_after("10.0.0.1") == 30
    now[0] += 30.5
    assert limiter.retry_after("10.0.0.1") is None  # the window moved past them


def test_zero_turns_it_off() -> None:
    limiter = AuthLimiter(max_failures=0)
    for _ in range(100):
        limiter.failed("x")
    assert limiter.retry_after("x") is None
