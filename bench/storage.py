"""Benchmark: state history stored as zstd deltas against keyframes, in one run.

On SQLite and on PostgreSQL:
(a) 500 versions of a ~2 MiB state, each changing one resource's attributes: stored
    bytes (SQLite file size after a checkpoint; pg_total_relation_size of the version
    and keyframe tables) as a share of the sum of the plaintext sizes, beside what S3
    versioning would store (every version whole: 100%) and what Terraform's pg
    backend keeps (the latest only: no history);
(b) write latency of a 2 MiB state against the previous write path (whole encrypted
    versions: a store with compression off), interleaved in the same run;
(c) reading versions picked at random from that history, with the keyframe cache
    emptied before each read (the worst case: two decompressions from the database);
(d) the real server's peak memory writing and reading a 50 MiB state (as
    bench/server.py measures it), above its idle size;
and, without a database, (e) the keyframe policy swept over factors 0.25..4 on the
same history: bytes stored per version, keyframes, and the cost of the delta writes.

    .venv/bin/python bench/storage.py [--pg URL] [--versions 500] [--json]

--pg defaults to DRIFTSAFE_TEST_PG_URL; without it the PostgreSQL parts are skipped.
"""

from __future__ import annotations

import argparse
import hashlib
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

import sqlalchemy as sa
import zstandard

from driftsafe.state import parse_state
from driftsafe.store import Actor, Cipher, SqlStore
from driftsafe.store import codec as store_codec
from driftsafe.store.crypto import decode_key, new_key_text

sys.path.insert(0, str(Path(__file__).parent))
from server import Server, big, drop_schema, pg_schema_url, token  # noqa: E402

ACTOR = Actor("bench", "127.0.0.1")


