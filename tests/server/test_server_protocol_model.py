"""The backend protocol against a model of what the server must answer: Hypothesis
drives LOCK (new IDs, retries, altered LockInfo), UNLOCK (own, stale, retried, someone
else's), force-unlock, GET and POST (fenced, unlocked, replayed, stale serials) from
three clients (two writers, one admin) and checks every answer and the stored history.

In-process: the app runs in a blocking portal's event loop, inside its lifespan."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from srvhelpers import lifespan

from driftsafe.server.app import create_app
from driftsafe.settings import Settings
from driftsafe.store import SqlStore, open_store

CLIENTS = (0, 1, 2)  # 0 and 1: write tokens; 2: admin


@dataclass(frozen=True)
class Held:
    client: int
    id: str
    who: str


@dataclass
class Model:
    holder: Held | None = None
    # Releases, newest last: (lock id, "unlock" or "force-unlock", holder's client).
    releases: list[tuple[str, str, int]] = field(default_factory=list)
    versions: list[tuple[int, str]] = field(default_factory=list)  # (serial, sha256)
    last_body: bytes | None = None

    @property
    def latest(self) -> int:
        return self.versions[-1][0] if self.versions else 0

    def released_by_own_unlock(self, lock_id: str, client: int) -> bool:
        for rid, action, holder in reversed(self.releases):
            if rid == lock_id:
                return action == "unlock" and holder == client
        return False


def lock_info(lock_id: str, who: str) -> dict[str, str]:
    return {
        "ID": lock_id,
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": who,
        "Version": "1.15.5",
        "Created": "2026-12-01T10:00:00Z",
        "Path": "",
    }


def body(serial: int, variant: int) -> bytes:
    return json.dumps(
        {
            "version": 4,
            "terraform_version": "1.15.5",
            "serial": serial,
            "lineage": "model",
            "outputs": {"v": {"value": variant, "type": "number"}},
            "resources": [],
        }
    ).encode()


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal("asyncio") as running:
        yield running


def test_backend_protocol_against_its_model(
    portal: BlockingPortal, server_settings: Settings, store_url: str
) -> None:
    store = open_store(server_settings, store_url)
    tokens = [
        store.create_token("w0", "write")[1],
        store.create_token("w1", "write")[1],
        store.create_token("root", "admin")[1],
    ]
    app = create_app(server_settings, store)
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
            base_url="http://driftsafe.test",
            auth=("tf", token),
        )
        for token in tokens
    ]
    with portal.wrap_async_context_manager(lifespan(app)):
        try:
            run_machine(portal, store, clients)
        finally:
            for client in clients:
                portal.call(client.aclose)
    store.close()


def run_machine(portal: BlockingPortal, store: SqlStore, clients: list[httpx.AsyncClient]) -> None:
    def send(client: int, method: str, path: str, **kw: object) -> httpx.Response:
        async def go() -> httpx.Response:
            return await clients[client].request(method, path, **kw)  # type: ignore[arg-type]

        return portal.call(go)

    class Protocol(RuleBasedStateMachine):
        @initialize()
        def fresh_workspace(self) -> None:
            self.ws = f"model/{uuid.uuid4().hex[:12]}"
            self.model = Model()
            self.own: dict[int, str] = {}  # each client's latest lock ID

        @rule(client=st.sampled_from(CLIENTS), retry=st.booleans(), other_who=st.booleans())
        def lock(self, client: int, retry: bool, other_who: bool) -> None:
            lock_id = self.own.get(client) if retry else None
            lock_id = lock_id or uuid.uuid4().hex
            self.own[client] = lock_id
            who = f"client{client}" + ("-elsewhere" if other_who else "")
            r = send(client, "LOCK", f"/v1/locks/{self.ws}", json=lock_info(lock_id, who))
            holder = self.model.holder
            if holder is None:
                assert r.status_code == 200, r.text
                self.model.holder = Held(client, lock_id, who)
            elif holder == Held(client, lock_id, who):
                assert r.status_code == 200, r.text  # the holder's own LOCK again
            else:
                assert r.status_code == 423, r.text
                assert r.json()["ID"] == holder.id  # bare LockInfo naming the holder

        @rule(client=st.sampled_from(CLIENTS), whose=st.sampled_from(CLIENTS))
        def unlock(self, client: int, whose: int) -> None:
            lock_id = self.own.get(whose)
            if lock_id is None:
                return
            r = send(client, "UNLOCK", f"/v1/locks/{self.ws}", json=lock_info(lock_id, f"c{whose}"))
            holder = self.model.holder
            if holder is not None and holder.id == lock_id:
                assert r.status_code == 200, r.text
                self.model.releases.append((lock_id, "unlock", holder.client))
                self.model.holder = None
            elif self.model.released_by_own_unlock(lock_id, client):
                assert r.status_code == 200, r.text  # a retried UNLOCK
            elif holder is None:
                assert r.status_code == 404, r.text
            else:
                assert r.status_code == 409 and r.json()["ID"] == holder.id, r.text

        @rule(client=st.sampled_from(CLIENTS))
        def force_unlock(self, client: int) -> None:
            r = send(client, "UNLOCK", f"/v1/locks/{self.ws}", content=b"")
            holder = self.model.holder
            if client != 2:
                assert r.status_code == 403, r.text
            elif holder is None:
                assert r.status_code == 404, r.text
            else:
                assert r.status_code == 200 and r.json()["ID"] == holder.id, r.text
                self.model.releases.append((holder.id, "force-unlock", holder.client))
                self.model.holder = None

        @rule(client=st.sampled_from(CLIENTS))
        def get(self, client: int) -> None:
            r = send(client, "GET", f"/v1/states/{self.ws}")
            if not self.model.versions:
                assert r.status_code == 204
            else:
                assert r.status_code == 200
                assert hashlib.sha256(r.content).hexdigest() == self.model.versions[-1][1]

        @rule(
            client=st.sampled_from(CLIENTS),
            with_id=st.sampled_from(["own", "holder", "none"]),
            step=st.sampled_from([1, 1, 1, 0, -1, 2]),
            replay=st.booleans(),
        )
        def post(self, client: int, with_id: str, step: int, replay: bool) -> None:
            holder = self.model.holder
            lock_id = {
                "own": self.own.get(client),
                "holder": holder.id if holder else None,
                "none": None,
            }[with_id]
            if replay and self.model.last_body is not None:
                payload = self.model.last_body
            else:
                payload = body(max(0, self.model.latest + step), variant=len(self.model.versions))
            serial = json.loads(payload)["serial"]
            sha = hashlib.sha256(payload).hexdigest()
            params = {"ID": lock_id} if lock_id else {}
            r = send(client, "POST", f"/v1/states/{self.ws}", content=payload, params=params)
            fenced = (lock_id is not None and (holder is None or holder.id != lock_id)) or (
                lock_id is None and holder is not None
            )
            if fenced:
                assert r.status_code == 409, r.text
            elif self.model.versions and self.model.versions[-1] == (serial, sha):
                assert r.status_code == 200 and r.json() == {"serial": serial, "created": False}
            elif self.model.versions and serial <= self.model.latest:
                assert r.status_code == 409, r.text  # the first version may have any serial
            else:
                assert r.status_code == 200 and r.json() == {"serial": serial, "created": True}
                self.model.versions.append((serial, sha))
                self.model.last_body = payload

        @invariant()
        def store_matches_model(self) -> None:
            held = store.get_lock(self.ws)
            assert (held.id if held else None) == (
                self.model.holder.id if self.model.holder else None
            )
            stored = [(v.serial, v.sha256) for v in reversed(store.list_versions(self.ws))]
            assert stored == self.model.versions

    Protocol.TestCase.settings = settings(
        max_examples=25,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    Protocol.TestCase().runTest()
