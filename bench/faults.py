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
import json
import math
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
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
from faultclient import OP_DEADLINE, Client  # noqa: E402
from faultinject import (  # noqa: E402
    KILL9,
    KILL_WITH_WAITERS,
    PG_RESTART,
    SIGSTOP,
    Run,
    ServerProc,
    inject_proxy_faults,
    inject_server_faults,
)

from driftsafe.settings import Settings  # noqa: E402
from driftsafe.store import backup_database, open_store, verify_database  # noqa: E402
from driftsafe.store.crypto import new_key_text  # noqa: E402

# Faults of each kind per 5 minutes of run (the "Done when" asks for 20).
PER_FIVE_MINUTES = 24
# Locks older than this count as stale (the server's DRIFTSAFE_LOCK_STALE_AFTER).
STALE_AFTER = "60s"


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
) -> tuple[dict[str, Any], Final]:
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
            asyncio.ensure_future(inject_server_faults(run, kinds, per_kind, span)),
            asyncio.ensure_future(inject_proxy_faults(run, per_kind, span)),
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
    return out, final


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
            return asyncio.run(
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