class History:
    """A ~``target``-byte state of aws_instance-like resources whose values do not
    compress (ids, hashes, addresses), as Terraform writes it (2-space indented JSON).
    Each ``next()`` changes one random resource's attributes; only that resource's
    JSON is rendered again, so a 2 MiB version costs a join, not a dump."""

    def __init__(self, target: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.serial = 0
        self.resources: list[dict[str, Any]] = []
        self.rendered: list[str] = []
        size = 0
        while size < target:
            resource = self._resource(len(self.resources))
            self.resources.append(resource)
            self.rendered.append(self._render(resource))
            size += len(self.rendered[-1]) + 2

    def _resource(self, i: int) -> dict[str, Any]:
        rng = self.rng
        rid = f"i-{rng.getrandbits(64):016x}"
        attributes = {
            "ami": f"ami-{rng.getrandbits(48):012x}",
            "arn": f"arn:aws:ec2:eu-west-1:123456789012:instance/{rid}",
            "id": rid,
            "instance_type": rng.choice(["t3.micro", "t3.small", "m5.large"]),
            "private_ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
            "subnet_id": f"subnet-{rng.getrandbits(32):08x}",
            "vpc_security_group_ids": [f"sg-{rng.getrandbits(32):08x}" for _ in range(2)],
            "tags": {"Name": f"app-{i}", "team": rng.choice(["core", "data", "web"])},
            "user_data_hash": hashlib.sha256(str(rng.random()).encode()).hexdigest(),
            "root_block_device": [
                {
                    "volume_id": f"vol-{rng.getrandbits(64):016x}",
                    "volume_size": rng.choice([8, 20, 50]),
                    "volume_type": "gp3",
                    "encrypted": True,
                    "iops": 3000,
                }
            ],
            "monitoring": False,
            "ebs_optimized": True,
        }
        return {
            "mode": "managed",
            "type": "aws_instance",
            "name": f"app_{i}",
            "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
            "instances": [
                {
                    "schema_version": 1,
                    "attributes": attributes,
                    "sensitive_attributes": [],
                    "dependencies": [f"aws_subnet.s{i % 7}"],
                }
            ],
        }

    @staticmethod
    def _render(resource: dict[str, Any]) -> str:
        text = json.dumps(resource, indent=2)
        return "\n".join("    " + line for line in text.splitlines())

    def next(self) -> bytes:
        self.serial += 1
        if self.serial > 1:
            i = self.rng.randrange(len(self.resources))
            attributes = self.resources[i]["instances"][0]["attributes"]
            attributes["tags"]["revision"] = str(self.serial)
            attributes["instance_type"] = self.rng.choice(["t3.micro", "t3.small", "m5.large"])
            attributes["user_data_hash"] = hashlib.sha256(str(self.serial).encode()).hexdigest()
            self.rendered[i] = self._render(self.resources[i])
        head = (
            '{\n  "version": 4,\n  "terraform_version": "1.15.5",\n'
            f'  "serial": {self.serial},\n  "lineage": "bench-lineage",\n'
            '  "outputs": {},\n  "resources": [\n'
        )
        return (head + ",\n".join(self.rendered) + '\n  ],\n  "check_results": null\n}\n').encode()


class PolicySim:
    """The keyframe policy with one factor, on plaintexts only (no database)."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.keyframe: store_codec.Keyframe | None = None
        self.keyframe_size = 0
        self.delta_bytes = 0
        self.stored = 0
        self.keyframes = 0
        self.seconds = 0.0

    def add(self, serial: int, plain: bytes) -> None:
        started = time.perf_counter()
        if self.keyframe is not None:
            delta = self.keyframe.compress(plain)
            if self.delta_bytes + len(delta) <= self.factor * self.keyframe_size:
                self.delta_bytes += len(delta)
                self.stored += len(delta)
                self.seconds += time.perf_counter() - started
                return
        alone = store_codec.compress_alone(plain)
        self.keyframe = store_codec.Keyframe("sim", serial, "", plain)
        self.keyframe_size, self.delta_bytes = len(alone), 0
        self.stored += len(alone)
        self.keyframes += 1
        self.seconds += time.perf_counter() - started


def open_bench_store(url: str, key: str, *, compress: bool = True) -> SqlStore:
    store = SqlStore(url, Cipher(decode_key(key, "bench")))
    store.initialize()
    store.compress = compress
    return store


def stored_bytes(store: SqlStore) -> int:
    if not store.is_postgres:
        with store.pool.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        path = Path(store.url[len("sqlite:///") :])
        return path.stat().st_size
    with store.pool.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT pg_total_relation_size('ds_versions') "
                    "+ pg_total_relation_size('ds_keyframes')"
                )
            ).scalar_one()
        )


def history_run(
    url: str, raw_url: str, versions: int, size: int, sims: list[PolicySim]
) -> dict[str, Any]:
    key = new_key_text()
    store = open_bench_store(url, key)
    raw = open_bench_store(raw_url, key, compress=False)
    history = History(size)
    new_s: list[float] = []
    old_s: list[float] = []
    plain_total = 0
    sizes = []
    try:
        for i in range(versions):
            body = history.next()
            state = parse_state(body, keep_tree=False)
            plain_total += len(body)
            sizes.append(len(body))
            started = time.perf_counter()
            store.write_state("hist", body, state, ACTOR, lock_id=None, findings=[])
            new_s.append(time.perf_counter() - started)
            if i % 5 == 0:  # the previous path, on every 5th version (disk stays small)
                started = time.perf_counter()
                raw.write_state("hist", body, state, ACTOR, lock_id=None, findings=[])
                old_s.append(time.perf_counter() - started)
            for sim in sims:
                sim.add(history.serial, body)
        stored = stored_bytes(store)
        with store.pool.connect() as conn:
            kinds = dict(
                conn.execute(
                    sa.text("SELECT codec, COUNT(*) FROM ds_versions GROUP BY codec")
                ).all()
            )
        store.close()
        reader = open_bench_store(url, key)
        rng = random.Random(3)
        reads = []
        for serial in rng.sample(range(1, versions + 1), min(100, versions)):
            reader.keyframe_cache.clear()
            started = time.perf_counter()
            _, body = reader.get_version("hist", serial)
            reads.append(time.perf_counter() - started)
            assert len(body) == sizes[serial - 1]
        reader.close()
    finally:
        raw.close()
    return {
        "versions": versions,
        "state_mib": statistics.mean(sizes) / 2**20,
        "plaintext_bytes": plain_total,
        "stored_bytes": stored,
        "stored_ratio": stored / plain_total,
        "s3_versioning_ratio": 1.0,
        "pg_backend_ratio": sizes[-1] / plain_total,
        "keyframes": int(kinds.get("keyframe", 0)),
        "deltas": int(kinds.get("delta", 0)),
        "write_ms": statistics.median(new_s) * 1000,
        "previous_write_ms": statistics.median(old_s) * 1000,
        "write_ratio": statistics.median(new_s) / statistics.median(old_s),
        "read_ms_median": statistics.median(reads) * 1000,
        "read_ms_max": max(reads) * 1000,
    }


def memory_run(db: str, env: dict[str, str]) -> dict[str, Any]:
    tok = token(db, env)
    server = Server(db, env)
    try:
        return big(server, tok)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default=os.environ.get("DRIFTSAFE_TEST_PG_URL"))
    parser.add_argument("--versions", type=int, default=500)
    parser.add_argument("--size-mib", type=float, default=2.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ds-bench-storage-"))
    size = int(args.size_mib * 2**20)
    results: dict[str, Any] = {"zstd": zstandard.ZSTD_VERSION, "history": {}, "memory": {}}
    sims = [PolicySim(f) for f in (0.25, 0.5, 1.0, 2.0, 4.0)]
    results["history"]["sqlite"] = history_run(
        f"sqlite:///{base}/hist.db", f"sqlite:///{base}/raw.db", args.versions, size, sims
    )
    schemas = []
    if args.pg:
        for name in ("hist", "raw"):
            schemas.append(f"bench_{name}_{uuid.uuid4().hex[:8]}")
        try:
            results["history"]["postgresql"] = history_run(
                pg_schema_url(args.pg, schemas[0]),
                pg_schema_url(args.pg, schemas[1]),
                args.versions,
                size,
                [],
            )
        finally:
            for schema in schemas:
                drop_schema(args.pg, schema)
    env = {"DRIFTSAFE_ENCRYPTION_KEY": new_key_text(), "DRIFTSAFE_HOME": str(base / "home")}
    results["memory"]["sqlite"] = memory_run(f"sqlite:///{base}/big.db", env)
    if args.pg:
        schema = f"bench_big_{uuid.uuid4().hex[:8]}"
        try:
            results["memory"]["postgresql"] = memory_run(pg_schema_url(args.pg, schema), env)
        finally:
            drop_schema(args.pg, schema)
    results["policy"] = [
        {
            "factor": sim.factor,
            "bytes_per_version": sim.stored / args.versions,
            "keyframes": sim.keyframes,
            "encode_ms_mean": sim.seconds / args.versions * 1000,
        }
        for sim in sims
    ]
    results["load"] = os.getloadavg()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    report(results)


def report(r: dict[str, Any]) -> None:
    print(f"zstd {'.'.join(map(str, r['zstd']))}; load average {r['load'][0]:.2f}")
    for db, h in r["history"].items():
        print(
            f"(a) {db}: {h['versions']} versions of a {h['state_mib']:.2f} MiB state "
            f"({h['plaintext_bytes'] / 2**20:.0f} MiB of plaintext): stored "
            f"{h['stored_bytes'] / 2**20:.2f} MiB = {h['stored_ratio']:.2%} "
            f"({h['keyframes']} keyframes, {h['deltas']} deltas); S3 versioning would "
            f"store {h['s3_versioning_ratio']:.0%}; the pg backend keeps "
            f"{h['pg_backend_ratio']:.2%} (the latest only, no history)"
        )
        print(
            f"(b) {db}: write {h['write_ms']:.1f} ms median vs the previous path "
            f"{h['previous_write_ms']:.1f} ms: {h['write_ratio']:.2f}x"
        )
        print(
            f"(c) {db}: read a random version, keyframe cache empty: "
            f"{h['read_ms_median']:.1f} ms median, {h['read_ms_max']:.1f} ms max"
        )
    for db, m in r["memory"].items():
        print(
            f"(d) {db}: {m['size_mib']:.1f} MiB state through the server: write "
            f"{m['write_s']:.2f}s, read {m['read_s']:.2f}s, RSS idle {m['idle_rss_mib']:.0f} MiB, "
            f"peak {m['peak_rss_mib']:.0f} MiB: {m['growth_over_size']:.2f}x size above idle"
        )
    print("(e) keyframe policy (new keyframe when deltas pass FACTOR x the keyframe's size):")
    for p in r["policy"]:
        print(
            f"    factor {p['factor']:<4}: {p['bytes_per_version'] / 1024:7.1f} KiB/version, "
            f"{p['keyframes']:3d} keyframes, {p['encode_ms_mean']:.1f} ms/encode"
        )


if __name__ == "__main__":
    main()
