"""Drift on the real lab stack: real Terraform, the lab provider, real files.

One stack is applied once and walked through: clean -> hand edits -> report ->
alerts -> a refused resolve -> codify + revert -> ``No changes.``. The tests share it
and so run in file order on one worker (xdist_group).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from driftsafe.cli.main import cli
from driftsafe.drift import resolve_drift
from driftsafe.drift.check import check_roots
from driftsafe.drift.classify import classify
from driftsafe.drift.ignore import parse_ignore
from driftsafe.drift.model import RootReport
from driftsafe.drift.notify import GitHub, send_webhook, sync_issue
from driftsafe.drift.render import render_drift_markdown, render_drift_table
from driftsafe.engine import Engine
from driftsafe.errors import DriftError
from driftsafe.lab.scaffold import init_stack

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("drift-lab")]

SECRET = "drift-test-secret-Zq81"
ENV = {"TF_VAR_app_secret": SECRET}
APP = "module.app.lab_config_file.app"
FEATURES = "module.app.lab_config_file.features"
SECRET_FILE = "module.app.lab_secret_file.app"


def _git(*args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("drift-lab")
    stack = init_stack(base / "stack")
    staging = stack.envs["staging"]
    for args in (
        ["init", "-input=false", "-no-color"],
        ["apply", "-input=false", "-auto-approve", "-no-color"],
    ):
        result = engine.run(args, cwd=staging, env=ENV, timeout=300)
        assert result.returncode == 0, result.stderr
    # The stack is a git checkout with a (bare, local) origin for the PR test.
    bare = base / "origin.git"
    _git("init", "-q", "--bare", "-b", "main", str(bare), cwd=base)
    (stack.root / ".gitignore").write_text(".terraform/\n*.tfstate*\nruntime/\n")
    _git("init", "-q", "-b", "main", cwd=stack.root)
    _git("add", "-A", cwd=stack.root)
    _git("commit", "-q", "-m", "stack", cwd=stack.root)
    _git("remote", "add", "origin", str(bare), cwd=stack.root)
    return {
        "stack": stack,
        "staging": staging,
        "runtime": stack.root / "runtime" / "staging",
        "bare": bare,
    }


def test_clean_stack_exits_0(lab: dict[str, Any]) -> None:
    result = CliRunner().invoke(cli, ["drift", "check", str(lab["staging"]), "--json"], env=ENV)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema_version"] == 1 and data["exit_code"] == 0
    assert data["roots"][0]["status"] == "clean" and data["roots"][0]["findings"] == []
    assert "clean in" in result.stderr  # progress


@pytest.fixture(scope="module")
def drifted(lab: dict[str, Any], engine: Engine) -> RootReport:
    runtime: Path = lab["runtime"]
    conf = runtime / "app.conf"
    text = conf.read_text()
    assert "max_connections = 50" in text and "port = 8081" in text
    # a hotfix by hand, a permission change, and a file removed
    conf.write_text(
        text.replace("max_connections = 50", "max_connections = 200").replace(
            "port = 8081", "port = 9090"
        )
    )
    (runtime / "features.conf").chmod(0o666)
    (runtime / "secret.txt").unlink()
    (report,) = check_roots([lab["staging"]], engine=engine, env=ENV, keep_plans=True)
    return report


def _by_target(report: RootReport) -> dict[str, Any]:
    return {f.target: f for f in report.findings}


def test_report_names_what_apply_would_revert(drifted: RootReport) -> None:
    assert drifted.status == "drift" and drifted.exit_code == 2
    found = _by_target(drifted)
    mc = found[f"{APP}.values.max_connections"]
    assert (mc.kind, mc.state, mc.reality, mc.config, mc.apply) == (
        "changed",
        "50",
        "200",
        "50",
        "revert",
    )
    assert mc.message == "apply would silently revert values.max_connections 200 -> 50"
    assert found[f"{APP}.values.port"].reality == "9090"
    # The file's computed content changed with them: folded in, not a finding of its own.
    assert f"{APP}.content" not in found and mc.configured is True
    (content,) = mc.computed
    assert content.path == "content" and content.configured is False
    assert content.explained_by == [f"{APP}.values.max_connections", f"{APP}.values.port"]
    mode = found[f"{FEATURES}.mode"]
    assert (mode.state, mode.reality, mode.config, mode.apply) == ("0644", "0666", "0644", "revert")
    gone = found[SECRET_FILE]
    assert (gone.kind, gone.apply) == ("deleted", "recreate")
    assert "recreate" in gone.message
    # nothing else drifted, and the secret never reaches the report
    assert {f.address for f in drifted.findings} == {APP, FEATURES, SECRET_FILE}
    blob = json.dumps(drifted.to_json())
    assert SECRET not in blob
    assert len({f.fingerprint for f in drifted.findings}) == len(drifted.findings)
    # the same plans give the same fingerprints (same drift is the same alert)
    again, _, _ = classify(drifted.refresh_plan or {}, drifted.normal_plan, root=drifted.name)
    assert [f.fingerprint for f in again] == [f.fingerprint for f in drifted.findings]
    table = render_drift_table([drifted])
    assert "max_connections 200 -> 50" in table and "Drift detected." in table
    # max_connections, port, the mode, the deleted secret file: four, as a person counts.
    assert "would silently undo 4 manual change(s)" in table
    md = render_drift_markdown([drifted], generated_at="now")
    assert f"| `{APP}` | `values.max_connections` | 50 | 200 | 50 |" in md


def test_ignore_rules_on_real_plans(drifted: RootReport) -> None:
    rules = parse_ignore(
        f'[[ignore]]\naddress = "{FEATURES}"\nattribute = "mode"\n'
        'reason = "ops widen permissions during incidents"\n'
        '[[ignore]]\naddress = "module.app.lab_secret_file.*"\nreason = "rotated by vault"\n'
    )
    kept, ignored, _ = classify(
        drifted.refresh_plan or {}, drifted.normal_plan, root=drifted.name, ignore=rules
    )
    assert {f.target for f in ignored} == {f"{FEATURES}.mode", SECRET_FILE}
    assert {f.ignored_reason for f in ignored} == {
        "ops widen permissions during incidents",
        "rotated by vault",
    }
    assert {f.address for f in kept} == {APP}
    everything = parse_ignore('[[ignore]]\naddress = "*"\nreason = "lab"\n')
    kept, ignored, _ = classify(
        drifted.refresh_plan or {}, drifted.normal_plan, root=drifted.name, ignore=everything
    )
    assert kept == [] and len(ignored) == len(drifted.findings)
    with pytest.raises(Exception, match="reason"):
        parse_ignore('[[ignore]]\naddress = "*"\n')


def test_cli_check_alerts_and_failed_webhook(
    lab: dict[str, Any], drifted: RootReport, saas: Any, tmp_path: Path
) -> None:
    md = tmp_path / "drift.md"
    env = {**ENV, "GITHUB_TOKEN": "gh-test-token", "DRIFTSAFE_GITHUB_API": saas.url}
    result = CliRunner().invoke(
        cli,
        [
            "drift",
            "check",
            str(lab["staging"]),
            "--json",
            "--markdown",
            str(md),
            "--notify",
            f"{saas.url}/broken-hook",
            "--github-issue",
            "acme/infra",
            "--github-pr",
            "acme/infra",
        ],
        env=env,
    )
    # the webhook failed: exit 1, but the drift is fully reported
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["exit_code"] == 1 and data["roots"][0]["status"] == "drift"
    assert len(data["roots"][0]["findings"]) == len(drifted.findings)
    channels = {d["channel"]: d for d in data["deliveries"]}
    assert channels["webhook"]["ok"] is False and "HTTP 500" in channels["webhook"]["message"]
    assert (
        channels["github-issue"]["ok"] and "opened issue #" in channels["github-issue"]["message"]
    )
    assert channels["github-pr"]["ok"], channels["github-pr"]
    assert "FAILED: webhook" in result.stderr
    assert "max_connections" in md.read_text()
    # the issue: one, with a marker per finding fingerprint, authenticated
    (created,) = saas.calls("POST", "/repos/acme/infra/issues")
    assert created.headers["Authorization"] == "Bearer gh-test-token"
    for f in drifted.findings:
        assert f"driftsafe:fp={f.fingerprint}" in created.body["body"]
    # the PR: a branch pushed to origin that codifies the tfvars, the checkout untouched
    (pull,) = saas.calls("POST", "/repos/acme/infra/pulls")
    branch = pull.body["head"]
    assert pull.body["base"] == "main" and branch.startswith("driftsafe/drift-")
    tfvars = _git("show", f"{branch}:envs/staging/terraform.tfvars", cwd=lab["bare"])
    assert "max_connections = 200" in tfvars and "port            = 9090" in tfvars
    assert "max_connections = 50" in (lab["staging"] / "terraform.tfvars").read_text()
    assert "+max_connections = 200" in pull.body["body"]


def test_issue_is_not_alerted_twice_and_closes_when_clear(drifted: RootReport, saas: Any) -> None:
    gh = GitHub(saas.url, "tok", "acme/infra")
    try:
        first = sync_issue(gh, drifted, generated_at="t1")
        assert first.ok and "opened issue #1" in first.message
        second = sync_issue(gh, drifted, generated_at="t2")
        assert second.ok and "not alerted again" in second.message
        assert saas.calls("POST", "/repos/acme/infra/issues/1/comments") == []
        # one further change: only the new finding is commented
        extra = replace(drifted.findings[0], reality="999", fingerprint="0123456789abcdef")
        more = replace(drifted, findings=[*drifted.findings, extra])
        third = sync_issue(gh, more, generated_at="t3")
        assert "1 new finding" in third.message
        (comment,) = saas.calls("POST", "/repos/acme/infra/issues/1/comments")
        assert "0123456789abcdef" in comment.body["body"]
        assert drifted.findings[1].fingerprint not in comment.body["body"]
        clean = replace(drifted, findings=[], status="clean")
        closed = sync_issue(gh, clean, generated_at="t4")
        assert "closed issue #1" in closed.message and saas.issues[1]["state"] == "closed"
    finally:
        gh.close()
    hook = send_webhook(f"{saas.url}/hook", [drifted], generated_at="t5")
    assert hook.ok
    (posted,) = saas.calls("POST", "/hook")
    assert "Drift in" in posted.body["text"] and "max_connections 200 -> 50" in posted.body["text"]
    assert posted.body["report"]["roots"][0]["findings"][0]["fingerprint"]


def test_resolve_refuses_a_plan_that_reverts_unnamed_drift(
    lab: dict[str, Any], drifted: RootReport, engine: Engine
) -> None:
    tfvars = (lab["staging"] / "terraform.tfvars").read_text()
    with pytest.raises(DriftError, match=r"refusing.*values\.port") as refused:
        resolve_drift(
            lab["staging"], revert=[f"{APP}.values.max_connections"], engine=engine, env=ENV
        )
    # the rendered content follows values: it is not a separate unnamed revert
    assert "content" not in refused.value.message
    assert (lab["staging"] / "terraform.tfvars").read_text() == tfvars
    assert "max_connections = 200" in (lab["runtime"] / "app.conf").read_text()


def test_resolve_codify_and_revert_then_no_changes(
    lab: dict[str, Any], drifted: RootReport
) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "drift",
            "resolve",
            str(lab["staging"]),
            "--yes",
            "--json",
            "--codify",
            f"{APP}.values.max_connections",
            "--codify",
            f"{APP}.values.port",
            "--revert",
            f"{FEATURES}.mode",
            "--revert",
            SECRET_FILE,
        ],
        env=ENV,
    )
    assert result.exit_code == 0, result.output
    res = json.loads(result.stdout)
    assert res["clean_after"] is True
    assert "No changes." in res["final_plan_output"]
    # the targeted plan was shown before anything was applied
    assert "Terraform will perform the following actions" in result.stderr
    assert "lab_config_file.features will be updated in-place" in res["plan_output"]
    tfvars = (lab["staging"] / "terraform.tfvars").read_text()
    assert "max_connections = 200" in tfvars and "port            = 9090" in tfvars
    assert "+max_connections = 200" in res["diff"]
    assert oct((lab["runtime"] / "features.conf").stat().st_mode & 0o777) == "0o644"
    assert (lab["runtime"] / "secret.txt").read_text().strip() == SECRET
    argvs = [r["argv"] for r in res["runs"]]
    assert any("-target=module.app.lab_config_file.features" in a for a in argvs)
    applies = [a for a in argvs if "apply" in a]
    assert len(applies) == 2  # the checked revert plan, then the refresh-only plan
    assert all(a[-1].endswith(".tfplan") for a in applies)
    assert "No changes." in res["runs"][-1]["stdout"]
    assert res["codified"] == [f"{APP}.values.max_connections", f"{APP}.values.port"]
    assert res["reverted"] == [f"{FEATURES}.mode", SECRET_FILE]
    assert SECRET not in result.stdout  # not in transcripts either
