"""``driftsafe lab run``: the whole drill, end to end, and its evidence report.

Stands up a real stack on a real state server (SQLite, started here on a free loopback
port with its own admin and write tokens), walks it through the incidents that teach
state discipline, recovers from each, and writes a report whose every ✓ is computed
from captured command output.
"""

from __future__ import annotations

import signal
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from driftsafe.durations import format_duration
from driftsafe.engine import get_engine
from driftsafe.errors import ConfigError, DriftsafeError, Interrupted
from driftsafe.lab.drill import steps_crash, steps_drift, steps_ops, steps_proof, steps_state
from driftsafe.lab.drill.backends import DriftsafeServer, DrillBackend
from driftsafe.lab.drill.context import Drill, prepare_dir
from driftsafe.lab.drill.s3 import S3Bucket
from driftsafe.lab.evidence import Evidence
from driftsafe.lab.report import ReportPaths, write_report
from driftsafe.settings import Settings

STEPS: tuple[tuple[str, Callable[[Drill], None]], ...] = (
    ("backend", steps_state.step_backend),
    ("apply", steps_state.step_apply),
    ("noop", steps_state.step_noop),
    ("lock-clash", steps_state.step_lock_clash),
    ("waiting", steps_state.step_waiting),
    ("crash", steps_crash.step_crash),
    ("drift", steps_drift.step_drift),
    ("resolution", steps_drift.step_resolution),
    ("secrets", steps_proof.step_secrets),
    ("versions", steps_proof.step_versions),
    ("immutable", steps_proof.step_immutable),
    ("scheduled", steps_ops.step_scheduled),
    ("reflection", steps_ops.step_reflection),
)
STEP_NAMES = tuple(name for name, _ in STEPS)
# Steps every other step needs: the server, the stack, a first apply.
REQUIRED = ("backend", "apply")


@dataclass(frozen=True)
class DrillOutcome:
    paths: ReportPaths
    passed: bool
    checks_passed: int
    checks_total: int
    limitations: int
    wall_seconds: float
    wiped_previous: bool


def run_drill(
    directory: Path,
    *,
    settings: Settings,
    engine_spec: str | None = None,
    only: Sequence[str] | None = None,
    disable_locking: bool = False,
    progress: Callable[[str], None] | None = None,
    backend_name: str = "driftsafe",
    s3_endpoint: str | None = None,
) -> DrillOutcome:
    """Run the drill in ``directory`` (a previous drill's directory is wiped; any other
    non-empty directory is refused) and write ``directory/report``. ``backend_name``
    picks where the stack's state lives: ``driftsafe`` (its own state server, the
    default) or ``s3`` (moto on loopback, or ``s3_endpoint`` with the usual AWS_*
    environment)."""
    selected = _select(only)
    backend = make_backend(backend_name, s3_endpoint=s3_endpoint)
    say = progress or (lambda _line: None)
    root = directory.expanduser().resolve()
    wiped = prepare_dir(root)
    if wiped:
        say(f"driftsafe lab run: {root} held a previous drill; starting clean")
    started = time.time()
    # The drill's own home keeps its provider mirror and CLI config apart from the user's.
    engine = get_engine(settings.with_(home=root / "home"), engine_spec)
    ev = Evidence(
        root / "report",
        title="driftsafe lab drill",
        subtitle=f"backend: {backend.description}; engine: {engine.describe()}; directory: {root}",
        progress=say,
        total_steps=len(selected),
    )
    drill = Drill(
        root=root,
        ev=ev,
        engine=engine,
        settings=settings,
        lock_disabled=disable_locking,
        backend=backend,
    )
    ev.redact(drill.secret)
    # A SIGINT/SIGTERM/SIGHUP stops the Terraform (or driftsafe command) in flight
    # gracefully and then the drill, which still stops its backend and writes the report.
    with engine.forward_signals(raise_when_idle=False):
        try:
            with engine.forward_signals():
                backend.setup(drill, say)
                for name, func in backend.steps(STEPS):
                    if name in selected:
                        func(drill)
                backend.finish(drill)
        except (DriftsafeError, OSError, ValueError, KeyError) as exc:
            message = (
                exc.message if isinstance(exc, DriftsafeError) else f"{type(exc).__name__}: {exc}"
            )
            if not ev.steps:
                ev.step("setup", "Setup")
            # The whole traceback is evidence too: a one-line message rarely says where.
            ev.artifact(ev.steps[-1].id, "Traceback of the failed step", traceback.format_exc())
            ev.abort(message)
        finally:
            backend.stop(drill)
        paths = write_report(ev)
    say(f"{ev.summary_line}; report: {paths.index_html}")
    if engine.processes.interrupted is not None:
        raise Interrupted(
            engine.processes.interrupted,
            f"drill interrupted by {signal.Signals(engine.processes.interrupted).name}; "
            f"report of the steps run: {paths.index_html}",
        )
    checks = ev.checklist()
    return DrillOutcome(
        paths,
        ev.all_passed,
        sum(c.status == "passed" for c in checks),
        len(checks),
        sum(c.status == "limitation" for c in checks),
        time.time() - started,
        wiped,
    )


def make_backend(name: str, *, s3_endpoint: str | None = None) -> DrillBackend:
    """The strategy for ``lab run --backend NAME``."""
    if s3_endpoint and name != "s3":
        raise ConfigError("--s3-endpoint needs --backend s3")
    if name == "driftsafe":
        return DriftsafeServer()
    if name == "s3":
        return S3Bucket(s3_endpoint)
    raise ConfigError(f"unknown drill backend {name!r}: driftsafe or s3")


def _select(only: Sequence[str] | None) -> list[str]:
    if not only:
        return list(STEP_NAMES)
    unknown = [n for n in only if n not in STEP_NAMES]
    if unknown:
        raise ConfigError(
            f"unknown drill step(s) {', '.join(unknown)}; steps: {', '.join(STEP_NAMES)}"
        )
    return [n for n in STEP_NAMES if n in only or n in REQUIRED]


def summary_line(outcome: DrillOutcome) -> str:
    if not outcome.passed:
        verdict = "SOME CHECKS FAILED"
    elif outcome.limitations:
        verdict = (
            f"no check failed ({outcome.limitations} backend limitation(s) reproduced, "
            "as the report shows)"
        )
    else:
        verdict = "every check passed"
    return f"Drill finished in {format_duration(outcome.wall_seconds)}: {verdict}"
