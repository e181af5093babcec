"""Benchmark: the lab provider (pyvider) versus Terraform's built-in terraform_data.

For N = 1, 50, 200 resources of each kind, in one run: wall time of `plan` on an
empty state, `apply`, and a second `plan` with state (refresh of N objects),
each the median of --repeat rounds that interleave the kinds (the machine is
shared: a burst of load then hits every kind alike). Prints a table, the
lab/terraform_data ratios, and where the lab provider's time goes: how many
provider processes each command used and what one costs.

Kinds:
  terraform_data  Terraform's built-in resource (no provider process at all)
  lab             the lab provider as driftsafe runs it: one session per run
                  (TF_REATTACH_PROVIDERS), forked from the warm fork server
  lab-managed     Terraform starts the provider itself (3-4 times per command),
                  each start forked from the warm fork server
  lab-cold        Terraform starts the provider itself, every start imports pyvider

    .venv/bin/python bench/provider.py [--sizes 1,50,200] [--repeat 3] [--engine embedded] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
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

KINDS = ("terraform_data", "lab", "lab-managed", "lab-cold")
KIND_ENV = {"lab-cold": {"DRIFTSAFE_PROVIDER_FORKSERVER": "0"}}
MANAGED = ("lab-managed", "lab-cold")  # Terraform starts the provider: no sessions
STEPS = ("plan", "apply", "replan")


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


def read_trace(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Case:
    """One root (a kind and a size), initialised once and reset between rounds."""

    def __init__(self, engine: Engine, work: Path, kind: str, n: int) -> None:
        self.engine, self.kind, self.n = engine, kind, n
        self.dir = work / f"{kind}-{n}"
        self.dir.mkdir()
        (self.dir / "main.tf").write_text(config(kind, n, self.dir / "files"))
        self.trace = self.dir / "provider-trace.jsonl"
        self.env = {TRACE_ENV: str(self.trace), **KIND_ENV.get(kind, {})}
        self.times: dict[str, list[float]] = {step: [] for step in STEPS}
        self.windows: list[tuple[str, float, float]] = []
        timed(engine, ["init"], self.dir, self.env)
        if kind.startswith("lab"):
            # The first start of a new provider version spawns the fork server.
            timed(engine, ["plan", "-refresh=false"], self.dir, self.env)

    def round(self) -> None:
        for path in self.dir.glob("terraform.tfstate*"):
            path.unlink()
        shutil.rmtree(self.dir / "files", ignore_errors=True)
        for step, args in (
            ("plan", ["plan"]),
            ("apply", ["apply", "-auto-approve"]),
            ("replan", ["plan"]),
        ):
            began = time.time()
            self.times[step].append(timed(self.engine, args, self.dir, self.env))
            self.windows.append((step, began, time.time()))

    def starts(self) -> dict[str, list[dict[str, Any]]]:
        """Provider processes per step, by when they started: a session provider
        writes its trace line only after its run has ended."""
        found: dict[str, list[dict[str, Any]]] = {step: [] for step in STEPS}
        for record in read_trace(self.trace):
            for step, began, ended in self.windows:
                if began <= record["start"] <= ended:
                    found[step].append(record)
        return found

    def row(self) -> dict[str, Any]:
        rounds = len(self.times["plan"])
        by_step = self.starts()
        row: dict[str, Any] = {"kind": self.kind, "n": self.n, "rounds": rounds}
        for step in STEPS:
            row[step] = statistics.median(self.times[step])
            starts = by_step[step]
            row[f"{step}_all"] = [round(t, 4) for t in self.times[step]]
            # Provider processes per command, and what they cost (means over rounds).
            row[f"{step}_starts"] = len(starts) / rounds
            row[f"{step}_start_cost"] = sum(s["imported"] - s["start"] for s in starts) / rounds
            row[f"{step}_provider_alive"] = sum(s["end"] - s["start"] for s in starts) / rounds
            row[f"{step}_provider_cpu"] = sum(s.get("cpu", 0.0) for s in starts) / rounds
        return row


def engines(environ: dict[str, str], spec: str | None) -> dict[str, Engine]:
    settings = Settings.from_env(environ)
    sessions = get_engine(settings.with_(provider_sessions=True), spec)
    managed = get_engine(settings.with_(provider_sessions=False), spec)
    return {kind: managed if kind in MANAGED else sessions for kind in KINDS}


def measure(sizes: list[int], repeat: int, spec: str | None) -> tuple[list[dict[str, Any]], str]:
    with tempfile.TemporaryDirectory(prefix="driftsafe-bench-") as tmp:
        work = Path(tmp)
        environ = dict(os.environ)
        environ.setdefault("DRIFTSAFE_HOME", str(work / "home"))
        by_kind = engines(environ, spec)
        cases = [Case(by_kind[kind], work, kind, n) for n in sizes for kind in KINDS]
        for _ in range(repeat):
            for case in cases:
                case.round()
        time.sleep(1.0)  # the last session providers write their trace as they exit
        return [case.row() for case in cases], by_kind["lab"].describe()


def report(rows: list[dict[str, Any]], sizes: list[int], described: str) -> None:
    print(f"engine: {described}; load average {os.getloadavg()[0]:.2f}")
    print(f"medians of {rows[0]['rounds']} rounds")
    print(
        f"{'kind':<15}{'N':>5}{'plan s':>9}{'apply s':>9}{'replan s':>10}"
        f"{'procs p/a/r':>14}{'ready s/proc':>14}{'cpu s/cmd':>11}"
    )
    for row in rows:
        starts = [row[f"{s}_starts"] for s in STEPS]
        total = sum(starts)
        ready = sum(row[f"{s}_start_cost"] for s in STEPS) / total if total else float("nan")
        cpu = sum(row[f"{s}_provider_cpu"] for s in STEPS) / len(STEPS)
        print(
            f"{row['kind']:<15}{row['n']:>5}{row['plan']:>9.3f}{row['apply']:>9.3f}"
            f"{row['replan']:>10.3f}{'/'.join(f'{x:g}' for x in starts):>14}"
            f"{ready:>14.3f}{cpu:>11.3f}"
        )
    by = {(r["kind"], r["n"]): r for r in rows}
    for kind in KINDS[1:]:
        print(f"\nratio {kind} / terraform_data:")
        for n in sizes:
            lab, base = by[(kind, n)], by[("terraform_data", n)]
            ratios = "  ".join(f"{s} {lab[s] / base[s]:.2f}x" for s in STEPS)
            print(f"  N={n:<4} {ratios}")
    if len(sizes) > 1:
        lo, hi = min(sizes), max(sizes)
        for kind in ("lab", "terraform_data"):
            per = (by[(kind, hi)]["replan"] - by[(kind, lo)]["replan"]) / (hi - lo)
            print(
                f"marginal cost per extra object in a plan with state, {kind}: {per * 1000:.1f} ms"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,50,200")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per case (median)")
    parser.add_argument("--engine", default=None, help="embedded (default), terraform, tofu")
    parser.add_argument("--json", action="store_true", help="print raw rows as JSON")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows, described = measure(sizes, max(1, args.repeat), args.engine)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        report(rows, sizes, described)
    return 0


if __name__ == "__main__":
    sys.exit(main())
