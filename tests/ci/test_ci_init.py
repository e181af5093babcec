"""`driftsafe ci init`: the workflows pass actionlint and say what the design promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from driftsafe.cli.main import cli

ACTIONLINT = Path(sys.executable).parent / "actionlint"


def _repo(tmp_path: Path, envs: tuple[str, ...] = ("prod", "staging")) -> Path:
    for env in envs:
        (tmp_path / "envs" / env).mkdir(parents=True)
        (tmp_path / "envs" / env / "main.tf").write_text("# root\n")
    return tmp_path


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


@pytest.mark.parametrize("alert", ["issue", "pr", "both"])
def test_workflows_pass_actionlint(tmp_path: Path, alert: str) -> None:
    repo = _repo(tmp_path)
    result = CliRunner().invoke(
        cli, ["ci", "init", str(repo), "--alert", alert, "--secret-var", "app_secret"]
    )
    assert result.exit_code == 0, result.output
    files = sorted((repo / ".github" / "workflows").glob("*.yml"))
    assert [f.name for f in files] == ["drift.yml", "terraform-apply.yml", "terraform-plan.yml"]
    lint = subprocess.run(
        [str(ACTIONLINT), "-no-color", *map(str, files)], cwd=repo, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    # the check above can fail: a bad expression is reported
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ matrix.nope }}\n"
    )
    lint = subprocess.run([str(ACTIONLINT), "-no-color", str(bad)], capture_output=True, text=True)
    assert lint.returncode != 0


def test_workflow_contents(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    result = CliRunner().invoke(
        cli, ["ci", "init", str(repo), "--json", "--cron", "5 4 * * 1", "--lock-timeout", "7m"]
    )
    assert result.exit_code == 0, result.output
    wf = repo / ".github" / "workflows"
    apply = _load(wf / "terraform-apply.yml")
    assert apply["on"]["push"]["branches"] == ["main"]
    assert list(apply["jobs"]) == ["apply-staging", "apply-prod"]  # prod last
    assert apply["jobs"]["apply-prod"]["needs"] == "apply-staging"
    for env in ("staging", "prod"):
        job = apply["jobs"][f"apply-{env}"]
        assert job["concurrency"] == {"group": f"terraform-{env}", "cancel-in-progress": False}
        runs = " ".join(step.get("run", "") for step in job["steps"])
        assert "apply -input=false -auto-approve -lock-timeout=7m" in runs
        assert runs.index("drift check") < runs.index(" apply ")
    assert apply["permissions"] == {"contents": "read"}
    plan = _load(wf / "terraform-plan.yml")
    assert "pull_request" in plan["on"]
    assert plan["jobs"]["plan"]["strategy"]["matrix"]["env"] == ["staging", "prod"]
    assert "-lock-timeout=7m" in plan["jobs"]["plan"]["steps"][-1]["run"]
    drift = _load(wf / "drift.yml")
    assert drift["on"]["schedule"] == [{"cron": "5 4 * * 1"}]
    assert drift["permissions"] == {"contents": "read", "issues": "write"}
    assert drift["jobs"]["drift"]["strategy"]["matrix"]["env"] == ["staging", "prod"]
    run = next(s["run"] for s in drift["jobs"]["drift"]["steps"] if s.get("name") == "drift check")
    assert "driftsafe drift check" in run and "--github-issue" in run and "--lock-timeout 7m" in run
    for path in wf.glob("*.yml"):
        for uses in re.findall(r"uses: (\S+)", path.read_text()):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), uses


def test_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    empty = runner.invoke(cli, ["ci", "init", str(tmp_path)])
    assert empty.exit_code == 1 and "no root modules" in empty.stderr
    repo = _repo(tmp_path)
    assert runner.invoke(cli, ["ci", "init", str(repo)]).exit_code == 0
    again = runner.invoke(cli, ["ci", "init", str(repo)])
    assert again.exit_code == 1 and "--force" in again.stderr
    assert runner.invoke(cli, ["ci", "init", str(repo), "--force"]).exit_code == 0
    bad = runner.invoke(cli, ["ci", "init", str(repo), "--force", "--cron", "daily"])
    assert bad.exit_code == 1 and "five fields" in bad.stderr
    helped = runner.invoke(cli, ["ci", "init", "--help"])
    assert "Example:" in helped.stdout
