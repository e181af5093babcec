"""Verdicts that must be errors (held lock, failed init), and report history on a real server.

These use Terraform's built-in ``terraform_data`` (no provider start-up) to stay fast.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftsafe.cli.main import cli
from driftsafe.drift.check import check_roots
from driftsafe.engine import Engine

SLOW_APPLY = """
variable "n" {
  default = "1"
}
resource "terraform_data" "slow" {
  input = var.n
  provisioner "local-exec" {
    command = "sleep 30"
  }
}
"""


def _root(path: Path, text: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "main.tf").write_text(text)
    return path


def test_lock_held_elsewhere_is_an_error_naming_the_holder(engine: Engine, tmp_path: Path) -> None:
    root = _root(tmp_path / "envs" / "locked", SLOW_APPLY)
    assert engine.run(["init", "-no-color"], cwd=root, timeout=120).returncode == 0
    apply = engine.start(["apply", "-auto-approve", "-no-color", "-var", "n=2"], cwd=root)
    try:
        assert apply.wait_for_output(r"Provisioning with 'local-exec'", timeout=90)
        result = CliRunner().invoke(
            cli, ["drift", "check", str(root), "--json", "--lock-timeout", "1s"]
        )
        assert result.exit_code == 1, result.output
        data = json.loads(result.stdout)
        (report,) = data["roots"]
        assert report["status"] == "error" and data["exit_code"] == 1
        assert report["findings"] == []
        assert report["error"]["code"] == "lock_held"
        assert re.search(r"lock held by \S+@\S+ \(OperationTypeApply", report["error"]["message"])
        assert report["error"]["detail"]["ID"]
        assert "ERROR after " in result.stderr  # progress line names the failure
    finally:
        apply.kill()
        apply.wait(timeout=30)


def test_failed_init_and_parallel_roots(engine: Engine, tmp_path: Path) -> None:
    good = _root(tmp_path / "a" / "good", 'resource "terraform_data" "x" {\n  input = "a"\n}\n')
    bad = _root(tmp_path / "b" / "bad", 'resource "terraform_data" "x" {\n  input = \n}\n')
    assert engine.run(["init", "-no-color"], cwd=good, timeout=120).returncode == 0
    assert (
        engine.run(["apply", "-auto-approve", "-no-color"], cwd=good, timeout=120).returncode == 0
    )
    seen: list[str] = []
    reports = check_roots([good, bad], engine=engine, progress=seen.append)
    assert [r.status for r in reports] == ["clean", "error"]
    assert "init failed" in reports[1].error["message"]
    assert reports[1].findings == [] and reports[1].runs[0].argv[-3:] == [
        "init",
        "-input=false",
        "-no-color",
    ]
    assert sum("[" in line for line in seen) == 2  # one progress line per finished root
    # plans never leave state behind: no terraform.tfstate written by the check itself
    state = json.loads((good / "terraform.tfstate").read_text())
    assert state["serial"] == 1
    result = CliRunner().invoke(cli, ["drift", "check", str(good), str(bad)])
    assert result.exit_code == 1
    assert "Drift check failed." in result.stdout


@pytest.fixture
def server(tmp_path: Path, ds_home: Path) -> Iterator[tuple[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTSAFE_")}
    env["DRIFTSAFE_HOME"] = str(ds_home)
    db = f"sqlite:///{tmp_path / 'server.db'}"
    token = json.loads(
        subprocess.run(
            [
                sys.executable,
                "-m",
                "driftsafe",
                "token",
                "create",
                "drift",
                "--scope",
                "write",
                "--workspace",
                "hist/*",
                "--json",
                "--db",
                db,
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )["token"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "driftsafe", "serve", "--db", db, "--port", "0"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        url = None
        for line in proc.stderr:
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                url = match.group(1)
                break
        assert url, "server did not start"
        yield url, token
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if proc.stderr is not None:
            proc.stderr.close()


def test_history_stored_on_server(
    engine: Engine, tmp_path: Path, server: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, token = server
    backend = (
        f'terraform {{\n  backend "http" {{\n    address = "{url}/v1/states/hist/app"\n'
        f'    lock_address = "{url}/v1/locks/hist/app"\n'
        f'    unlock_address = "{url}/v1/locks/hist/app"\n'
        '    lock_method = "LOCK"\n    unlock_method = "UNLOCK"\n  }\n}\n'
        'resource "terraform_data" "x" {\n  input = "a"\n}\n'
    )
    root = _root(tmp_path / "envs" / "app", backend)
    monkeypatch.setenv("TF_HTTP_USERNAME", "drift")
    monkeypatch.setenv("TF_HTTP_PASSWORD", token)
    assert engine.run(["init", "-no-color"], cwd=root, timeout=120).returncode == 0
    assert (
        engine.run(["apply", "-auto-approve", "-no-color"], cwd=root, timeout=120).returncode == 0
    )
    runner = CliRunner()
    env = {"DRIFTSAFE_SERVER": url, "DRIFTSAFE_TOKEN": token}
    checked = runner.invoke(cli, ["drift", "check", str(root)], env=env)
    assert checked.exit_code == 0, checked.output
    assert "ok: history: stored as report" in checked.stderr
    listed = runner.invoke(cli, ["drift", "history", "hist/app", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    reports = json.loads(listed.stdout)["reports"]
    assert len(reports) == 1
    assert reports[0]["report"]["status"] == "clean"
    assert reports[0]["report"]["workspace"] == "hist/app"  # derived from the http backend
    table = runner.invoke(cli, ["drift", "history", "hist/app"], env=env)
    assert "clean" in table.stdout and "0 finding(s)" in table.stdout
    denied = runner.invoke(cli, ["drift", "history", "other/ws"], env=env)
    assert denied.exit_code == 1 and "Error:" in denied.stderr


def test_help_and_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    for args in (["drift"], ["drift", "check"], ["drift", "resolve"], ["drift", "history"]):
        helped = runner.invoke(cli, [*args, "--help"])
        assert helped.exit_code == 0 and "Example:" in helped.stdout
    nothing = runner.invoke(cli, ["drift", "resolve", str(tmp_path)])
    assert nothing.exit_code == 1 and "--codify or --revert" in nothing.stderr
    no_server = runner.invoke(cli, ["drift", "history", "a/b"])
    assert no_server.exit_code == 1 and "--server" in no_server.stderr
    no_token = runner.invoke(
        cli, ["drift", "check", str(tmp_path), "--github-issue", "o/r"], env={"GITHUB_TOKEN": ""}
    )
    assert no_token.exit_code == 1 and "GITHUB_TOKEN" in no_token.stderr


def test_lock_held_on_a_driftsafe_server(
    engine: Engine, tmp_path: Path, server: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    url, token = server
    lock_url = f"{url}/v1/locks/hist/held"
    root = _root(
        tmp_path / "envs" / "held",
        (
            f'terraform {{\n  backend "http" {{\n    address = "{url}/v1/states/hist/held"\n'
            f'    lock_address = "{lock_url}"\n    unlock_address = "{lock_url}"\n'
            '    lock_method = "LOCK"\n    unlock_method = "UNLOCK"\n  }\n}\n'
            'resource "terraform_data" "x" {\n  input = "a"\n}\n'
        ),
    )
    monkeypatch.setenv("TF_HTTP_USERNAME", "drift")
    monkeypatch.setenv("TF_HTTP_PASSWORD", token)
    assert engine.run(["init", "-no-color"], cwd=root, timeout=120).returncode == 0
    holder = {
        "ID": "6f1c-held",
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": "alice@laptop",
        "Version": "1.15.5",
        "Created": "2026-01-02T03:04:05Z",
        "Path": "",
    }
    taken = httpx.request("LOCK", lock_url, json=holder, auth=("drift", token), timeout=10)
    assert taken.status_code == 200, taken.text
    (report,) = check_roots([root], engine=engine, lock_timeout="1s")
    assert report.status == "error" and report.exit_code == 1
    assert report.error["code"] == "lock_held"
    assert "lock held by alice@laptop (OperationTypeApply" in report.error["message"]
    assert "lock ID 6f1c-held" in report.error["message"]
