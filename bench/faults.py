"""Fault injection with a history checker: does the state server lose nothing, and
do its locks hold, while servers crash, freeze, lose their database and their network?

K clients (default 8) run Terraform's protocol cycle (LOCK, GET, POST serial+1 with
their lock ID, UNLOCK) over a few workspaces, through the project's TCP proxy, against
two ``driftsafe serve`` processes on one store, retrying as Terraform's http client
does (lost answers and 5xx are sent again, the same request). Half of them queue on
the server (``LOCK ?wait=``). Meanwhile faults are injected on a schedule drawn from a
printed seed: kill -9 of a server (restarted on its port), SIGSTOP/SIGCONT of one,
kill -9 of a server while clients wait on it for a lock, a PostgreSQL restart (on
PostgreSQL), and proxy faults (delays, answers dropped after the server processed the
request, connections reset before it did). Every operation's call, answer and time is
recorded; bench/faultcheck.py checks the history and the store left at the end.

    .venv/bin/python bench/faults.py [--store sqlite|pg] [--seconds 60] [--clients 8]
        [--workspaces 3] [--seed N] [--pg URL] [--backup PATH] [--json]

Everything runs on 127.0.0.1, every loop is bounded, and the run stops by itself
(after ``--seconds``, then at most a minute to finish the cycles in flight). Exit 0
only with zero violations. ``--pg`` defaults to DRIFTSAFE_TEST_PG_URL; a PostgreSQL
restart needs root and Debian's pg_ctlcluster, and PostgreSQL is always left running.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import faultproxy  # noqa: E402
import pgcontrol  # noqa: E402
from faultcheck import (  # noqa: E402
    ACK_LOST,
    MUTUAL_EXCLUSION,
    SERIAL_REGRESSION,
    STALE_READ,
    Final,
    FinalLock,
    Op,
    StoredVersion,
    check,
)

from driftsafe.settings import Settings  # noqa: E402
from driftsafe.store import backup_database, open_store, verify_database  # noqa: E402
from driftsafe.store.crypto import new_key_text  # noqa: E402

KILL9 = "kill9"
SIGSTOP = "sigstop"
KILL_WITH_WAITERS = "kill_server_with_waiters"
PG_RESTART = "pg_restart"
# Faults of each kind per 5 minutes of run (the "Done when" asks for 20).
PER_FIVE_MINUTES = 24
# A logical request is retried (a lost answer, a 5xx, a refused connection) until this.
OP_DEADLINE = 60.0
# A client that cannot get a lock for this long gives up the cycle (Terraform's
# -lock-timeout): nothing is held, nothing written.
LOCK_TIMEOUT = 20.0
WAIT = "5s"
# Locks older than this count as stale (the server's DRIFTSAFE_LOCK_STALE_AFTER).
STALE_AFTER = "60s"


class ServerProc:
    """``driftsafe serve`` as a process that can be killed, frozen and restarted on its
    port; its last log lines are kept for the report."""

    def __init__(self, name: str, db: str, env: dict[str, str]) -> None:
        self.name = name
        self.db = db
        self.env = env
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.lines: deque[str] = deque(maxlen=200)
        self.down = True  # killed and not yet back, or frozen
        self.starts = 0
        self._drain: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        ready = threading.Event()
        self.lines.clear()  # this process's lines only
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "driftsafe", "serve", "--db", self.db, "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        proc = self.proc

        def drain() -> None:
            assert proc.stderr is not None
            with proc.stderr:
                for line in proc.stderr:
                    self.lines.append(line.rstrip())
                    if line.startswith("driftsafe serve: listening on "):
                        ready.set()

        self._drain = threading.Thread(target=drain, daemon=True)
        self._drain.start()
        deadline = time.monotonic() + 60
        while not ready.is_set():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n" + "\n".join(self.lines))
            await asyncio.sleep(0.02)
        if self.port == 0:
            listening = [x for x in self.lines if "listening on" in x][-1]
            self.port = int(listening.rsplit(":", 1)[1])
        self.starts += 1
        self.down = False

    def kill9(self) -> None:
        assert self.proc is not None
        self.down = True
        self.proc.kill()
        self.proc.wait(30)
        if self._drain is not None:
            self._drain.join(10)

    def freeze(self) -> None:
        assert self.proc is not None
        self.down = True
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.down = False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)  # never leave a frozen process behind
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        if self._drain is not None:
            self._drain.join(10)


def state_body(ws: str, serial: int, client: str, lock_id: str, rng: random.Random) -> bytes:
    body = {
        "version": 4,
        "terraform_version": "1.15.5",
        "serial": serial,
        "lineage": f"lineage-{ws}",
        "outputs": {"writer": {"value": f"{client}/{lock_id}", "type": "string"}},
        "resources": [
            {
                "mode": "managed",
                "type": "terraform_data",
                "name": f"r{n}",
                "provider": 'provider["terraform.io/builtin/terraform"]',
                "instances": [
                    {"schema_version": 0, "attributes": {"id": f"{serial}-{n}", "pad": pad}}
                ],
            }
            for n, pad in enumerate(
                f"{rng.getrandbits(rng.choice((64, 512, 4096))):x}" for _ in range(3)
            )
        ],
    }
    return json.dumps(body, indent=2).encode()


@dataclass
class Client:
    name: str
    server: int  # which server (through its proxy) this client talks to
    base: str
    token: str
    workspaces: list[str]
    rng: random.Random
    wait: bool
    ops: list[Op]
    waiting_since: float | None = None  # a LOCK ?wait= in flight since
    cycles: int = 0
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(
            base_url=self.base,
            auth=("terraform", self.token),
            timeout=httpx.Timeout(20.0, connect=3.0),
        )

    async def _send(self, op: Op, method: str, path: str, **kw: Any) -> httpx.Response | None:
        """Send until an answer below 500 comes, as Terraform's client retries; None
        when none came before the deadline."""
        deadline = op.call + OP_DEADLINE
        pause = 0.05
        while True:
            op.attempts += 1
            try:
                response: httpx.Response | None = await self.http.request(method, path, **kw)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code < 500:
                return response
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(pause * self.rng.uniform(0.5, 1.5))
            pause = min(pause * 2, 1.0)

    def _op(self, kind: str, ws: str, lock_id: str) -> Op:
        op = Op(self.name, kind, ws, lock_id, time.monotonic())
        self.ops.append(op)
        return op

    async def lock(self, ws: str, info: dict[str, str]) -> bool | None:
        """True: held; False: not held (given up on a busy lock); None: unknown."""
        give_up = time.monotonic() + LOCK_TIMEOUT
        while True:
            op = self._op("lock", ws, info["ID"])
            params = {"wait": WAIT} if self.wait else {}
            self.waiting_since = op.call if self.wait else None
            try:
                response = await self._send(
                    op,
                    "LOCK",
                    f"/v1/locks/{ws}",
                    json=info,
                    params=params,
                    timeout=httpx.Timeout(40.0, connect=3.0),
                )
            finally:
                self.waiting_since = None
            op.ret = time.monotonic()
            if response is None:
                return None
            op.status = response.status_code
            if response.status_code == 200:
                return True
            if response.status_code in (409, 423):
                op.holder_id = response.json().get("ID")
                if op.holder_id == info["ID"]:
                    return None  # refused its own lock: the checker reports it
                if time.monotonic() > give_up:
                    return False
                await asyncio.sleep(self.rng.uniform(0.05, 0.5))
                continue
            return None

    async def get(self, ws: str, lock_id: str) -> int | None:
        op = self._op("get", ws, lock_id)
        response = await self._send(op, "GET", f"/v1/states/{ws}")
        op.ret = time.monotonic()
        if response is None:
            return None
        op.status = response.status_code
        if response.status_code == 204:
            op.serial = 0
        elif response.status_code == 200:
            md5 = base64.b64encode(hashlib.md5(response.content).digest()).decode()
            if response.headers.get("content-md5") not in (None, md5):
                op.status = 599  # a corrupt answer: never write on top of it
                return None
            op.serial = int(response.json()["serial"])
        return op.serial

    async def post(self, ws: str, lock_id: str, serial: int) -> None:
        body = state_body(ws, serial, self.name, lock_id, self.rng)
        op = self._op("post", ws, lock_id)
        op.serial = serial
        op.sha256 = hashlib.sha256(body).hexdigest()
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        response = await self._send(
            op,
            "POST",
            f"/v1/states/{ws}",
            params={"ID": lock_id},
            content=body,
            headers={"Content-Type": "application/json", "Content-MD5": md5},
        )
        op.ret = time.monotonic()
        if response is not None:
            op.status = response.status_code
            if response.status_code == 200:
                op.created = bool(response.json()["created"])

    async def unlock(self, ws: str, info: dict[str, str], *, held: bool) -> None:
        # An unlock after an unknown LOCK outcome is clean-up: its 404 is no violation.
        op = self._op("unlock" if held else "cleanup", ws, info["ID"])
        response = await self._send(op, "UNLOCK", f"/v1/locks/{ws}", json=info)
        op.ret = time.monotonic()
        if response is not None:
            op.status = response.status_code

    async def cycle(self) -> None:
        ws = self.rng.choice(self.workspaces)
        lock_id = str(uuid.UUID(int=self.rng.getrandbits(128)))
        info = {
            "ID": lock_id,
            "Operation": "OperationTypeApply",
            "Info": "",
            "Who": f"{self.name}@faults",
            "Version": "1.15.5",
            "Created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "Path": "",
        }
        held = await self.lock(ws, info)
        if held is False:
            return
        try:
            if held:
                serial = await self.get(ws, lock_id)
                if serial is not None:
                    await self.post(ws, lock_id, serial + 1)
        finally:
            await self.unlock(ws, info, held=bool(held))
        self.cycles += 1

    async def run(self, until: float) -> None:
        try:
            while time.monotonic() < until:
                await self.cycle()
        finally:
            await self.http.aclose()


@dataclass
class Run:
    servers: list[ServerProc]
    proxies: list[faultproxy.FaultProxy]
    clients: list[Client]
    rng: random.Random
    faults: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def up_server(self, exclude: set[int] = frozenset()) -> int | None:  # type: ignore[assignment]
        """An up server whose loss leaves another one up."""
        up = [i for i, s in enumerate(self.servers) if not s.down and i not in exclude]
        if len(up) < 2:
            return None
        return self.rng.choice(up)

    async def _pick(self, until: float, waiters: bool = False) -> int | None:
        while time.monotonic() < until:
            index = self.up_server()
            if waiters:
                now = time.monotonic()
                parked = {
                    c.server
                    for c in self.clients
                    if c.waiting_since is not None and now - c.waiting_since > 0.3
                }
                candidates = [i for i in parked if not self.servers[i].down]
                others_up = sum(not s.down for s in self.servers) >= 2
                index = self.rng.choice(sorted(candidates)) if candidates and others_up else None
            if index is not None:
                return index
            await asyncio.sleep(0.05)
        return None

    async def server_fault(self, kind: str, until: float) -> None:
        if kind == PG_RESTART:
            await asyncio.to_thread(pgcontrol.restart)
            self.faults[kind] += 1
            return
        index = await self._pick(until, waiters=kind == KILL_WITH_WAITERS)
        if index is None:
            self.notes.append(f"{kind}: no server could be taken down in its slot")
            return
        server = self.servers[index]
        if kind == SIGSTOP:
            server.freeze()
            self.faults[kind] += 1
            try:
                await asyncio.sleep(self.rng.uniform(0.5, 2.5))
            finally:
                server.thaw()
            return
        server.kill9()
        self.faults[kind] += 1
        await asyncio.sleep(self.rng.uniform(0.2, 1.0))
        await self.restart(server)

    async def restart(self, server: ServerProc) -> None:
        # A start can fail while PostgreSQL restarts under it: try again, bounded.
        for attempt in range(5):
            try:
                await server.start()
                return
            except RuntimeError as exc:
                if attempt == 4:
                    raise
                last = server.lines[-1] if server.lines else str(exc)
                self.notes.append(f"{server.name} failed to start, retried: {last:.200}")
                await asyncio.sleep(1.0)


def _slots(kinds: list[str], per_kind: int, start: float, span: float, rng: random.Random):  # type: ignore[no-untyped-def]
    """(time, kind) for ``per_kind`` faults of each kind spread over ``span``: rounds
    in which every kind comes once, in a shuffled order."""
    order: list[str] = []
    for _ in range(per_kind):
        round_ = list(kinds)
        rng.shuffle(round_)
        order += round_
    step = span / max(1, len(order))
    return [(start + (n + 0.5) * step, kind) for n, kind in enumerate(order)]


async def _inject_server_faults(run: Run, kinds: list[str], per_kind: int, span: float) -> None:
    start = time.monotonic()
    slots = _slots(kinds, per_kind, start, span, run.rng)
    pending: set[asyncio.Task[None]] = set()
    try:
        for n, (at, kind) in enumerate(slots):
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            until = slots[n + 1][0] if n + 1 < len(slots) else start + span
            # A fault may look for its moment (a server with waiters) a little past its slot.
            task = asyncio.ensure_future(run.server_fault(kind, max(until, at + 2.0) + 5.0))
            pending.add(task)
            task.add_done_callback(pending.discard)
    finally:
        # Every frozen server is thawed and every killed one restarted before this ends.
        results = await asyncio.gather(*pending, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                run.notes.append(f"a fault failed: {result!r}")


async def _inject_proxy_faults(run: Run, per_kind: int, span: float) -> None:
    start = time.monotonic()
    # A few spare ones: a fault counts when applied, and the last armed may find no traffic.
    slots = _slots(list(faultproxy.KINDS), per_kind + 2, start, span, run.rng)
    for at, kind in slots:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        run.rng.choice(run.proxies).arm(kind)


async def _backup_midway(url: str, dest: Path, after: float, out: dict[str, Any]) -> None:
    await asyncio.sleep(after)
    started = time.monotonic()
    result = await asyncio.to_thread(backup_database, url, dest)
    out["backup"] = {**result.to_json(), "taken_at_second": round(after, 1)}
    out["backup"]["seconds"] = round(time.monotonic() - started, 3)


def _final(admin: httpx.Client, workspaces: list[str]) -> Final:
    versions: dict[str, list[StoredVersion]] = {}
    locks = []
    for ws in workspaces:
        listed = admin.get(f"/api/v1/workspaces/{ws}/versions")
        listed.raise_for_status()
        rows = listed.json()["versions"]
        # Newest first by serial; the order written is the order of created_at.
        ordered = sorted(rows, key=lambda v: (v["created_at"], v["serial"]))
        versions[ws] = [StoredVersion(v["serial"], v["sha256"], v["created_at"]) for v in ordered]
        held = admin.get(f"/api/v1/workspaces/{ws}/lock")
        held.raise_for_status()
        lock = held.json()["lock"]
        if lock is not None:
            locks.append(FinalLock(ws, lock["id"], bool(lock["stale"])))
    return Final(versions, locks)


def _pg_schema(pg_url: str) -> tuple[str, str]:
    import psycopg

    schema = f"faults_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in pg_url else "?"
    return f"{pg_url}{sep}options={quote(f'-csearch_path={schema}')}", schema


def _drop_pg_schema(pg_url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


async def _run(
    *,
    url: str,
    settings: Settings,
    env: dict[str, str],
    seconds: float,
    clients: int,
    workspaces: int,
    seed: int,
    postgres: bool,
    backup: Path | None,
) -> dict[str, Any]:
    rng = random.Random(seed)
    store = open_store(settings, url)
    try:
        writer = store.create_token("faults-writer", "write")[1]
        admin = store.create_token("faults-admin", "admin")[1]
    finally:
        store.close()
    servers = [ServerProc(f"server-{n}", url, env) for n in range(2)]
    proxies: list[faultproxy.FaultProxy] = []
    ops: list[Op] = []
    out: dict[str, Any] = {}
    try:
        for server in servers:
            await server.start()
            proxy = faultproxy.FaultProxy(server.port, random.Random(rng.getrandbits(64)))
            await proxy.start()
            proxies.append(proxy)
        names = [f"ws-{n}" for n in range(workspaces)]
        team = [
            Client(
                name=f"client-{n}",
                server=n % len(servers),
                base=f"http://127.0.0.1:{proxies[n % len(servers)].port}",
                token=writer,
                workspaces=names,
                rng=random.Random(rng.getrandbits(64)),
                wait=n % 2 == 0,
                ops=ops,
            )
            for n in range(clients)
        ]
        run = Run(servers, proxies, team, random.Random(rng.getrandbits(64)))
        kinds = [KILL9, SIGSTOP, KILL_WITH_WAITERS] + ([PG_RESTART] if postgres else [])
        per_kind = max(1, math.ceil(PER_FIVE_MINUTES * seconds / 300))
        started = time.monotonic()
        until = started + seconds
        span = seconds * 0.95
        work = [asyncio.ensure_future(c.run(until)) for c in team]
        injectors = [
            asyncio.ensure_future(_inject_server_faults(run, kinds, per_kind, span)),
            asyncio.ensure_future(_inject_proxy_faults(run, per_kind, span)),
        ]
        if backup is not None:
            injectors.append(asyncio.ensure_future(_backup_midway(url, backup, seconds / 2, out)))
        try:
            await asyncio.gather(*injectors)
            # Cycles in flight finish: each request is bounded by OP_DEADLINE.
            done, late = await asyncio.wait(
                work, timeout=max(0.0, until - time.monotonic()) + 4 * OP_DEADLINE
            )
            for task in late:
                task.cancel()
                run.notes.append("a client was cut off at the run's hard deadline")
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in work + injectors:
                task.cancel()
            await asyncio.gather(*work, *injectors, return_exceptions=True)
        elapsed = time.monotonic() - started
        for server in servers:
            if server.proc is None or server.proc.poll() is not None:
                await run.restart(server)
        with httpx.Client(
            base_url=servers[0].url, headers={"Authorization": f"Bearer {admin}"}, timeout=60
        ) as api:
            final = _final(api, names)
        for proxy in proxies:
            run.faults.update(proxy.applied)
    finally:
        for proxy in proxies:
            await proxy.close()
        for server in servers:
            server.stop()
    verified = verify_database(settings, url)
    final.verify_problems = [f"{p.kind} {p.name}: {p.message}" for p in verified.problems]
    report = check(ops, final)
    out["_final"] = final  # for callers of run_faults; never printed
    faults = {kind: run.faults.get(kind, 0) for kind in kinds + list(faultproxy.KINDS)}
    out.update(
        {
            "seconds": round(elapsed, 1),
            "ops": len(ops),
            "faults": faults,
            "violations": [v.to_json() for v in report.violations],
            "acknowledged_writes": report.acknowledged_writes,
            "acknowledged_writes_lost": report.count(ACK_LOST),
            "mutual_exclusion_violations": report.count(MUTUAL_EXCLUSION),
            "serial_regressions": report.count(SERIAL_REGRESSION, STALE_READ),
            "store": "postgresql" if postgres else "sqlite",
            "seed": seed,
            "clients": clients,
            "workspaces": workspaces,
            "cycles": sum(c.cycles for c in team),
            # Requests sent more than once (an answer lost, a 5xx, a server down) and
            # writes acknowledged as a replay of one already stored (created: false).
            "retried_ops": sum(1 for op in ops if op.attempts > 1),
            "retried_ops_by_kind": dict(
                sorted(Counter(op.kind for op in ops if op.attempts > 1).items())
            ),
            "replayed_writes": sum(1 for op in ops if op.created is False),
            "versions_stored": sum(len(v) for v in final.versions.values()),
            "verified_versions": verified.counts.get("versions", 0),
            "server_starts": sum(s.starts for s in servers),
            "notes": run.notes,
        }
    )
    return out


def run_faults(
    *,
    store: str = "sqlite",
    seconds: float = 60.0,
    clients: int = 8,
    workspaces: int = 3,
    seed: int | None = None,
    pg_url: str | None = None,
    backup: Path | None = None,
    workdir: Path | None = None,
    key: str | None = None,
) -> tuple[dict[str, Any], Final]:
    """One bounded fault-injection run: the result ``--json`` prints, and what the
    store held at the end. ``key``: the store's key (default: a new one)."""
    if store not in ("sqlite", "pg"):
        raise ValueError(f"store must be sqlite or pg, not {store!r}")
    seed = seed if seed is not None else random.SystemRandom().getrandbits(32)
    postgres = store == "pg"
    if postgres and not pg_url:
        raise ValueError("a PostgreSQL run needs --pg URL (or DRIFTSAFE_TEST_PG_URL)")
    if postgres and (pgcontrol.cluster() is None or os.geteuid() != 0):
        raise ValueError("a PostgreSQL run restarts PostgreSQL: it needs root and pg_ctlcluster")
    with tempfile.TemporaryDirectory(prefix="ds-faults-", dir=workdir) as tmp:
        home = Path(tmp)
        key = key or new_key_text()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTSAFE_")}
        env.update(
            {
                "DRIFTSAFE_HOME": str(home),
                "DRIFTSAFE_ENCRYPTION_KEY": key,
                "DRIFTSAFE_LOG_LEVEL": "warning",
                "DRIFTSAFE_LOCK_STALE_AFTER": STALE_AFTER,
                "DRIFTSAFE_SHUTDOWN_GRACE": "5s",
            }
        )
        settings = Settings.from_env(env)
        schema = None
        if postgres:
            assert pg_url is not None
            url, schema = _pg_schema(pg_url)
        else:
            url = f"sqlite:///{home / 'faults.db'}"
        try:
            result = asyncio.run(
                _run(
                    url=url,
                    settings=settings,
                    env=env,
                    seconds=seconds,
                    clients=clients,
                    workspaces=workspaces,
                    seed=seed,
                    postgres=postgres,
                    backup=backup,
                )
            )
            final = result.pop("_final")
            return result, final
        finally:
            if postgres:
                pgcontrol.ensure_running()
                assert pg_url is not None and schema is not None
                _drop_pg_schema(pg_url, schema)


