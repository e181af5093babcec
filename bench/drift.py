"""Benchmark: `driftsafe drift check` over 1, 4 and 16 roots vs the same Terraform
commands run one after another, and driftsafe's own processing time per root.

Usage: .venv/bin/python bench/drift.py [--sizes 1,4,16] [--dir DIR] [--json]

Setup (not timed): one lab stack is applied and drifted by hand (max_connections
edited, a file chmod-ed); its staging root is copied N times. Every copy reads the
same real files, so every root has the same drift and the same Terraform work.
Timed, for each N:
- sequential: per root `plan -refresh-only -out`, `show -json`, `plan -out`,
  `show -json`, one root after another (what a shell loop would do);
- driftsafe: `check_roots(roots)` (parallel, bounded by cores, plus classification);
- own processing: per root, wall time minus time inside Terraform commands.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from driftsafe.drift import check_roots
from driftsafe.drift.classify import classify
from driftsafe.engine import get_engine
from driftsafe.lab.scaffold import init_stack
from driftsafe.settings import Settings

ENV = {"TF_VAR_app_secret": "bench-secret-value", "TF_IN_AUTOMATION": "1"}


def setup(base: Path, count: int, engine) -> list[Path]:  # type: ignore[no-untyped-def]
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


def sequential(roots: list[Path], engine, tmp: Path) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    for root in roots:
        for name, extra in (("refresh", ["-refresh-only"]), ("normal", [])):
            plan = tmp / f"{root.name}-{name}.tfplan"
            result = engine.run(
                ["plan", "-input=false", "-no-color", "-lock-timeout=5s", f"-out={plan}", *extra],
                cwd=root,
                env=ENV,
            )
            assert result.returncode == 0, result.stderr
            shown = engine.run(["show", "-json", "-no-color", str(plan)], cwd=root, env=ENV)
            assert shown.returncode == 0, shown.stderr
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,16")
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    base = Path(args.dir or tempfile.mkdtemp(prefix="driftsafe-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env({**os.environ, "DRIFTSAFE_HOME": str(base / "home")})
    engine = get_engine(settings, None)
    roots = setup(base, max(sizes), engine)
    tmp = base / "plans"
    tmp.mkdir(exist_ok=True)
    rows = []
    for n in sizes:
        subset = roots[:n]
        seq = sequential(subset, engine, tmp)
        started = time.monotonic()
        reports = check_roots(subset, engine=engine, env=ENV, keep_plans=True)
        par = time.monotonic() - started
        assert all(r.status == "drift" for r in reports), [r.error for r in reports]
        own = [r.duration_seconds - r.terraform_seconds for r in reports]
        tf = [r.terraform_seconds for r in reports]
        # classification alone, on the real plans, repeated for a stable figure
        c0 = time.perf_counter()
        for r in reports:
            classify(r.refresh_plan or {}, r.normal_plan, root=r.name)
        classify_ms = (time.perf_counter() - c0) * 1000 / len(reports)
        rows.append(
            {
                "roots": n,
                "sequential_s": round(seq, 2),
                "driftsafe_s": round(par, 2),
                "speedup": round(seq / par, 2),
                "terraform_s_per_root": round(sum(tf) / n, 2),
                "own_ms_per_root": round(1000 * sum(own) / n, 1),
                "own_pct_of_terraform": round(100 * sum(own) / sum(tf), 2),
                "classify_ms_per_root": round(classify_ms, 2),
                "findings_per_root": len(reports[0].findings),
            }
        )
    if args.json:
        print(json.dumps({"cores": os.cpu_count(), "results": rows}, indent=2))
        return
    print(
        f"drift check benchmark ({os.cpu_count()} cores, lab provider, "
        f"{rows[0]['findings_per_root']} findings per root)"
    )
    head = (
        "roots",
        "sequential_s",
        "driftsafe_s",
        "speedup",
        "terraform_s_per_root",
        "own_ms_per_root",
        "own_pct_of_terraform",
        "classify_ms_per_root",
    )
    print("  ".join(head))
    for row in rows:
        print("  ".join(str(row[h]).rjust(len(h)) for h in head))


if __name__ == "__main__":
    main()
