"""The backend routes (``/v1/states``, ``/v1/locks``) under generated bad input:
malformed JSON, bad UTF-8, wrong types, huge numbers, deep nesting, bad Content-MD5,
bad credentials, slow bodies. Each gets its 4xx (never a 5xx) and writes nothing: no
version, no lock taken, none released.

In-process: the app runs in a blocking portal's event loop, inside its lifespan."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from srvhelpers import lifespan

from driftsafe.server.app import create_app
from driftsafe.settings import Settings
from driftsafe.store import SqlStore, open_store

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

VALID = {
    "version": 4,
    "terraform_version": "1.15.5",
    "serial": 1,
    "lineage": "fuzz",
    "outputs": {},
    "resources": [],
}
LOCK = {"ID": "held-lock", "Operation": "OperationTypeApply", "Who": "holder@fuzz"}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


class Deep(bytes):
    """Deeply nested JSON, shown short in Hypothesis's reports."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes of nested JSON {self[:12]!r}...>"


def deep(depth: int, kind: str) -> bytes:
    if kind == "list":
        return Deep(b"[" * depth + b"]" * depth)
    return Deep(b'{"a":' * depth + b"1" + b"}" * depth)


# A state with one field made wrong: a wrong type, a number too big, a bad value.
WRONG_FIELDS = {
    "version": st.sampled_from([3, 5, "4", 4.5, None, [4], 2**70]),
    "serial": st.sampled_from([-1, "1", 1.5, None, [1], {"n": 1}, 2**63, 10**30, True]),
    "lineage": st.sampled_from(["", 7, None, ["x"], "x" * 101, "a\x00b"]),
    "terraform_version": st.sampled_from([1, None, ["1.15"], {"v": 1}]),
    "resources": st.sampled_from([{}, "r", 1, [1], ["r"], [{"instances": {}}]]),
    "outputs": st.sampled_from([[], "o", 1]),
}

bad_state_bodies = st.one_of(
    st.binary(max_size=200).filter(lambda b: not _is_json_object(b)),
    st.builds(lambda v: json.dumps(v).encode(), json_values).filter(
        lambda b: not isinstance(json.loads(b), dict) or "version" not in json.loads(b)
    ),
    st.sampled_from(list(WRONG_FIELDS)).flatmap(
        lambda key: WRONG_FIELDS[key].map(lambda bad: json.dumps({**VALID, key: bad}).encode())
    ),
    st.builds(deep, st.sampled_from([2000, 50_000]), st.sampled_from(["list", "dict"])),
    # Bad UTF-8 inside an otherwise valid state.
    st.just(json.dumps(VALID).encode().replace(b'"fuzz"', b'"fu\xff\xfez"')),
    st.just(b'{"version": 4, "serial": 1e400, "lineage": "x"}'),
    st.just(b'{"version": 4, "serial": NaN, "lineage": "x"}'),
)

bad_lock_bodies = st.one_of(
    st.binary(max_size=200).filter(lambda b: not _is_json_object(b)),
    st.builds(lambda v: json.dumps(v).encode(), json_values).filter(
        lambda b: not isinstance(json.loads(b), dict) or not _good_id(json.loads(b).get("ID"))
    ),
    st.builds(
        lambda v: json.dumps({**LOCK, "ID": v}).encode(),
        st.sampled_from([None, 1, "", "x" * 101, ["id"], {"id": 1}, 2**70, True]),
    ),
    st.builds(
        lambda key, size: json.dumps({**LOCK, "ID": "other", key: "w" * size}).encode(),
        st.sampled_from(["Who", "Operation", "Version", "Created"]),
        st.just(600),
    ),
    st.just(json.dumps({**LOCK, "ID": "other", "Who": "a\x00b"}).encode()),
    st.builds(deep, st.sampled_from([2000, 50_000]), st.sampled_from(["list", "dict"])),
    st.just(b'{"ID": "\xff\xfe"}'),
)


def _is_json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, RecursionError):
        return False


def _good_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 100


class Harness:
    """Requests to the in-process app from synchronous Hypothesis tests."""

    def __init__(self, portal: BlockingPortal, app: Any, store: SqlStore, token: str) -> None:
        self.portal = portal
        self.store = store
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://driftsafe.test",
            auth=("tf", token),
        )

    def send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            return await self.client.request(method, path, **kw)

        return self.portal.call(go)

    def nothing_written(self) -> None:
        assert self.store.list_versions("fuzz") == []
        held = self.store.get_lock("locked")
        assert held is not None and held.id == "held-lock"  # still held, not broken
        assert self.store.get_lock("fuzz") is None


@pytest.fixture
def harness(server_settings: Settings, tmp_path) -> Iterator[Harness]:  # type: ignore[no-untyped-def]
    # Hundreds of bad credentials from one address: the per-address limit (429, tested
    # in tests/server/test_ratelimit.py) would answer all but the first few.
    server_settings = server_settings.with_(auth_failure_limit=0)
    store = open_store(server_settings, f"sqlite:///{tmp_path / 'fuzz.db'}")
    token = store.create_token("fuzzer", "write")[1]
    app = create_app(server_settings, store)
    with (
        start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(lifespan(app)),
    ):
        h = Harness(portal, app, store, token)
        locked = h.send("LOCK", "/v1/locks/locked", json=LOCK)
        assert locked.status_code == 200
        try:
            yield h
        finally:
            portal.call(h.client.aclose)
    store.close()


