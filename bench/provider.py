"""Benchmark: the lab provider (pyvider) versus Terraform's built-in terraform_data.

For N = 1, 50, 200 resources of each kind, in one run: wall time of `plan` on an
empty state, `apply`, and a second `plan` with state (refresh of N objects).
Prints a table and the lab/terraform_data ratios, plus where the lab provider's
time goes: how many times Terraform started it and what a start costs.

    .venv/bin/python bench/provider.py [--sizes 1,50,200] [--engine embedded] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from driftsafe.engine import Engine, get_engine
from driftsafe.settings import Settings

TRACE_ENV = "DRIFTSAFE_PROVIDER_TRACE"
PROVIDER_BLOCK = """terraform {
  required_providers {
    lab = {
      source  = "registry.driftsafe.local/driftsafe/lab"
      version = "0.1.0"
    }
  }
}
"""


KINDS = ("terraform_data", "lab", "lab-cold")
# lab: the provider through its warm fork server (the default);
# lab-cold: every start imports pyvider from scratch.
KIND_ENV = {"lab-cold": {"DRIFTSAFE_PROVIDER_FORKSERVER": "0"}}


def config(kind: str, n: int, files_dir: Path) -> str:
    if kind.startswith("lab"):
        return PROVIDER_BLOCK + (
            'resource "lab_config_file" "f" {\n'
            f"  count  = {n}\n"
            f'  path   = "{files_dir}/f${{count.index}}.conf"\n'
            '  values = { index = tostring(count.index), env = "bench" }\n'
            "}\n"
        )
    return (
        'resource "terraform_data" "f" {\n'
        f"  count = {n}\n"
        '  input = { index = tostring(count.index), env = "bench" }\n'
        "}\n"
    )


def timed(engine: Engine, args: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = engine.run([*args, "-no-color", "-input=false"], cwd=cwd, env=env, timeout=1800)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}:\n{result.stderr}")
    return elapsed


def read_trace(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_case(engine: Engine, work: Path, kind: str, n: int) -> dict[str, Any]:
    case = work / f"{kind}-{n}"
    case.mkdir()
    (case / "main.tf").write_text(config(kind, n, case / "files"))
    trace = case / "provider-trace.jsonl"
    env = {TRACE_ENV: str(trace), **KIND_ENV.get(kind, {})}
    timed(engine, ["init"], case, env)
    if kind == "lab":
        timed(engine, ["plan", "-refresh=false"], case, env)  # the first start spawns the server
    row: dict[str, Any] = {"kind": kind, "n": n}
    for step, args in (
        ("plan", ["plan"]),
        ("apply", ["apply", "-auto-approve"]),
        ("replan", ["plan"]),
    ):
        before = len(read_trace(trace))
        row[step] = timed(engine, args, case, env)
        starts = read_trace(trace)[before:]
        row[f"{step}_starts"] = len(starts)
        row[f"{step}_start_cost"] = sum(s["imported"] - s["start"] for s in starts)
        row[f"{step}_provider_alive"] = sum(s["end"] - s["start"] for s in starts)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,50,200")
    parser.add_argument("--engine", default=None, help="embedded (default), terraform, tofu")
    parser.add_argument("--json", action="store_true", help="print raw rows as JSON")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    with tempfile.TemporaryDirectory(prefix="driftsafe-bench-") as tmp:
        work = Path(tmp)
        environ = dict(os.environ)
        environ.setdefault("DRIFTSAFE_HOME", str(work / "home"))
        engine = get_engine(Settings.from_env(environ), args.engine)
        rows = [run_case(engine, work, kind, n) for n in sizes for kind in KINDS]

    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"engine: {engine.describe()}")
    print(
        f"{'kind':<15}{'N':>5}{'plan s':>9}{'apply s':>9}{'replan s':>10}"
        f"{'starts p/a/r':>14}{'ready s/start':>15}"
    )
    for row in rows:
        starts = [row[f"{s}_starts"] for s in ("plan", "apply", "replan")]
        total = sum(starts)
        per_start = (
            sum(row[f"{s}_start_cost"] for s in ("plan", "apply", "replan")) / total
            if total
            else 0.0
        )
        print(
            f"{row['kind']:<15}{row['n']:>5}{row['plan']:>9.2f}{row['apply']:>9.2f}"
            f"{row['replan']:>10.2f}{'/'.join(map(str, starts)):>14}"
            f"{per_start if total else float('nan'):>15.3f}"
        )
    by = {(r["kind"], r["n"]): r for r in rows}
    for kind in KINDS[1:]:
        print(f"\nratio {kind} / terraform_data:")
        for n in sizes:
            lab, base = by[(kind, n)], by[("terraform_data", n)]
            ratios = "  ".join(f"{s} {lab[s] / base[s]:.1f}x" for s in ("plan", "apply", "replan"))
            print(f"  N={n:<4} {ratios}")
    if len(sizes) > 1:
        lo, hi = min(sizes), max(sizes)
        per = (by[("lab", hi)]["replan"] - by[("lab", lo)]["replan"]) / (hi - lo)
        base_per = (by[("terraform_data", hi)]["replan"] - by[("terraform_data", lo)]["replan"]) / (
            hi - lo
        )
        print(
            f"\nmarginal cost per extra object in a plan with state: lab {per * 1000:.1f} ms,"
            f" terraform_data {base_per * 1000:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
