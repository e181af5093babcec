"""Benchmark: the web console's pages on a big store, on SQLite and on PostgreSQL.

(a) a workspace with 20,000 versions: its versions page, first page and one deep in
    the history (keyset pagination: both should cost the same);
(b) the workspace list with 2,000 workspaces: first page and a deep page;
(c) the diff page for two versions of a ~20 MiB state (~40,000 resources, 100
    changed): its time, and the server's memory growth (peak RSS above its size before
    the request) as a multiple of the state's size.

Targets (issue 9): (a) and (b) under 100 ms median and 300 ms p95; (c) under 2 s and
under 3x the state size. Every page time is also printed as a ratio to GET /healthz
measured interleaved in the same run (this machine is shared and noisy).

    .venv/bin/python bench/console.py [--pg URL] [--versions 20000] [--workspaces 2000]
        [--resources 40000] [--repeat 40] [--json]

The server runs as a separate `driftsafe serve` process, as in production; the store
is filled directly (batched transactions) to keep the set-up short. --pg defaults to
DRIFTSAFE_TEST_PG_URL; without it the PostgreSQL part is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from driftsafe.settings import Settings
from driftsafe.state import parse_state
from driftsafe.store import Actor, open_store
from driftsafe.store.crypto import new_key_text

sys.path.insert(0, str(Path(__file__).parent))
from server import Server, drop_schema, pg_schema_url, token  # noqa: E402

ACTOR = Actor("bench", "127.0.0.1")
BIG_WS = "bench/history"
DIFF_WS = "bench/big"


def small_state(serial: int, n: int = 5) -> bytes:
    resources = [
        {
            "mode": "managed",
            "type": "terraform_data",
            "name": f"r{i}",
            "instances": [
                {
                    "schema_version": 0,
                    "attributes": {
                        "id": f"id-{i}",
                        "input": {
                            "value": f"v{serial if i == serial % n else 0}",
                            "type": "string",
                        },
                    },
                }
            ],
        }
        for i in range(n)
    ]
    body = {
        "version": 4,
        "terraform_version": "1.15.5",
        "serial": serial,
        "lineage": "bench",
        "outputs": {},
        "resources": resources,
    }
    return json.dumps(body, indent=2).encode()


def big_state(serial: int, resources: int, changed: set[int]) -> bytes:
    """~``resources`` aws_instance-like resources (~540 bytes each), the ``changed``
    ones with other values."""
    rng = random.Random(7)
    parts = []
    for i in range(resources):
        rid = f"i-{rng.getrandbits(64):016x}"
        tag = "new" if i in changed else "old"
        attrs = {
            "ami": f"ami-{rng.getrandbits(48):012x}",
            "arn": f"arn:aws:ec2:eu-west-1:123456789012:instance/{rid}",
            "id": rid,
            "private_ip": f"10.{i % 256}.{(i // 256) % 256}.{rng.randrange(256)}",
            "subnet_id": f"subnet-{rng.getrandbits(32):08x}",
            "tags": {"Name": f"web-{i}", "revision": tag},
        }
        resource = {
            "mode": "managed",
            "type": "aws_instance",
            "name": f"web_{i}",
            "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
            "instances": [{"schema_version": 1, "attributes": attrs}],
        }
        parts.append(json.dumps(resource, indent=2))
    head = json.dumps(
        {
            "version": 4,
            "terraform_version": "1.15.5",
            "serial": serial,
            "lineage": "big",
            "outputs": {},
        }
    )[:-1]
    return (head + ', "resources": [' + ",\n".join(parts) + "]}").encode()


def fill(
    db: str, settings: Settings, versions: int, workspaces: int, resources: int
) -> dict[str, Any]:
    store = open_store(settings, db)
    timings: dict[str, Any] = {}
    try:
        started = time.monotonic()
        batch = 1000
        for first in range(1, versions + 1, batch):
            with store.write_tx() as conn:
                store.hold_workspace(conn, BIG_WS, time.time())
                for serial in range(first, min(first + batch, versions + 1)):
                    body = small_state(serial)
                    store._insert_version(  # noqa: SLF001 - the bench's fast fill
                        conn,
                        BIG_WS,
                        store.seal(BIG_WS, body),
                        parse_state(body),
                        now=time.time(),
                        actor=ACTOR,
                        who="bench@host",
                        lock_id=None,
                        findings=[],
                    )
        timings["fill_versions_s"] = time.monotonic() - started
        started = time.monotonic()
        with store.write_tx() as conn:
            for i in range(workspaces):
                ws = f"team-{i % 20:02d}/app-{i:05d}"
                store.hold_workspace(conn, ws, time.time())
                body = small_state(1)
                store._insert_version(  # noqa: SLF001
                    conn,
                    ws,
                    store.seal(ws, body),
                    parse_state(body),
                    now=time.time(),
                    actor=ACTOR,
                    who="bench@host",
                    lock_id=None,
                    findings=[],
                )
        for i in range(0, workspaces, 10):
            store.add_drift_report(
                f"team-{i % 20:02d}/app-{i:05d}", {"status": "drift", "findings": [{}]}, ACTOR
            )
        for i in range(0, workspaces, 50):
            info = {"ID": f"lock-{i}", "Operation": "OperationTypeApply", "Who": "ci@runner"}
            store.acquire_lock(f"team-{i % 20:02d}/app-{i:05d}", info, ACTOR)
        timings["fill_workspaces_s"] = time.monotonic() - started
        started = time.monotonic()
        changed = set(random.Random(3).sample(range(resources), 100))
        old = big_state(1, resources, set())
        new = big_state(2, resources, changed)
        timings["state_bytes"] = len(new)
        for body in (old, new):
            store.write_state(
                DIFF_WS, body, parse_state(body, keep_tree=False), ACTOR, lock_id=None, findings=[]
            )
        timings["fill_big_s"] = time.monotonic() - started
    finally:
        store.close()
    return timings


def login(url: str, tok: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=120)
    answer = client.post("/ui/login", data={"token": tok})
    if answer.status_code != 303:
        sys.exit(f"login failed: {answer.status_code} {answer.text[:200]}")
    return client


def timed(client: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    answer = client.get(path)
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        sys.exit(f"GET {path}: {answer.status_code} {answer.text[:300]}")
    return elapsed * 1000


def pages(client: httpx.Client, versions: int, workspaces: int, repeat: int) -> dict[str, Any]:
    deep_serial = versions // 2
    deep_ws = f"team-{(workspaces // 2) % 20:02d}/app-{workspaces // 2:05d}"
    paths = {
        "baseline /healthz": "/healthz",
        "versions, first page": f"/ui/workspaces/{BIG_WS}?tab=versions",
        "versions, deep page": f"/ui/workspaces/{BIG_WS}?tab=versions&next={deep_serial}",
        "workspace list, first page": "/ui/",
        "workspace list, deep page": f"/ui/?next={deep_ws}",
    }
    cold = {name: timed(client, path) for name, path in paths.items()}  # fills version info
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeat):
        for name, path in paths.items():
            samples[name].append(timed(client, path))
    base = statistics.median(samples["baseline /healthz"])
    out = {}
    for name, values in samples.items():
        values.sort()
        out[name] = {
            "cold_ms": round(cold[name], 1),
            "median_ms": round(statistics.median(values), 1),
            "p95_ms": round(values[max(0, int(len(values) * 0.95) - 1)], 1),
            "ratio_to_healthz": round(statistics.median(values) / base, 1),
        }
    return out


def diff_page(server: Server, client: httpx.Client, state_bytes: int) -> dict[str, Any]:
    # The page around it, warm; the version info of big states is computed in the
    # background: wait for it, so that it does not share the measured peak.
    deadline = time.monotonic() + 120
    while "computed in the background" in client.get(f"/ui/workspaces/{DIFF_WS}").text:
        if time.monotonic() > deadline:
            sys.exit("the version info of the big states was never computed")
        time.sleep(0.5)
    idle, _ = server.rss()
    # Reset the peak (VmHWM) to the current size: the growth is then this request's.
    Path(f"/proc/{server.proc.pid}/clear_refs").write_text("5")
    elapsed = timed(client, f"/ui/workspaces/{DIFF_WS}/diff?from=1&to=2")
    _, peak = server.rss()
    growth = max(0, peak - idle)
    again = timed(client, f"/ui/workspaces/{DIFF_WS}/diff?from=1&to=2")
    return {
        "state_mib": round(state_bytes / 2**20, 1),
        "first_s": round(elapsed / 1000, 2),
        "again_s": round(again / 1000, 2),
        "idle_rss_mib": round(idle / 2**20, 1),
        "peak_rss_mib": round(peak / 2**20, 1),
        "growth_over_size": round(growth / state_bytes, 2),
    }


def run(db: str, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings.from_env()
    result: dict[str, Any] = {
        "fill": fill(db, settings, args.versions, args.workspaces, args.resources)
    }
    tok = token(db, env)
    server = Server(db, env)
    try:
        client = login(server.url, tok)
        result["diff"] = diff_page(server, client, result["fill"]["state_bytes"])
        result["pages"] = pages(client, args.versions, args.workspaces, args.repeat)
        client.close()
    finally:
        server.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg", default=os.environ.get("DRIFTSAFE_TEST_PG_URL"))
    parser.add_argument("--versions", type=int, default=20_000)
    parser.add_argument("--workspaces", type=int, default=2_000)
    parser.add_argument("--resources", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ds-bench-console-"))
    env = {"DRIFTSAFE_HOME": str(base / "home"), "DRIFTSAFE_ENCRYPTION_KEY": new_key_text()}
    os.environ.update(env)
    results: dict[str, Any] = {"load": os.getloadavg()[0]}
    results["sqlite"] = run(f"sqlite:///{base / 'console.db'}", env, args)
    if not args.json:
        report(results)  # now: the PostgreSQL part takes a while
    if args.pg:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        try:
            results["postgresql"] = run(pg_schema_url(args.pg, schema), env, args)
        finally:
            drop_schema(args.pg, schema)
        if not args.json:
            report({"load": os.getloadavg()[0], "postgresql": results["postgresql"]})
    if args.json:
        print(json.dumps(results, indent=2))


def report(r: dict[str, Any]) -> None:
    print(f"console bench (1-min load average: {r['load']:.1f})")
    for db in ("sqlite", "postgresql"):
        if db not in r:
            continue
        res = r[db]
        f = res["fill"]
        print(
            f"\n{db}: filled {f['fill_versions_s']:.0f} s (versions), "
            f"{f['fill_workspaces_s']:.0f} s (workspaces), "
            f"{f['fill_big_s']:.0f} s (two {f['state_bytes'] / 2**20:.1f} MiB states)"
        )
        for name, p in res["pages"].items():
            verdict = ""
            if not name.startswith("baseline"):
                ok = p["median_ms"] < 100 and p["p95_ms"] < 300
                verdict = "  ok (<100 ms median, <300 ms p95)" if ok else "  OVER TARGET"
            print(
                f"  {name:28} median {p['median_ms']:7.1f} ms  p95 {p['p95_ms']:7.1f} ms  "
                f"(x{p['ratio_to_healthz']} healthz; cold {p['cold_ms']:.0f} ms){verdict}"
            )
        d = res["diff"]
        ok = d["first_s"] < 2 and d["growth_over_size"] < 3
        print(
            f"  diff page, {d['state_mib']} MiB state: {d['first_s']:.2f} s "
            f"(again {d['again_s']:.2f} s), "
            f"RSS {d['idle_rss_mib']:.0f} -> peak {d['peak_rss_mib']:.0f} MiB: growth "
            f"{d['growth_over_size']:.2f}x the state size"
            + ("  ok (<2 s, <3x)" if ok else "  OVER TARGET")
        )


if __name__ == "__main__":
    main()
