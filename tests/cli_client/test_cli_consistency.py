"""One behaviour across the client commands, against a real server and real
Terraform writes: a workspace that does not exist, errors under --json, times with
their zone and one timestamp format, and a fenced write's reason one command away."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest
from clientenv import WS, Server, Stack

# One server and stack per module, on one xdist worker.
pytestmark = pytest.mark.xdist_group("cli_client_consistency")

NOPE = "cli/nope"
RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
TABLE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

# Every command that names a workspace, pointed at one that does not exist.
ON_MISSING = [
    ["state", "versions", NOPE],
    ["state", "show", NOPE],
    ["state", "show", NOPE, "--serial", "1"],
    ["state", "diff", NOPE, "1"],
    ["state", "diff", NOPE, "1", "2"],
    ["state", "restore", NOPE, "--serial", "1"],
    ["lock", "status", NOPE],
    ["lock", "unlock", NOPE],
    ["lock", "unlock", NOPE, "--if-stale"],
    ["audit", "--workspace", NOPE],
    ["audit", "--workspace", NOPE, "--last"],
    ["secrets", "scan", "--workspace", NOPE],
    ["drift", "history", NOPE],
]


def _take_lock(server: Server) -> str:
    lock_id = str(uuid.uuid4())
    info = {
        "ID": lock_id,
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": "dave@ci",
        "Version": "1.15.5",
        "Created": "2026-11-27T09:00:00.123456789+02:00",
        "Path": "",
    }
    answer = httpx.request(
        "LOCK", f"{server.url}/v1/locks/{WS}", json=info, auth=("ci", server.writer), timeout=30
    )
    assert answer.status_code == 200, answer.text
    return lock_id


@pytest.mark.parametrize("argv", ON_MISSING, ids=" ".join)
def test_a_missing_workspace_is_exit_1_with_one_message(
    server: Server, stack: Stack, argv: list[str]
) -> None:
    # Each case its own name: refusals are audited, and the audit of a workspace that
    # never existed still shows the attempts made on it.
    nope = f"{NOPE}-{ON_MISSING.index(argv)}"
    argv = [nope if a == NOPE else a for a in argv]
    expected = (
        f"Error: workspace {nope!r} does not exist on {server.url}: "
        "the server holds no state and no lock for it\n"
    )
    result = server.invoke(*argv)
    assert (result.exit_code, result.stderr) == (1, expected), result.stdout
    as_json = server.invoke(*argv, "--json")
    assert as_json.exit_code == 1
    error = json.loads(as_json.stdout)["error"]
    assert error["code"] == "not_found"
    assert error["message"] == expected.removeprefix("Error: ").rstrip("\n")


def test_every_command_above_has_json() -> None:
    from click.testing import CliRunner

    from driftsafe.cli.main import cli

    for argv in ON_MISSING:
        path = argv[:1] if argv[0] == "audit" else argv[:2]
        help_text = CliRunner().invoke(cli, [*path, "--help"]).output
        assert "--json" in help_text, argv


def test_unlocking_a_free_lock_is_an_error_a_script_can_tell(server: Server, stack: Stack) -> None:
    result = server.invoke("lock", "unlock", WS)
    assert result.exit_code == 1
    assert result.stderr == f"Error: workspace {WS!r} is not locked\n"
    as_json = server.invoke("lock", "unlock", WS, "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["error"]["code"] == "not_found"
    # A free lock on an existing workspace is no error for `lock status`.
    status = server.invoke("lock", "status", WS)
    assert (status.exit_code, status.stdout) == (0, f"{WS}: not locked\n")


def test_errors_under_json_are_json_on_stdout(server: Server, stack: Stack) -> None:
    for argv in (
        ["state", "show", WS, "--serial", "99999", "--json"],
        ["state", "versions", "a/../b", "--json"],
        ["lock", "unlock", WS, "--max-age", "5m", "--json"],
    ):
        result = server.invoke(*argv)
        assert result.exit_code == 1, argv
        body = json.loads(result.stdout)
        assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), argv
        assert result.stderr.startswith("Error: ")
    refused = server.invoke("state", "restore", WS, "--serial", "1", "--json", token=server.reader)
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["error"]["code"] == "forbidden"


def _all_times(data: Any, key: str = "") -> list[tuple[str, str]]:
    """Every (key, value) under a key ending in ``_at`` or named ``at``."""
    found: list[tuple[str, str]] = []
    if isinstance(data, dict):
        for k, v in data.items():
            found += _all_times(v, k)
    elif isinstance(data, list):
        for v in data:
            found += _all_times(v, key)
    elif isinstance(data, str) and (key == "at" or key.endswith("_at")):
        found.append((key, data))
    return found


def test_one_timestamp_format_and_tables_with_their_zone(server: Server, stack: Stack) -> None:
    from driftsafe.client import Client

    with Client(server.url, server.writer) as client:
        client.post_drift(WS, {"status": "drift", "findings": []})
    _take_lock(server)
    try:
        outputs = {
            argv[0] + " " + argv[1]: json.loads(server.invoke(*argv, "--json").stdout)
            for argv in (
                ["state", "versions", WS],
                ["lock", "status", WS],
                ["audit", "--workspace", WS],
                ["drift", "history", WS],
            )
        }
        times = [(name, k, v) for name, out in outputs.items() for k, v in _all_times(out)]
        assert {name for name, _, _ in times} == set(outputs), times
        for name, key, value in times:
            assert RFC3339_MS.fullmatch(value), (name, key, value)

        table = server.invoke("state", "versions", WS).stdout.splitlines()
        assert TABLE_TIME.fullmatch(table[1].split()[1]), table[1]
        lock = server.invoke("lock", "status", WS).stdout
        fields = dict(line.strip().split(":", 1) for line in lock.splitlines()[1:])
        # Terraform's own Created (+02:00, nanoseconds) is shown in UTC too.
        assert fields["Created"].strip() == "2026-11-27T07:00:00Z"
        assert TABLE_TIME.fullmatch(fields["Acquired"].strip())
        audit = server.invoke("audit", "--workspace", WS, "-n", "1").stdout.splitlines()
        assert TABLE_TIME.fullmatch(audit[1].split()[0]), audit
        history = server.invoke("drift", "history", WS).stdout.splitlines()
        assert TABLE_TIME.fullmatch(history[0].split()[0]), history
    finally:
        assert server.invoke("lock", "unlock", WS).exit_code == 0


def test_a_fenced_write_is_explained_in_full(server: Server, stack: Stack) -> None:
    """Terraform prints only "HTTP error: 409"; the audit shows why, uncut."""
    lock_id = _take_lock(server)
    assert server.invoke("lock", "unlock", WS).exit_code == 0  # broken by an admin
    state = json.loads(server.invoke("state", "show", WS, "--raw").stdout)
    state["serial"] += 1
    write = httpx.post(
        f"{server.url}/v1/states/{WS}",
        params={"ID": lock_id},
        json=state,
        auth=("ci", server.writer),
        timeout=30,
    )
    assert write.status_code == 409, write.text
    reason = write.json()["error"]["message"]
    assert len(reason) > 80  # what the table used to cut

    last = server.invoke("audit", "--workspace", WS, "--last")
    assert last.exit_code == 0, last.stderr
    lines = dict(line.split(":", 1) for line in last.stdout.splitlines() if ":" in line[:11])
    assert lines["Action"].strip() == "write" and lines["Outcome"].strip() == "rejected"
    assert lines["Token"].strip() == "ci"
    assert lines["Reason"].strip() == reason
    assert lock_id in last.stdout
    as_json = json.loads(server.invoke("audit", "-w", WS, "--last", "--json").stdout)
    assert as_json["event"]["detail"]["reason"] == reason

    table = server.invoke("audit", "--workspace", WS, "-n", "5").stdout
    assert reason in table
