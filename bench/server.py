"""Benchmark: the driftsafe state server, in one run.

(a) per-command overhead: `plan` and `apply` with 1 and 100 `terraform_data`, on the
    local backend, on driftsafe's http backend (SQLite) and on Terraform's own `pg`
    backend (the local PostgreSQL), as ratios to local;
(b) lock+get+post+unlock cycles per second with 1, 8 and 32 concurrent clients, on
    SQLite and on PostgreSQL (each client its own workspace);
(c) a 50 MiB state: write and read time, and the server's peak memory;
(d) lock hand-over latency: LOCK ?wait= versus Terraform's own -lock-timeout retry.

    .venv/bin/python bench/server.py [--pg URL] [--reps 3] [--seconds 3] [--json]

The server always runs as a separate `driftsafe serve` process (as in production);
--pg defaults to DRIFTSAFE_TEST_PG_URL; without it the PostgreSQL parts are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from driftsafe.engine import Engine, get_engine
from driftsafe.settings import Settings
from driftsafe.store.crypto import new_key_text

APPLY = ["apply", "-auto-approve", "-input=false", "-no-color"]
PLAN = ["plan", "-input=false", "-no-color"]


class Server:
    """`python -m driftsafe serve` on a free port; stderr drained in a thread."""

    def __init__(self, db: str, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "driftsafe", "serve", "--db", db, "--port", "0"],
            env={**os.environ, **env, "DRIFTSAFE_LOG_LEVEL": "warning"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()
        if not self.ready.wait(30):
            self.stop()
            sys.exit("server did not start:\n" + "".join(self.lines))
        self.url = [x for x in self.lines if "listening on" in x][0].split()[-1]

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if "listening on" in line:
                self.ready.set()

    def rss(self) -> tuple[int, int]:
        """(current, peak) resident memory in bytes."""
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(30)


def token(db: str, env: dict[str, str], scope: str = "admin") -> str:
    name = f"bench-{uuid.uuid4().hex[:6]}"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftsafe",
            "token",
            "create",
            name,
            "--scope",
            scope,
            "--workspace",
            "*",
            "--db",
            db,
            "--json",
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(out.stdout)["token"])


def pg_schema_url(pg: str, schema: str) -> str:
    import psycopg

    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in pg else "?"
    return f"{pg}{sep}options={quote(f'-csearch_path={schema}')}"


def drop_schema(pg: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# (a) ---------------------------------------------------------------------------------


def root_body(n: int) -> str:
    return f"""