def refused(response: httpx.Response, *allowed: int) -> None:
    assert response.status_code in allowed, (response.status_code, response.text)
    assert set(response.json()["error"]) == {"code", "message", "detail"}


@FUZZ
@given(body=bad_state_bodies)
def test_bad_states_are_refused_and_write_nothing(harness: Harness, body: bytes) -> None:
    refused(harness.send("POST", "/v1/states/fuzz", content=body), 400)
    # ... under a lock ID too, and on a locked workspace without one.
    refused(harness.send("POST", "/v1/states/fuzz", content=body, params={"ID": "x"}), 400, 409)
    harness.nothing_written()


@FUZZ
@given(header=st.text(max_size=40) | st.binary(max_size=30).map(lambda b: base64.b64encode(b)))
def test_a_wrong_content_md5_is_refused(harness: Harness, header: str | bytes) -> None:
    body = json.dumps(VALID).encode()
    raw = header if isinstance(header, bytes) else header.encode("utf-8", "surrogateescape")
    if raw == base64.b64encode(hashlib.md5(body).digest()):
        return  # the right one, by chance
    if any(c in raw for c in b"\r\n\x00") or raw != raw.strip():
        return  # not a header value an HTTP client can send
    refused(
        harness.send("POST", "/v1/states/fuzz", content=body, headers={"Content-MD5": raw}), 400
    )
    harness.nothing_written()


@FUZZ
@given(body=bad_lock_bodies, method=st.sampled_from(["LOCK", "POST"]))
def test_bad_lock_bodies_are_refused_and_lock_nothing(
    harness: Harness, body: bytes, method: str
) -> None:
    # 413: over the LockInfo size limit (64 KiB), refused before parsing.
    refused(harness.send(method, "/v1/locks/fuzz", content=body), 400, 413)
    refused(harness.send(method, "/v1/locks/locked", content=body), 400, 413)
    harness.nothing_written()


@FUZZ
@given(
    body=bad_lock_bodies.filter(lambda b: b.strip() != b""),
    method=st.sampled_from(["UNLOCK", "DELETE"]),
)
def test_bad_unlock_bodies_are_refused_and_release_nothing(
    harness: Harness, body: bytes, method: str
) -> None:
    response = harness.send(method, "/v1/locks/locked", content=body)
    if response.status_code == 409:  # a well-formed LockInfo of another ID
        assert response.json()["ID"] == "held-lock"
    else:
        refused(response, 400, 404, 413)
    harness.nothing_written()


@FUZZ
@given(wait=st.text(max_size=12) | st.sampled_from(["nan", "inf", "-1s", "9" * 400 + "d", "1e400"]))
def test_a_bad_wait_is_refused(harness: Harness, wait: str) -> None:
    from driftsafe.durations import parse_duration
    from driftsafe.errors import ConfigError

    try:
        parse_duration(wait)
    except ConfigError:
        pass
    else:
        return  # a valid duration
    response = harness.send("LOCK", "/v1/locks/fuzz", json=LOCK, params={"wait": wait})
    refused(response, 400)
    harness.nothing_written()


@FUZZ
@given(
    authorization=st.one_of(
        st.text(max_size=30),
        st.builds(lambda b: "Basic " + base64.b64encode(b).decode(), st.binary(max_size=30)),
        st.builds(lambda t: "Bearer " + t, st.text(min_size=1, max_size=30)),
    )
)
def test_bad_credentials_are_refused(harness: Harness, authorization: str) -> None:
    raw = authorization.encode("utf-8", "surrogateescape")
    if any(c in raw for c in b"\r\n\x00") or raw != raw.strip():
        return
    for method, path in (("POST", "/v1/states/fuzz"), ("LOCK", "/v1/locks/fuzz")):
        body = json.dumps(VALID if method == "POST" else LOCK).encode()
        response = harness.send(
            method, path, content=body, headers={"Authorization": raw}, auth=None
        )
        refused(response, 401)
    harness.nothing_written()


def _slow(body: bytes, pieces: int) -> Callable[[], AsyncIterator[bytes]]:
    async def stream() -> AsyncIterator[bytes]:
        step = max(1, len(body) // pieces)
        for start in range(0, len(body), step):
            await anyio.sleep(0.02)
            yield body[start : start + step]

    return stream


def test_slow_bodies_are_read_whole_and_judged_like_fast_ones(harness: Harness) -> None:
    bad = json.dumps({**VALID, "serial": "one"}).encode()
    response = harness.send("POST", "/v1/states/fuzz", content=_slow(bad, 20)())
    refused(response, 400)
    lock = harness.send("LOCK", "/v1/locks/fuzz", content=_slow(b'{"ID": [1]}', 5)())
    refused(lock, 400)
    harness.nothing_written()
    good = json.dumps(VALID).encode()
    written = harness.send("POST", "/v1/states/fuzz", content=_slow(good, 20)())
    assert written.status_code == 200 and written.json() == {"serial": 1, "created": True}
