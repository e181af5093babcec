from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from clientenv import PASSWORD, WS, Server, Stack

from driftsafe.client import Client
from driftsafe.errors import AuthError, Forbidden, NotFound
from driftsafe.state.paths import iter_instances

# One server and stack per module, on one xdist worker.
pytestmark = pytest.mark.xdist_group("cli_client_state")


def _versions(server: Server) -> list[dict[str, Any]]:
    result = server.invoke("state", "versions", WS, "--json")
    assert result.exit_code == 0, result.stderr
    listed: list[dict[str, Any]] = json.loads(result.stdout)["versions"]
    return listed


def _state_of(server: Server, serial: int) -> dict[str, Any]:
    result = server.invoke("state", "show", WS, "--serial", str(serial), "--raw")
    assert result.exit_code == 0, result.stderr
    state: dict[str, Any] = json.loads(result.stdout)
    return state


def _addresses(state: dict[str, Any]) -> list[str]:
    return sorted(address for address, _ in iter_instances(state))


def _serial_with(server: Server, connections: int) -> int:
    """The newest serial whose cfg instance has ``connections``."""
    for v in _versions(server):
        state = _state_of(server, v["serial"])
        for res in state["resources"]:
            if res["name"] == "cfg":
                value = res["instances"][0]["attributes"]["input"]["value"]
                if value["max_connections"] == connections:
                    return int(v["serial"])
    raise AssertionError(f"no version with {connections} connections")


def test_versions_lists_real_terraform_writes(server: Server, stack: Stack) -> None:
    listed = _versions(server)
    serials = [v["serial"] for v in listed]
    assert len(serials) >= 2
    assert serials == sorted(serials, reverse=True)
    assert len(set(serials)) == len(serials)
    assert {v["writer"]["token"] for v in listed} == {"ci"}
    human = server.invoke("state", "versions", WS)
    assert human.exit_code == 0
    header, first, *_ = human.stdout.splitlines()
    assert header.split()[:3] == ["SERIAL", "CREATED", "WRITER"]
    assert first.split()[0] == str(serials[0])
    assert "ci (" in first


def test_show_latest_and_by_serial(server: Server, stack: Stack) -> None:
    latest = _versions(server)[0]
    shown = server.invoke("state", "show", WS)
    assert shown.exit_code == 0, shown.stderr
    assert f"Serial:        {latest['serial']}" in shown.stdout
    assert "Writer:        ci (" in shown.stdout
    assert "  terraform_data.cfg\n" in shown.stdout
    assert "  terraform_data.extra[0]\n" in shown.stdout
    as_json = json.loads(server.invoke("state", "show", WS, "--json").stdout)
    assert as_json["version"]["serial"] == latest["serial"]
    assert as_json["state"]["serial"] == latest["serial"]
    old = _serial_with(server, 100)
    assert _addresses(_state_of(server, old)) == ["terraform_data.cfg"]


def test_diff_is_resource_level_and_redacts(server: Server, stack: Stack) -> None:
    old, new = _serial_with(server, 100), _serial_with(server, 200)
    result = server.invoke("state", "diff", WS, str(old), str(new), "--json")
    assert result.exit_code == 2, result.stderr
    diff = json.loads(result.stdout)
    assert diff["added"] == ["terraform_data.extra[0]"]
    assert diff["removed"] == []
    # By meaning: terraform_data's {"value", "type"} wrapper is not part of the path.
    assert "input.max_connections" in diff["changed"]["terraform_data.cfg"]
    assert not any("type" in p for p in diff["changed"]["terraform_data.cfg"])
    assert diff["replaced"] == [] and diff["summary"]["updated"] == 1
    assert PASSWORD not in result.stdout

    human = server.invoke("state", "diff", WS, str(old), str(new))
    assert human.exit_code == 2
    assert "  + terraform_data.extra[0]" in human.stdout
    assert "  ~ terraform_data.cfg" in human.stdout
    assert "1 added, 0 removed, 1 changed, 0 replaced." in human.stdout
    values = server.invoke("state", "diff", WS, str(old), str(new), "--values")
    assert values.exit_code == 2
    assert "      input.max_connections: 100 -> 200" in values.stdout
    assert PASSWORD not in values.stdout

    backwards = json.loads(server.invoke("state", "diff", WS, str(new), str(old), "--json").stdout)
    assert backwards["removed"] == diff["added"]

    same = server.invoke("state", "diff", WS, str(new), str(new))
    assert same.exit_code == 0
    assert "hold the same resources" in same.stdout


