"""A lock address with ``?wait=`` must not make a drift check wait past its own
``--lock-timeout``: a real state server on port 0, a real lock holder, real Terraform."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from driftsafe.cli.main import cli
from driftsafe.engine import Engine
from driftsafe.server.serving import RunningServer, start_server
from driftsafe.settings import Settings
from driftsafe.store.crypto import new_key_text

pytestmark = pytest.mark.slow

WAIT = 60  # seconds the lock address asks the server to hold a LOCK open
ROOT = """
terraform {{
  backend "http" {{
    address        = "{url}/v1/states/{ws}"
    lock_address   = "{url}/v1/locks/{ws}?wait={wait}s"
    unlock_address = "{url}/v1/locks/{ws}"
    lock_method    = "LOCK"
    unlock_method  = "UNLOCK"
    retry_max      = 0
  }}
}}
resource "terraform_data" "x" {{
  input = "a"
}}
"""
HOLDER = {
    "ID": "0badc0de-0000-4000-8000-000000000001",
    "Operation": "OperationTypeApply",
    "Info": "",
    "Who": "alice@laptop",
    "Version": "1.15.5",
    "Created": "2026-01-01T00:00:00Z",
    "Path": "",
}


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[tuple[RunningServer, str]]:
    running = start_server(
        settings.with_(encryption_key=new_key_text(), home=tmp_path / "srv"),
        db=f"sqlite:///{tmp_path / 'state.db'}",
    )
    try:
        yield running, running.store.create_token("writer", "write")[1]
    finally:
        running.stop()


def _lock_outcomes(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text
    found = {}
    for line in text.splitlines():
        if line.startswith('driftsafe_locks_total{outcome="'):
            outcome = line.split('"')[1]
            found[outcome] = float(line.rsplit(" ", 1)[1])
    return found


def test_check_waits_no_longer_than_its_lock_timeout(
    server: tuple[RunningServer, str], engine: Engine, tmp_path: Path
) -> None:
    running, token = server
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text(ROOT.format(url=running.url, ws="app/prod", wait=WAIT))
    env = {"TF_HTTP_USERNAME": "ci", "TF_HTTP_PASSWORD": token, "TF_IN_AUTOMATION": "1"}
    for args in (["init", "-no-color"], ["apply", "-auto-approve", "-no-color"]):
        result = engine.run(args, cwd=root, env=env)
        assert result.returncode == 0, result.stderr
    taken = httpx.request(
        "LOCK", f"{running.url}/v1/locks/app/prod", json=HOLDER, auth=("alice", token)
    )
    assert taken.status_code == 200
    before = _lock_outcomes(running.url)

    started = time.monotonic()
    result = CliRunner().invoke(
        cli, ["drift", "check", str(root), "--lock-timeout", "2s", "--json"], env=env
    )
    elapsed = time.monotonic() - started

    assert result.exit_code == 1, result.output
    (report,) = json.loads(result.stdout)["roots"]
    assert report["error"]["code"] == "lock_held"
    assert "alice@laptop" in report["error"]["message"]
    assert report["error"]["detail"]["Operation"] == "OperationTypeApply"
    # Behaviour, not speed: a LOCK held open for ?wait= would take WAIT seconds at least.
    assert elapsed < WAIT * 0.75, elapsed
    after = _lock_outcomes(running.url)
    # The plan's LOCKs were answered at once ("held"); none was held open.
    assert after.get("held", 0) > before.get("held", 0)
    assert after.get("wait_timeout", 0) == before.get("wait_timeout", 0)
