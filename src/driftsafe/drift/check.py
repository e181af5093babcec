"""Run the drift check over root modules: two plans per root, in parallel across roots.

Locking: each plan takes the state lock normally, with a short ``-lock-timeout``.
This is safe and is the point. A plan, refresh-only or not, never writes state: it
reads the state, refreshes in memory and saves only a plan file (which we delete),
so holding the lock for the plan's few seconds cannot lose anyone's update. Taking
the lock (rather than ``-lock=false``) is what makes the verdict trustworthy: an
apply in flight changes real resources before it writes the state, so an unlocked
refresh would report the apply's own half-done work as "drift"; and a lock held by
a crashed run must be shown to a human, not hidden behind a clean or drifted verdict.
So a held lock is an error that names the holder. The cost is that an apply
starting during a check waits for it, which is why CI applies use ``-lock-timeout``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from driftsafe.drift.classify import classify
from driftsafe.drift.ignore import IgnoreRules, rules_for_root
from driftsafe.drift.model import RootReport
from driftsafe.engine import Engine, RunResult
from driftsafe.errors import DriftError, DriftsafeError
from driftsafe.settings import Settings
from driftsafe.timestamps import rfc3339

Progress = Callable[[str], None]


def utcnow() -> str:
    return rfc3339(time.time())  # the one timestamp format (RFC 3339, UTC, ms)


def root_name(root: Path) -> str:
    """A stable label: the path relative to the working directory, else its last two parts."""
    resolved = root.resolve()
    try:
        rel = resolved.relative_to(Path.cwd().resolve())
        if str(rel) != ".":
            return rel.as_posix()
    except ValueError:
        pass
    return "/".join(resolved.parts[-2:])


def backend_workspace(root: Path) -> str | None:
    """The driftsafe workspace of a root whose http backend points at a driftsafe server."""
    marker = root / ".terraform" / "terraform.tfstate"
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    backend = data.get("backend") or {}
    address = (backend.get("config") or {}).get("address") or ""
    if backend.get("type") == "http" and "/v1/states/" in address:
        return str(address.split("/v1/states/", 1)[1].strip("/")) or None
    return None


def _error_block(stderr: str) -> list[str]:
    """Terraform's diagnostic box without its frame characters."""
    lines = []
    for raw in stderr.splitlines():
        line = raw.lstrip("╷╵").rstrip()
        line = line[1:] if line.startswith("│") else line
        lines.append(line.strip())
    return [line for line in lines if line]


def parse_lock_info(stderr: str) -> dict[str, str] | None:
    """The holder's LockInfo from an 'Error acquiring the state lock' diagnostic."""
    if "Error acquiring the state lock" not in stderr:
        return None
    info: dict[str, str] = {}
    for line in _error_block(stderr):
        match = re.match(r"^(ID|Path|Operation|Who|Version|Created|Info):\s*(.*)$", line)
        if match:
            info.setdefault(match.group(1), match.group(2).strip())
    return info


def explain_failure(result: RunResult, what: str, root: str) -> DriftError:
    """A clear one-line error for a failed Terraform command (never drift, never clean)."""
    stderr = result.stderr
    if result.timed_out:
        return DriftError(
            f"{root}: terraform {what} timed out after {result.duration:.0f}s",
            detail=stderr[-2000:] or None,
        )
    lock = parse_lock_info(stderr)
    if lock is not None:
        holder = lock.get("Who") or "unknown holder"
        parts = [
            p
            for p in (
                lock.get("Operation"),
                lock.get("Created") and f"since {lock.get('Created')}",
                lock.get("ID") and f"lock ID {lock.get('ID')}",
            )
            if p
        ]
        err = DriftError(
            f"{root}: lock held by {holder} ({', '.join(parts)}); the drift check did not run",
            detail=lock,
        )
        err.code = "lock_held"
        return err
    errors = [line[len("Error: ") :] for line in _error_block(stderr) if line.startswith("Error: ")]
    summary = "; ".join(dict.fromkeys(errors)) or (stderr.strip().splitlines() or ["no output"])[-1]
    return DriftError(
        f"{root}: terraform {what} failed (exit {result.returncode}): {summary}",
        detail=stderr[-4000:] or None,
    )