def test_diff_of_two_state_files(server: Server, stack: Stack, tmp_path: Path) -> None:
    # Two saved states (such as two S3 object versions): the same diff, no server.
    old, new = _serial_with(server, 100), _serial_with(server, 200)
    a, b = tmp_path / "a.tfstate", tmp_path / "b.tfstate"
    a.write_text(json.dumps(_state_of(server, old)))
    b.write_text(json.dumps(_state_of(server, new)))
    result = server.invoke("state", "diff", str(a), str(b), "--json")
    assert result.exit_code == 2, result.stderr
    from_files = json.loads(result.stdout)
    from_server = json.loads(
        server.invoke("state", "diff", WS, str(old), str(new), "--json").stdout
    )
    assert from_files == from_server
    human = server.invoke("state", "diff", str(a), str(b))
    assert f"{a} -> {b}" in human.stdout and "  + terraform_data.extra[0]" in human.stdout
    assert PASSWORD not in human.stdout
    assert server.invoke("state", "diff", str(b), str(b)).exit_code == 0
    bad = tmp_path / "bad.tfstate"
    bad.write_text("{}")
    refused = server.invoke("state", "diff", str(a), str(bad))
    assert refused.exit_code == 1 and "bad.tfstate" in refused.stderr
    assert server.invoke("state", "diff", WS, "three").exit_code == 1


def test_restore_needs_admin_and_writes_a_new_version(server: Server, stack: Stack) -> None:
    old = _serial_with(server, 100)
    latest = _versions(server)[0]["serial"]
    denied = server.invoke("state", "restore", WS, "--serial", str(old), token=server.reader)
    assert denied.exit_code == 1
    assert denied.stderr.startswith("Error: ")
    assert _versions(server)[0]["serial"] == latest

    done = server.invoke("state", "restore", WS, "--serial", str(old), "--json")
    assert done.exit_code == 0, done.stderr
    version = json.loads(done.stdout)["version"]
    assert version["serial"] == latest + 1
    assert version["restored_from"] == old
    restored, original = _state_of(server, latest + 1), _state_of(server, old)
    assert restored["resources"] == original["resources"]
    diff = server.invoke("state", "diff", WS, str(old), str(latest + 1), "--json")
    assert diff.exit_code == 0 and json.loads(diff.stdout)["added"] == []

    # Terraform carries on from the restored version: apply re-creates the extra resource.
    stack.apply(200)
    assert _versions(server)[0]["serial"] > latest + 1
    newest = _state_of(server, _versions(server)[0]["serial"])
    assert _addresses(newest) == ["terraform_data.cfg", "terraform_data.extra[0]"]


def test_errors_are_one_line_never_a_traceback(server: Server, stack: Stack) -> None:
    missing = server.invoke("state", "versions", "cli/nope")
    assert (missing.exit_code, missing.stdout) == (1, "")
    assert "'cli/nope' does not exist" in missing.stderr
    empty_diff = server.invoke("state", "diff", "cli/nope", "1")
    assert empty_diff.exit_code == 1 and "'cli/nope' does not exist" in empty_diff.stderr
    gone = server.invoke("state", "show", WS, "--serial", "99999")
    assert gone.exit_code == 1 and gone.stderr.startswith("Error: ")
    bad = server.invoke("state", "versions", WS, token="not-a-token")
    assert bad.exit_code == 1
    assert "DRIFTSAFE_TOKEN" in bad.stderr
    other = server.invoke("state", "versions", WS, token=server.stranger)
    assert other.exit_code == 1 and other.stderr.startswith("Error: ")
    invalid = server.invoke("state", "versions", "a/../b")
    assert invalid.exit_code == 1 and "invalid workspace name" in invalid.stderr


def test_client_maps_server_errors_to_classes(server: Server, stack: Stack) -> None:
    with Client(server.url, server.reader) as client:
        assert client.versions(WS)
        with pytest.raises(NotFound):
            client.version(WS, 99999)
        with pytest.raises(Forbidden):
            client.restore(WS, 1)
    with Client(server.url, "wrong") as client, pytest.raises(AuthError):
        client.versions(WS)
    with Client(server.url, server.stranger) as client, pytest.raises(Forbidden):
        client.versions(WS)


def test_unreachable_server() -> None:
    from click.testing import CliRunner

    from driftsafe.cli.main import cli

    env = {"DRIFTSAFE_SERVER": "http://127.0.0.1:9", "DRIFTSAFE_TOKEN": "x"}
    for args in (["state", "versions", WS], ["lock", "status", WS], ["audit"]):
        result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
        assert result.exit_code == 1
        assert "cannot reach driftsafe server at http://127.0.0.1:9" in result.stderr
    no_server = CliRunner().invoke(cli, ["state", "versions", WS], catch_exceptions=False)
    assert no_server.exit_code == 1 and "DRIFTSAFE_SERVER" in no_server.stderr
