from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from clientenv import PASSWORD, WS, Server, Stack

from driftsafe.errors import Conflict, NotFound

# One server and stack per module, on one xdist worker.
pytestmark = pytest.mark.xdist_group("cli_client_lock")


def _take_lock(server: Server, who: str = "alice@ci-runner-7") -> str:
    """Acquire WS's lock the way Terraform does: LOCK with LockInfo, HTTP Basic."""
    lock_id = str(uuid.uuid4())
    info = {
        "ID": lock_id,
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": who,
        "Version": "1.15.5",
        "Created": "2026-11-27T07:00:00.000000Z",
        "Path": "",
    }
    answer = httpx.request(
        "LOCK", f"{server.url}/v1/locks/{WS}", json=info, auth=("ci", server.writer), timeout=30
    )
    assert answer.status_code == 200, answer.text
    return lock_id


def _status(server: Server, *extra: str) -> dict[str, Any]:
    result = server.invoke("lock", "status", WS, "--json", *extra)
    assert result.exit_code == 0, result.stderr
    status: dict[str, Any] = json.loads(result.stdout)
    return status


def test_lock_status_and_safe_unlock(server: Server, stack: Stack) -> None:
    free = server.invoke("lock", "status", WS)
    assert (free.exit_code, free.stdout) == (0, f"{WS}: not locked\n")
    assert _status(server) == {"workspace": WS, "locked": False, "lock": None}

    lock_id = _take_lock(server)
    held = server.invoke("lock", "status", WS, token=server.reader)
    assert held.exit_code == 0, held.stderr
    lines = {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
        for line in held.stdout.splitlines()[1:]
    }
    assert held.stdout.splitlines()[0] == f"{WS}: locked"
    assert lines["ID"] == lock_id
    assert lines["Who"] == "alice@ci-runner-7"
    assert lines["Operation"] == "OperationTypeApply"
    assert lines["Token"] == "ci"
    assert lines["Stale"] == "no"
    assert lines["Age"].endswith(("ms", "s"))

    time.sleep(0.3)
    assert _status(server, "--max-age", "100ms")["lock"]["stale"] is True
    assert _status(server, "--max-age", "1h")["lock"]["stale"] is False

    # A fresh lock survives --if-stale; only an admin may try at all.
    fresh = server.invoke("lock", "unlock", WS, "--if-stale", "--max-age", "1h")
    assert fresh.exit_code == 1 and fresh.stderr.startswith("Error: ")
    writer = server.invoke(
        "lock", "unlock", WS, "--if-stale", "--max-age", "1ms", token=server.writer
    )
    assert writer.exit_code == 1 and writer.stderr.startswith("Error: ")
    assert _status(server)["lock"]["id"] == lock_id

    stale = server.invoke("lock", "unlock", WS, "--if-stale", "--max-age", "100ms", "--json")
    assert stale.exit_code == 0, stale.stderr
    assert json.loads(stale.stdout)["released"]["id"] == lock_id
    assert _status(server)["locked"] is False

    nothing = server.invoke("lock", "unlock", WS)
    assert nothing.exit_code == 1 and nothing.stderr.startswith("Error: ")

    # Without --if-stale the lock breaks whatever its age; the old holder is fenced.
    second = _take_lock(server, who="bob@laptop")
    forced = server.invoke("lock", "unlock", WS)
    assert forced.exit_code == 0, forced.stderr
    assert f"released lock {second}" in forced.stdout
    assert "Who:       bob@laptop" in forced.stdout
    stack.apply(300)  # Terraform locks, writes and unlocks cleanly afterwards
    assert _status(server)["locked"] is False

    bad = server.invoke("lock", "unlock", WS, "--max-age", "5m")
    assert bad.exit_code == 1 and "--if-stale" in bad.stderr


def test_client_lock_errors(server: Server, stack: Stack) -> None:
    from driftsafe.client import Client

    lock_id = _take_lock(server)
    with Client(server.url, server.admin) as client:
        with pytest.raises(Conflict) as refused:
            client.force_unlock(WS, if_stale=True, max_age=3600)
        assert refused.value.http_status == 409
        assert client.lock_status(WS)["lock"]["id"] == lock_id
        assert client.force_unlock(WS)["id"] == lock_id
        with pytest.raises(NotFound):
            client.force_unlock(WS)


def test_audit_shows_force_unlock(server: Server, stack: Stack) -> None:
    lock_id = _take_lock(server, who="carol@box")
    assert server.invoke("lock", "unlock", WS).exit_code == 0
    result = server.invoke("audit", "--workspace", WS, "--limit", "50", "--json")
    assert result.exit_code == 0, result.stderr
    events = json.loads(result.stdout)["events"]
    assert len(events) <= 50
    assert all(e["workspace"] == WS for e in events)
    stamps = [e["at"] for e in events]
    assert stamps == sorted(stamps, reverse=True)
    actions = [e["action"] for e in events]
    assert actions[0] == "force-unlock"
    assert events[0]["token"] == "ops-admin"
    assert lock_id in json.dumps(events[0]) or "carol@box" in json.dumps(events[0])
    assert {"lock", "unlock", "write"} <= set(actions)

    human = server.invoke("audit", "-w", WS, "-n", "3")
    assert human.exit_code == 0
    rows = human.stdout.splitlines()
    assert rows[0].split() == ["AT", "ACTION", "WORKSPACE", "TOKEN", "FROM", "OUTCOME", "DETAIL"]
    assert len(rows) == 4
    assert rows[1].split()[1] == "force-unlock"
    assert rows[1].split()[0].endswith("Z")  # times carry their zone


def test_secrets_scan_workspace_and_file(server: Server, stack: Stack, tmp_path: Any) -> None:
    result = server.invoke("secrets", "scan", "--workspace", WS, "--json", token=server.reader)
    assert result.exit_code == 2, result.stderr
    assert PASSWORD not in result.stdout
    report = json.loads(result.stdout)
    assert len(report["versions"]) == 1
    found = {(f["address"], f["path"], f["kind"]) for f in report["versions"][0]["findings"]}
    assert ("terraform_data.cfg", "input.value.password", "sensitive") in found

    every = server.invoke("secrets", "scan", "-w", WS, "--all-versions")
    assert every.exit_code == 2
    assert PASSWORD not in every.stdout
    listed = json.loads(server.invoke("state", "versions", WS, "--json").stdout)["versions"]
    assert every.stdout.count(f"{WS} serial ") == len(listed)
    assert every.stdout.rstrip().endswith(f"in {len(listed)} version(s) of {WS}.")

    state_file = tmp_path / "terraform.tfstate"
    state_file.write_text(server.invoke("state", "show", WS, "--raw").stdout)
    from_file = server.invoke("secrets", "scan", str(state_file))
    assert from_file.exit_code == 2
    assert "input.value.password" in from_file.stdout and PASSWORD not in from_file.stdout

    clean = tmp_path / "app.conf"
    clean.write_text("env = staging\nmax_connections = 100\nport = 8080\n")
    ok = server.invoke("secrets", "scan", str(clean))
    assert (ok.exit_code, ok.stdout) == (0, f"{clean}: no plaintext secrets found.\n")
    assert json.loads(server.invoke("secrets", "scan", str(clean), "--json").stdout) == {
        "source": str(clean),
        "findings": [],
    }

    for args in (
        [],
        [str(clean), "-w", WS],
        [str(clean), "--all-versions"],
        [str(tmp_path / "missing")],
    ):
        bad = server.invoke("secrets", "scan", *args)
        assert bad.exit_code == 1 and bad.stderr.startswith("Error: "), args
