"""``driftsafe token ...`` on a real SQLite store, as an operator runs it."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from driftsafe.cli.main import cli
from driftsafe.settings import Settings
from driftsafe.store import open_store


def run(home: Path, *argv: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        cli, list(argv), env={"DRIFTSAFE_HOME": str(home), **(env or {})}, catch_exceptions=False
    )


@pytest.mark.parametrize("scope", ["write", "admin"])
def test_write_and_admin_tokens_must_name_their_workspaces(tmp_path: Path, scope: str) -> None:
    refused = run(tmp_path, "token", "create", "ci", "--scope", scope)
    assert refused.exit_code == 1
    assert "needs --workspace" in refused.stderr and "--workspace '*'" in refused.stderr
    assert not (tmp_path / "driftsafe.db").exists()  # refused before anything is made
    every = run(tmp_path, "token", "create", "ci", "--scope", scope, "--workspace", "*", "--json")
    assert every.exit_code == 0, every.output
    assert json.loads(every.stdout)["workspace"] == "*"


def test_read_tokens_default_to_every_workspace(tmp_path: Path) -> None:
    made = run(tmp_path, "token", "create", "viewer", "--json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["workspace"] == "*"


def test_create_rotate_revoke_reuse(tmp_path: Path) -> None:
    made = run(
        tmp_path, "token", "create", "ci", "--scope", "write", "--workspace", "myapp/*",
        "--expires", "30d", "--json",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    first = json.loads(made.stdout)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["expires_at"])

    rotated = run(tmp_path, "token", "rotate", "ci", "--grace", "1h", "--json")
    assert rotated.exit_code == 0, rotated.output
    second = json.loads(rotated.stdout)
    assert second["token"] != first["token"]
    assert (second["name"], second["scope"], second["workspace"]) == ("ci", "write", "myapp/*")
    assert second["old_secret_valid_for_seconds"] == 3600
    assert second["expires_at"] is not None  # the same 30-day lifetime, from now

    store = open_store(Settings.from_env({"DRIFTSAFE_HOME": str(tmp_path)}), create=False)
    try:
        old, new = store.authenticate(first["token"]), store.authenticate(second["token"])
        assert old is not None and new is not None  # both work during the grace
        assert new.allows("write", "myapp/a/b/c")  # `*` crosses `/`
    finally:
        store.close()

    human = run(tmp_path, "token", "rotate", "ci")
    assert human.exit_code == 0
    assert human.stdout.startswith("dst_") and "no longer works" in human.stderr

    assert run(tmp_path, "token", "revoke", "ci").exit_code == 0
    again = run(tmp_path, "token", "create", "ci", "--scope", "read", "--json")
    assert again.exit_code == 0, again.output  # a revoked name is free again
    gone = run(tmp_path, "token", "rotate", "nope")
    assert gone.exit_code == 1 and "no token named 'nope'" in gone.stderr


def test_list_has_a_header_status_expiry_and_last_use(tmp_path: Path) -> None:
    run(tmp_path, "token", "create", "ci", "--scope", "write", "--workspace", "lab/*")
    run(tmp_path, "token", "create", "old", "--expires", "1h")
    run(tmp_path, "token", "create", "gone")
    run(tmp_path, "token", "revoke", "gone")
    listed = run(tmp_path, "token", "list")
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.stdout.splitlines()
    assert header.split() == [
        "NAME", "SCOPE", "WORKSPACES", "STATUS", "CREATED", "EXPIRES", "LAST", "USED",
    ]  # fmt: skip
    by_name = {row.split()[0]: row.split() for row in rows}
    assert set(by_name) == {"ci", "old"}  # revoked ones only with --all
    assert by_name["ci"][3] == "active" and by_name["ci"][-2:] == ["never", "never"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", by_name["old"][5])
    everything = run(tmp_path, "token", "list", "--all")
    assert "revoked 20" in everything.stdout
    as_json = json.loads(run(tmp_path, "token", "list", "--all", "--json").stdout)["tokens"]
    assert {t["name"]: t["status"] for t in as_json} == {
        "ci": "active",
        "old": "active",
        "gone": "revoked",
    }
    assert all("last_used_at" in t and "expires_at" in t for t in as_json)


def test_read_only_token_commands_create_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for argv in (["token", "list"], ["token", "revoke", "ci"], ["token", "rotate", "ci"]):
        result = run(home, *argv)
        assert result.exit_code == 1
        assert "no driftsafe store at" in result.stderr
    assert not home.exists()


def test_store_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        made = run(tmp_path, "token", "create", "viewer")
        assert made.exit_code == 0, made.output
        # A server writes: the WAL and its index appear, with the database's mode.
        store = open_store(Settings.from_env({"DRIFTSAFE_HOME": str(tmp_path)}))
        try:
            store.create_token("other", "read")
            files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
        finally:
            store.close()
    finally:
        os.umask(old)
    assert {"driftsafe.db", "driftsafe.db-wal", "driftsafe.key"} <= set(files)
    for name, mode in files.items():
        if name.startswith("driftsafe."):
            assert mode == 0o600, f"{name} is {oct(mode)}"


def test_both_key_settings_are_an_error(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "token",
        "list",
        env={
            "DRIFTSAFE_ENCRYPTION_KEY": "a" * 44,
            "DRIFTSAFE_ENCRYPTION_KEY_FILE": str(tmp_path / "key"),
        },
    )
    assert result.exit_code == 1
    assert "DRIFTSAFE_ENCRYPTION_KEY and DRIFTSAFE_ENCRYPTION_KEY_FILE are both set" in (
        result.stderr
    )