class _RootCheck:
    def __init__(
        self,
        root: Path,
        engine: Engine,
        env: Mapping[str, str] | None,
        lock_timeout: str,
        init: bool | None,
    ) -> None:
        self.root = root
        self.engine = engine
        self.env = {"TF_IN_AUTOMATION": "1", **(env or {})}
        self.lock_timeout = lock_timeout
        self.init = init
        self.runs: list[RunResult] = []

    def run(self, args: list[str], what: str, ok: tuple[int, ...] = (0,)) -> RunResult:
        result = self.engine.run(args, cwd=self.root, env=self.env)
        self.runs.append(result)
        if result.returncode not in ok or result.timed_out:
            raise explain_failure(result, what, str(self.root))
        return result

    def plan_json(self, tmp: Path, name: str, extra: list[str]) -> dict[str, Any]:
        planfile = tmp / f"{name}.tfplan"
        self.run(
            [
                "plan",
                "-input=false",
                "-no-color",
                f"-lock-timeout={self.lock_timeout}",
                f"-out={planfile}",
                *extra,
            ],
            f"plan {' '.join(extra)}".strip(),
        )
        shown = self.run(["show", "-json", "-no-color", str(planfile)], "show -json")
        try:
            data: dict[str, Any] = json.loads(shown.stdout)
        except ValueError as exc:
            raise DriftError(f"{self.root}: terraform show -json printed no JSON: {exc}") from None
        return data


def check_root(
    root: str | Path,
    *,
    engine: Engine,
    env: Mapping[str, str] | None = None,
    ignore: IgnoreRules | None = None,
    lock_timeout: str = "5s",
    init: bool | None = None,
    keep_plans: bool = False,
) -> RootReport:
    """Check one root: never raises for a Terraform failure, reports it as status=error."""
    path = Path(root)
    report = RootReport(root=str(root), name=root_name(path), checked_at=utcnow())
    started = time.monotonic()
    job = _RootCheck(path, engine, env, lock_timeout, init)
    tmp = Path(tempfile.mkdtemp(prefix="driftsafe-plan-"))
    try:
        if not path.is_dir():
            raise DriftError(f"{root}: no such directory")
        rules = rules_for_root(path, ignore)
        if init or (init is None and not (path / ".terraform").is_dir()):
            job.run(["init", "-input=false", "-no-color"], "init")
        report.workspace = backend_workspace(path)
        refresh = job.plan_json(tmp, "refresh", ["-refresh-only"])
        normal = job.plan_json(tmp, "normal", [])
        report.terraform_version = refresh.get("terraform_version")
        findings, ignored, planned = classify(refresh, normal, root=report.name, ignore=rules)
        report.findings, report.ignored, report.planned_changes = findings, ignored, planned
        report.status = "drift" if findings else "clean"
        if keep_plans:
            report.refresh_plan, report.normal_plan = refresh, normal
    except DriftsafeError as exc:
        report.status = "error"
        report.error = {
            "code": exc.code,
            "message": exc.message,
            "detail": exc.detail if isinstance(exc.detail, dict) else None,
        }
    finally:
        # Plan files can hold sensitive values: never leave them behind.
        shutil.rmtree(tmp, ignore_errors=True)
    report.runs = list(job.runs)
    report.terraform_seconds = sum(r.duration for r in job.runs)
    report.duration_seconds = time.monotonic() - started
    return report


def check_roots(
    roots: Sequence[str | Path],
    *,
    engine: Engine,
    settings: Settings | None = None,
    env: Mapping[str, str] | None = None,
    ignore: IgnoreRules | None = None,
    lock_timeout: str = "5s",
    init: bool | None = None,
    jobs: int | None = None,
    progress: Progress | None = None,
    keep_plans: bool = False,
) -> list[RootReport]:
    """Check every root, in parallel bounded by the number of cores; order is kept.

    ``env`` is added to each Terraform run (``TF_VAR_*``, ``TF_HTTP_PASSWORD``...).
    ``init``: True always runs ``init``, False never, None when ``.terraform`` is absent.
    """
    del settings  # the engine already carries them; accepted for a uniform library API
    if not roots:
        raise DriftError("no root module given")
    workers = max(1, min(len(roots), jobs or os.cpu_count() or 1))
    done = 0
    lock = threading.Lock()

    def one(root: str | Path) -> RootReport:
        nonlocal done
        if progress:
            progress(f"checking {root} ...")
        report = check_root(
            root,
            engine=engine,
            env=env,
            ignore=ignore,
            lock_timeout=lock_timeout,
            init=init,
            keep_plans=keep_plans,
        )
        with lock:
            done += 1
            n = done
        if progress:
            verdict = {
                "clean": "clean",
                "drift": f"DRIFT ({len(report.findings)} finding(s))",
                "error": f"ERROR: {(report.error or {}).get('message')}",
            }[report.status]
            progress(f"[{n}/{len(roots)}] {root}: {verdict} in {report.duration_seconds:.1f}s")
        return report

    if workers == 1:
        return [one(r) for r in roots]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="drift") as pool:
        return list(pool.map(one, roots))
