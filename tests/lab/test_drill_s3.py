"""``driftsafe lab run --backend s3``: the same 13 steps on a versioned, encrypted S3
bucket (moto started by the drill itself), with the seed's S3 evidence, and what S3
cannot do reproduced as a backend limitation rather than faked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("drill-s3")]

LIMITATIONS = {"wait-server", "crash-unlock", "fencing"}


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    directory = tmp_path_factory.mktemp("drill-s3") / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTSAFE_", "AWS_"))}
    env["DRIFTSAFE_HOME"] = str(directory.parent / "home")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftsafe",
            "lab",
            "run",
            "--dir",
            str(directory),
            "--backend",
            "s3",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    return proc, directory


def test_s3_drill_ends_with_no_failed_check(drill: tuple[Any, Path]) -> None:
    proc, directory = drill
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "[13/13]" in proc.stdout and "backend limitation(s) reproduced" in proc.stdout
    doc = json.loads((directory / "report" / "checklist.json").read_text())
    status = {c["id"]: c["status"] for c in doc["checks"]}
    assert len(status) == 32 and doc["failed"] == 0 and doc["all_passed"]
    assert {k for k, v in status.items() if v == "limitation"} == LIMITATIONS
    assert {k for k, v in status.items() if v == "passed"} == set(status) - LIMITATIONS
    for c in doc["checks"]:
        assert c["evidence"], f"{c['id']} points at no evidence"


def test_s3_report_has_the_seed_evidence(drill: tuple[Any, Path]) -> None:
    _proc, directory = drill
    report = directory / "report"
    md = (report / "report.md").read_text()
    # It opens with S3 side by side with driftsafe's guarantees, before the checklist.
    table = md.index("| guarantee | this run: S3 | driftsafe server |")
    assert table < md.index("## Acceptance checklist")
    assert "| A stale writer cannot replace a newer state (fencing) | ⚠" in md
    transcripts = {
        p.name: json.loads(p.read_text()) for p in (report / "transcripts").glob("*.json")
    }

    def find(words: str) -> dict[str, Any]:
        found = [t for t in transcripts.values() if words in t["command_line"]]
        assert found, f"no transcript runs {words!r}"
        return found[0]

    assert 'backend "s3"' in md and "use_lockfile                = true" in md
    assert json.loads(find("get-bucket-versioning")["stdout"])["Status"] == "Enabled"
    lock = json.loads(find(".tflock")["stdout"])  # captured while an apply held it
    assert lock["ID"] and lock["Who"] and lock["Operation"] == "OperationTypeApply"
    listing = json.loads(find("list-object-versions")["stdout"])
    assert len(listing) > 5 and all(v["VersionId"] and v["serial"] for v in listing)
    diff = find("staging-before-resolution.tfstate")
    assert diff["exit_code"] == 2 and "values.max_connections" in diff["stdout"]
    # The lost update is shown, with what fencing would have done.
    assert "module.app.lab_delay.rollout" in md and "409" in md
    secret = (directory / "stack" / "runtime" / "staging" / "secret.txt").read_text()
    for path in report.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path


def test_s3_endpoint_uses_the_given_server_and_credentials(tmp_path: Path) -> None:
    """--s3-endpoint: the drill makes its bucket on that endpoint with the AWS_*
    credentials of the environment (here a moto server the test started)."""
    from driftsafe.backends import MotoServer, S3Backend, read_backend

    with MotoServer.start() as moto:
        directory = tmp_path / "run"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTSAFE_", "AWS_"))}
        env.update(
            DRIFTSAFE_HOME=str(tmp_path / "home"),
            AWS_ACCESS_KEY_ID="endpoint-test",
            AWS_SECRET_ACCESS_KEY="endpoint-test-secret-value",
            AWS_REGION="us-east-1",
        )
        args = ["--backend", "s3", "--s3-endpoint", moto.url, "--only", "lock-clash"]
        proc = subprocess.run(
            [sys.executable, "-m", "driftsafe", "lab", "run", "--dir", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        backend = (directory / "stack" / "envs" / "staging" / "backend.tf").read_text()
        assert moto.url in backend and "endpoint-test-secret-value" not in backend
        s3 = S3Backend(read_backend(directory / "stack" / "envs" / "staging"), env)
        assert s3.bucket_versioning() == "Enabled"
        assert len(s3.object_versions("default")) >= 2
        for path in (directory / "report").rglob("*"):
            if path.is_file():
                assert "endpoint-test-secret-value" not in path.read_text(errors="replace")
    # Without credentials, a clear error rather than a traceback.
    bare = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftsafe",
            "lab",
            "run",
            "--dir",
            str(tmp_path / "r2"),
            "--backend",
            "s3",
            "--s3-endpoint",
            "http://127.0.0.1:9",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=bare,
        stdin=subprocess.DEVNULL,
    )
    assert refused.returncode != 0
    assert "AWS credentials" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