variable "v" {{
  type    = string
  default = "0"
}}
resource "terraform_data" "r" {{
  count = {n}
  input = "${{var.v}}-${{count.index}}"
}}
"""


def backend_block(kind: str, url: str = "", ws: str = "", pg: str = "", schema: str = "") -> str:
    if kind == "local":
        return ""
    if kind == "http":
        return f"""terraform {{
  backend "http" {{
    address        = "{url}/v1/states/{ws}"
    lock_address   = "{url}/v1/locks/{ws}"
    unlock_address = "{url}/v1/locks/{ws}"
    lock_method    = "LOCK"
    unlock_method  = "UNLOCK"
  }}
}}
"""
    return f"""terraform {{
  backend "pg" {{
    conn_str    = "{pg}"
    schema_name = "{schema}"
  }}
}}
"""


def timed(engine: Engine, args: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = engine.start(args, cwd=cwd, env=env)
    # Wait without a timeout and bound the run with a timer instead: a wait with a
    # timeout polls the child every 50 ms, which rounds a ~0.2 s command to the next
    # poll and swamps the ratios this measures.
    watchdog = threading.Timer(600, proc.kill)
    watchdog.start()
    try:
        result = proc.wait()
    finally:
        watchdog.cancel()
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"terraform {' '.join(args)} failed in {cwd}:\n{result.stderr}")
    return elapsed


def overhead(
    engine: Engine, base: Path, server: Server, tok: str, pg: str | None, reps: int
) -> dict[str, Any]:
    env = {"TF_HTTP_USERNAME": "bench", "TF_HTTP_PASSWORD": tok, "TF_IN_AUTOMATION": "1"}
    kinds = ["local", "http"] + (["pg"] if pg else [])
    out: dict[str, Any] = {}
    schemas = []
    for n in (1, 100):
        roots = {}
        for kind in kinds:
            root = base / f"a-{kind}-{n}"
            root.mkdir()
            schema = f"bench_tf_{uuid.uuid4().hex[:8]}"
            if kind == "pg":
                schemas.append(schema)
            pg_conn = (pg or "") + ("&" if pg and "?" in pg else "?") + "sslmode=disable"
            (root / "backend.tf").write_text(
                backend_block(kind, server.url, f"bench/a{n}", pg_conn, schema)
            )
            (root / "main.tf").write_text(root_body(n))
            timed(engine, ["init", "-input=false", "-no-color"], root, env)
            timed(engine, APPLY, root, env)  # create: not timed against others
            roots[kind] = root
        plans: dict[str, list[float]] = {kind: [] for kind in kinds}
        applies: dict[str, list[float]] = {kind: [] for kind in kinds}
        # Backends take turns within each repetition, so a slow spell of the machine
        # (other jobs) weighs on every backend alike instead of on one ratio.
        for rep in range(reps):
            for kind in kinds:
                plans[kind].append(timed(engine, PLAN, roots[kind], env))
                applies[kind].append(
                    timed(engine, [*APPLY, "-var", f"v={rep + 1}"], roots[kind], env)
                )
        for kind in kinds:
            out[f"{kind}/{n}"] = {
                "plan_s": statistics.median(plans[kind]),
                "apply_s": statistics.median(applies[kind]),
            }
    for n in (1, 100):
        local = out[f"local/{n}"]
        for kind in kinds[1:]:
            row = out[f"{kind}/{n}"]
            row["plan_ratio"] = row["plan_s"] / local["plan_s"]
            row["apply_ratio"] = row["apply_s"] / local["apply_s"]
    if pg:
        for schema in schemas:
            drop_schema(pg, schema)
    return out


# (b) ---------------------------------------------------------------------------------


def small_state(serial: int, lineage: str) -> bytes:
    resources = [
        {
            "mode": "managed",
            "type": "terraform_data",
            "name": f"r{i}",
            "provider": 'provider["terraform.io/builtin/terraform"]',
            "instances": [{"schema_version": 0, "attributes": {"id": f"id-{i}", "input": "x"}}],
        }
        for i in range(5)
    ]
    return json.dumps(
        {
            "version": 4,
            "terraform_version": "1.15.5",
            "serial": serial,
            "lineage": lineage,
            "outputs": {},
            "resources": resources,
        }
    ).encode()


async def _client_loop(url: str, tok: str, ws: str, stop_at: float, counts: list[int]) -> None:
    lineage = str(uuid.uuid4())
    serial = 0
    async with httpx.AsyncClient(base_url=url, auth=("bench", tok), timeout=60) as c:
        while time.perf_counter() < stop_at:
            lock_id = str(uuid.uuid4())
            info = {"ID": lock_id, "Who": ws, "Operation": "OperationTypeApply"}
            r = await c.request("LOCK", f"/v1/locks/{ws}", json=info)
            r.raise_for_status()
            r = await c.get(f"/v1/states/{ws}")
            serial += 1
            body = small_state(serial, lineage)
            md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
            r = await c.post(
                f"/v1/states/{ws}",
                params={"ID": lock_id},
                content=body,
                headers={"Content-MD5": md5, "Content-Type": "application/json"},
            )
            r.raise_for_status()
            r = await c.request("UNLOCK", f"/v1/locks/{ws}", json=info)
            r.raise_for_status()
            counts.append(1)


def cycles(url: str, tok: str, clients: int, seconds: float) -> float:
    counts: list[int] = []
    prefix = uuid.uuid4().hex[:6]

    async def main() -> None:
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(
            *[_client_loop(url, tok, f"cyc/{prefix}/{i}", stop_at, counts) for i in range(clients)]
        )

    started = time.perf_counter()
    asyncio.run(main())
    return len(counts) / (time.perf_counter() - started)


# (c) ---------------------------------------------------------------------------------


def big_state(target: int) -> bytes:
    """~target bytes: resources carrying large, config-like string attributes."""
    chunk = "".join(
        f"setting_{i} = value number {i} of this rendered config file\n" for i in range(1700)
    )  # ~100 KB
    resources = []
    i = 0
    size = 0
    while size < target:
        content = f"# resource {i}\n" + chunk
        resources.append(
            {
                "mode": "managed",
                "type": "terraform_data",
                "name": f"big{i}",
                "provider": 'provider["terraform.io/builtin/terraform"]',
                "instances": [
                    {"schema_version": 0, "attributes": {"id": f"id-{i}", "input": content}}
                ],
            }
        )
        size += len(content) + 200
        i += 1
    return json.dumps(
        {
            "version": 4,
            "terraform_version": "1.15.5",
            "serial": 1,
            "lineage": "big",
            "outputs": {},
            "resources": resources,
        }
    ).encode()


def big(server: Server, tok: str) -> dict[str, Any]:
    body = big_state(50 * 1024 * 1024)
    idle, _ = server.rss()
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    with httpx.Client(base_url=server.url, auth=("bench", tok), timeout=600) as c:
        started = time.perf_counter()
        r = c.post("/v1/states/big", content=body, headers={"Content-MD5": md5})
        write_s = time.perf_counter() - started
        r.raise_for_status()
        started = time.perf_counter()
        got = c.get("/v1/states/big")
        read_s = time.perf_counter() - started
        assert got.content == body
    _, peak = server.rss()
    return {
        "size_mib": len(body) / 2**20,
        "write_s": write_s,
        "read_s": read_s,
        "idle_rss_mib": idle / 2**20,
        "peak_rss_mib": peak / 2**20,
        "peak_over_size": peak / len(body),
        "growth_over_size": (peak - idle) / len(body),
    }


# (d) ---------------------------------------------------------------------------------


def handover(
    engine: Engine, base: Path, server: Server, tok: str, delays: list[float]
) -> dict[str, Any]:
    env = {"TF_HTTP_USERNAME": "bench", "TF_HTTP_PASSWORD": tok, "TF_IN_AUTOMATION": "1"}
    out: dict[str, Any] = {}
    admin = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {tok}"})
    holder = httpx.Client(base_url=server.url, auth=("bench", tok), timeout=60)
    for mode in ("wait", "lock-timeout"):
        samples = []
        for k, delay in enumerate(delays):
            ws = f"handover/{mode}/{k}"
            root = base / f"d-{mode}-{k}"
            root.mkdir()
            block = backend_block("http", server.url, ws)
            if mode == "wait":
                block = block.replace(
                    f'lock_address   = "{server.url}/v1/locks/{ws}"',
                    f'lock_address   = "{server.url}/v1/locks/{ws}?wait=120s"',
                )
            (root / "backend.tf").write_text(block)
            (root / "main.tf").write_text(root_body(1))
            timed(engine, ["init", "-input=false", "-no-color"], root, env)
            info = {"ID": f"holder-{k}", "Who": "bench-holder"}
            holder.request("LOCK", f"/v1/locks/{ws}", json=info).raise_for_status()
            args = APPLY + (["-lock-timeout=120s"] if mode == "lock-timeout" else [])
            proc = engine.start(args, cwd=root, env=env)
            time.sleep(delay)
            released = time.time()
            holder.request("UNLOCK", f"/v1/locks/{ws}", json=info).raise_for_status()
            result = proc.wait(180)
            if result.returncode != 0:
                sys.exit(f"hand-over apply failed: {result.stderr}")
            events = admin.get("/api/v1/audit", params={"workspace": ws}).json()["events"]
            from datetime import datetime

            locks = [
                e
                for e in events
                if e["action"] == "lock"
                and e["outcome"] == "ok"
                and e["detail"]["who"] != "bench-holder"
            ]
            at = datetime.fromisoformat(locks[-1]["at"].replace("Z", "+00:00")).timestamp()
            samples.append(at - released)
        out[mode] = {
            "median_ms": statistics.median(samples) * 1000,
            "samples_ms": [round(s * 1000, 1) for s in samples],
        }
    # The server alone: a parked LOCK ?wait= request handed the lock by an UNLOCK.
    raw = []
    for k in range(20):
        ws = f"handover/raw/{k}"
        info = {"ID": "h", "Who": "h"}
        holder.request("LOCK", f"/v1/locks/{ws}", json=info).raise_for_status()
        got: list[float] = []

        def wait(ws: str = ws, got: list[float] = got) -> None:
            with httpx.Client(base_url=server.url, auth=("bench", tok), timeout=60) as c:
                c.request(
                    "LOCK", f"/v1/locks/{ws}", params={"wait": "30s"}, json={"ID": "w", "Who": "w"}
                ).raise_for_status()
                got.append(time.perf_counter())

        t = threading.Thread(target=wait)
        t.start()
        time.sleep(0.2)
        released_p = time.perf_counter()
        holder.request("UNLOCK", f"/v1/locks/{ws}", json=info).raise_for_status()
        t.join()
        raw.append(got[0] - released_p)
    out["wait_http_only"] = {
        "median_ms": statistics.median(raw) * 1000,
        "p90_ms": sorted(raw)[int(len(raw) * 0.9)] * 1000,
    }
    admin.close()
    holder.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg", default=os.environ.get("DRIFTSAFE_TEST_PG_URL"))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--delays", default="1.5,3.5,5.5")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ds-bench-server-"))
    env = {"DRIFTSAFE_HOME": str(base / "home"), "DRIFTSAFE_ENCRYPTION_KEY": new_key_text()}
    os.environ.update(env)
    engine = get_engine(Settings.from_env(), "embedded")
    results: dict[str, Any] = {}
    sqlite_db = f"sqlite:///{base / 'bench.db'}"
    tok = token(sqlite_db, env)
    server = Server(sqlite_db, env)
    try:
        results["a_overhead"] = overhead(engine, base, server, tok, args.pg, args.reps)
        results["b_cycles_per_s"] = {
            "sqlite": {str(n): cycles(server.url, tok, n, args.seconds) for n in (1, 8, 32)}
        }
        results["d_handover"] = handover(
            engine, base, server, tok, [float(x) for x in args.delays.split(",")]
        )
    finally:
        server.stop()
    big_db = f"sqlite:///{base / 'big.db'}"
    big_tok = token(big_db, env)
    big_server = Server(big_db, env)
    try:
        results["c_50mib"] = big(big_server, big_tok)
    finally:
        big_server.stop()
    if args.pg:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        pg_db = pg_schema_url(args.pg, schema)
        try:
            pg_tok = token(pg_db, env)
            pg_server = Server(pg_db, env)
            try:
                results["b_cycles_per_s"]["postgresql"] = {
                    str(n): cycles(pg_server.url, pg_tok, n, args.seconds) for n in (1, 8, 32)
                }
            finally:
                pg_server.stop()
        finally:
            drop_schema(args.pg, schema)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    report(results)


def report(r: dict[str, Any]) -> None:
    print("(a) per-command wall time, median (ratio to local backend)")
    for key, row in r["a_overhead"].items():
        ratios = ""
        if "plan_ratio" in row:
            ratios = f"  plan x{row['plan_ratio']:.2f}  apply x{row['apply_ratio']:.2f}"
        print(f"  {key:10s} plan {row['plan_s']:.3f}s  apply {row['apply_s']:.3f}s{ratios}")
    print("(b) lock+get+post+unlock cycles/s")
    for db, rows in r["b_cycles_per_s"].items():
        print(f"  {db:10s} " + "  ".join(f"{n} clients: {v:.0f}/s" for n, v in rows.items()))
    c = r["c_50mib"]
    print(
        f"(c) {c['size_mib']:.1f} MiB state: write {c['write_s']:.2f}s, read {c['read_s']:.2f}s, "
        f"server RSS idle {c['idle_rss_mib']:.0f} MiB, peak {c['peak_rss_mib']:.0f} MiB "
        f"({c['peak_over_size']:.2f}x size; growth {c['growth_over_size']:.2f}x size)"
    )
    d = r["d_handover"]
    print(
        f"(d) hand-over: ?wait= median {d['wait']['median_ms']:.0f} ms {d['wait']['samples_ms']}; "
        f"-lock-timeout median {d['lock-timeout']['median_ms']:.0f} ms "
        f"{d['lock-timeout']['samples_ms']}; server-only ?wait= median "
        f"{d['wait_http_only']['median_ms']:.1f} ms, p90 {d['wait_http_only']['p90_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
