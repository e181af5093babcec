"""A 20-second fault-injection run on SQLite (servers killed, frozen, killed with
waiters; answers delayed, dropped, connections reset): zero violations. A backup taken
midway restores into a new database that verifies and serves."""

from __future__ import annotations

import shutil
from pathlib import Path

import faults
import httpx
import pytest

from driftsafe.server.serving import start_server
from driftsafe.settings import Settings
from driftsafe.store import verify_database
from driftsafe.store.crypto import new_key_text


@pytest.mark.slow
def test_a_fault_run_loses_nothing_and_its_midway_backup_restores_and_serves(
    tmp_path: Path, settings: Settings
) -> None:
    key = new_key_text()
    backup = tmp_path / "midway.db"
    result, final = faults.run_faults(
        store="sqlite", seconds=20, seed=20261201, backup=backup, workdir=tmp_path, key=key
    )
    assert result["violations"] == [], result
    assert result["acknowledged_writes"] > 50 and result["acknowledged_writes_lost"] == 0
    assert result["mutual_exclusion_violations"] == result["serial_regressions"] == 0
    # Every kind of fault happened, and some answers were lost and sent again.
    assert set(result["faults"]) == {
        "kill9",
        "sigstop",
        "kill_server_with_waiters",
        "proxy_delay",
        "proxy_drop_response",
        "proxy_reset",
    }
    assert all(count >= 1 for count in result["faults"].values()), result["faults"]
    assert result["retried_ops"] > 0
    assert result["verified_versions"] == result["versions_stored"] > 0

    # The midway backup, restored into a new database: it verifies, and it serves the
    # very versions the store held for those serials at the end.
    restored = tmp_path / "restored" / "ds.db"
    restored.parent.mkdir()
    shutil.copyfile(backup, restored)
    url = f"sqlite:///{restored}"
    restored_settings = settings.with_(encryption_key=key, home=tmp_path / "home")
    report = verify_database(restored_settings, url)
    assert report.problems == [] and 0 < report.counts["versions"] < result["versions_stored"]
    server = start_server(restored_settings, db=url)
    try:
        admin = server.store.create_token("restore-check", "admin")[1]
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {admin}"}, timeout=30
        ) as api:
            for ws, versions in final.versions.items():
                at_end = {v.serial: v.sha256 for v in versions}
                listed = api.get(f"/api/v1/workspaces/{ws}/versions").json()["versions"]
                assert listed, ws
                for version in listed:
                    assert at_end[version["serial"]] == version["sha256"]
                latest = api.get(f"/v1/states/{ws}", auth=("tf", admin))
                assert latest.status_code == 200
                assert latest.json()["serial"] == listed[0]["serial"]
    finally:
        server.stop()