def _print(result: dict[str, Any]) -> None:
    print(
        f"faults on {result['store']} (seed {result['seed']}): {result['seconds']} s, "
        f"{result['clients']} clients on {result['workspaces']} workspaces, "
        f"{result['ops']} operations ({result['retried_ops']} sent more than once: "
        + ", ".join(f"{k} {v}" for k, v in result["retried_ops_by_kind"].items())
        + "), "
        f"{result['cycles']} cycles"
    )
    print("faults injected: " + ", ".join(f"{k} {v}" for k, v in result["faults"].items()))
    print(
        f"acknowledged writes {result['acknowledged_writes']}, lost "
        f"{result['acknowledged_writes_lost']}; mutual exclusion violations "
        f"{result['mutual_exclusion_violations']}; serial regressions "
        f"{result['serial_regressions']}; replayed writes {result['replayed_writes']}; "
        f"versions stored {result['versions_stored']}, "
        f"verified {result['verified_versions']}"
    )
    for note in result["notes"]:
        print(f"note: {note}")
    if "backup" in result:
        print(f"backup taken during the run: {result['backup']}")
    print(f"violations: {len(result['violations'])}")
    for violation in result["violations"]:
        print(f"  {violation['kind']} [{violation['workspace']}]: {violation['detail']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "pg"), default="sqlite")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workspaces", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None, help="replay a run's schedule")
    parser.add_argument("--pg", default=os.environ.get("DRIFTSAFE_TEST_PG_URL"))
    parser.add_argument("--backup", type=Path, default=None, help="back the store up midway")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 3600 or not 1 <= args.clients <= 64:
        parser.error("--seconds must be 1..3600 and --clients 1..64")
    seed = args.seed if args.seed is not None else random.SystemRandom().getrandbits(32)
    if not args.json:
        print(f"seed {seed} (replay with --seed {seed})", flush=True)
    try:
        result, _ = run_faults(
            store=args.store,
            seconds=args.seconds,
            clients=args.clients,
            workspaces=args.workspaces,
            seed=seed,
            pg_url=args.pg,
            backup=args.backup,
        )
    except ValueError as exc:
        print(f"faults: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return 0 if not result["violations"] else 2


if __name__ == "__main__":
    sys.exit(main())
