"""``driftsafe lab run``: the whole drill, end to end, and its evidence report.

Stands up a real stack on a real state server (SQLite, started here on a free loopback
port with its own admin and write tokens), walks it through the incidents that teach
state discipline, recovers from each, and writes a report whose every ✓ is computed
from captured command output.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from driftsafe.durations import format_duration
from driftsafe.engine import Process, get_engine
from driftsafe.errors import ConfigError, DriftsafeError, Interrupted
from driftsafe.lab.drill import steps_crash, steps_drift, steps_ops, steps_proof, steps_state
from driftsafe.lab.drill.context import Drill, DrillError, prepare_dir
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
) -> DrillOutcome:
    """Run the drill in ``directory`` (a previous drill's directory is wiped; any other
    non-empty directory is refused) and write ``directory/report``."""
    selected = _select(only)
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
        subtitle=f"engine: {engine.describe()}; directory: {root}",
        progress=say,
        total_steps=len(selected),
    )
    drill = Drill(root=root, ev=ev, engine=engine, settings=settings, lock_disabled=disable_locking)
    ev.redact(drill.secret)
    # A SIGINT/SIGTERM/SIGHUP stops the Terraform (or driftsafe command) in flight
    # gracefully and then the drill, which still stops its server and writes the report.
    with engine.forward_signals(raise_when_idle=False):
        try:
            with engine.forward_signals():
                _setup(drill, say)
                for name, func in STEPS:
                    if name in selected:
                        func(drill)
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
            _stop_server(drill)
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
        sum(c.passed for c in checks),
        len(checks),
        time.time() - started,
        wiped,
    )


def _select(only: Sequence[str] | None) -> list[str]:
    if not only:
        return list(STEP_NAMES)
    unknown = [n for n in only if n not in STEP_NAMES]
    if unknown:
        raise ConfigError(
            f"unknown drill step(s) {', '.join(unknown)}; steps: {', '.join(STEP_NAMES)}"
        )
    return [n for n in STEP_NAMES if n in only or n in REQUIRED]


def _setup(d: Drill, say: Callable[[str], None]) -> None:
    """Scaffold the stack, make tokens, start the server. Recorded under the first step."""
    s = "backend"
    say(f"driftsafe lab run: drill in {d.root}")
    d.ev.step(s, "Backend evidence: remote, versioned, locked, encrypted")
    (d.root / "server").mkdir()
    tokens = {}
    for name, scope in (("drill-admin", "admin"), ("drill-ci", "write")):
        r, _t = d.ds(
            s,
            [
                "token",
                "create",
                name,
                "--scope",
                scope,
                "--workspace",
                "lab/*",
                "--json",
                "--db",
                d.db_url,
            ],
            f"create the {scope} token",
            cwd=d.root,
        )
        if r.returncode != 0:
            raise DrillError(f"could not create the {scope} token: {r.stderr.strip()}")
        tokens[scope] = json.loads(r.stdout)["token"]
        d.ev.redact(tokens[scope])
    d.admin_token, d.write_token = tokens["admin"], tokens["write"]
    env = dict(os.environ)
    env.update(d.ds_env())
    env.pop("DRIFTSAFE_SERVER", None)
    env.pop("DRIFTSAFE_TOKEN", None)
    d.server = Process(
        [sys.executable, "-m", "driftsafe", "serve", "--db", d.db_url, "--port", "0"],
        cwd=d.root,
        env=env,
        shown_env={"DRIFTSAFE_HOME": str(d.root / "server")},
    )
    if not d.server.wait_for_output(r"listening on https?://", timeout=60):
        result = d.server.wait(timeout=10)
        d.ev.record(s, result, title="driftsafe serve (failed to start)")
        raise DrillError("the state server did not start")
    line = next(x.text for x in d.server.lines() if "listening on" in x.text)
    match = re.search(r"listening on (\S+)", line)
    assert match is not None
    d.server_url = match.group(1).rstrip("/")
    r, _t = d.ds(
        s,
        ["lab", "init", "stack", "--server", d.server_url, "--name", "lab"],
        "driftsafe lab init --server",
        cwd=d.root,
    )
    if r.returncode != 0:
        raise DrillError("driftsafe lab init failed")
    if d.lock_disabled:
        # The deliberately broken setting: an http backend without lock addresses does
        # no locking at all. The report must then show ✗ on the lock clash.
        for env_name in ("staging", "prod"):
            backend = d.env_dir(env_name) / "backend.tf"
            backend.write_text(
                "".join(
                    line
                    for line in backend.read_text().splitlines(keepends=True)
                    if not re.search(r"^\s*(lock|unlock)_(address|method)\s*=", line)
                )
            )


def _stop_server(d: Drill) -> None:
    if d.server is None:
        return
    d.server.send_signal(signal.SIGTERM)
    result = d.server.wait(timeout=20)
    if d.ev.steps:
        d.ev.record(d.ev.steps[-1].id, result, title="driftsafe serve (the state server's log)")


def summary_line(outcome: DrillOutcome) -> str:
    verdict = "every check passed" if outcome.passed else "SOME CHECKS FAILED"
    return f"Drill finished in {format_duration(outcome.wall_seconds)}: {verdict}"
