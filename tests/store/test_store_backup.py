"""``driftsafe store backup`` while a real server takes writes, restored into a new
database, verified, served; and ``store verify`` naming what is corrupt."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from history import History

from driftsafe.cli.main import cli
from driftsafe.server.serving import start_server
from driftsafe.settings import Settings
from driftsafe.state.model import parse_state
from driftsafe.store import Actor, backup_database, verify_database
from driftsafe.store.crypto import new_key_text
from driftsafe.store.database import normalize_url

WORKSPACES = ("app/staging", "app/prod")


class Writers:
    """Clients running Terraform's protocol cycle (LOCK, POST serial+1, UNLOCK) until
    stopped; every acknowledged body is kept by workspace and serial."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.acked: dict[str, dict[int, bytes]] = {ws: {} for ws in WORKSPACES}
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._run, args=(ws, i)) for i, ws in enumerate(WORKSPACES)
        ]

    def _run(self, ws: str, seed: int) -> None:
        history = History(resources=30, seed=seed, lineage=f"lineage-{seed}")
        try:
            with httpx.Client(base_url=self.url, auth=("t", self.token), timeout=60) as client:
                while not self.stop.is_set():
                    info = {"ID": str(uuid.uuid4()), "Who": ws, "Operation": "apply"}
                    client.request("LOCK", f"/v1/locks/{ws}", json=info).raise_for_status()
                    body = history.next()
                    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
                    client.post(
                        f"/v1/states/{ws}",
                        params={"ID": info["ID"]},
                        content=body,
                        headers={"Content-MD5": md5},
                    ).raise_for_status()
                    self.acked[ws][history.serial] = body
                    client.request("UNLOCK", f"/v1/locks/{ws}", json=info).raise_for_status()
        except BaseException as exc:  # reported by join()
            self.errors.append(exc)

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def wait_for(self, versions: int) -> None:
        for _ in range(600):
            if all(len(v) >= versions for v in self.acked.values()) or self.errors:
                return
            self.stop.wait(0.05)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)
        assert not self.errors, self.errors


@pytest.fixture
def restore_to(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[str, Path], str]]:
    """``restore(kind, backup)`` -> the URL of a new database holding the backup."""
    databases: list[tuple[str, str]] = []

    def restore(kind: str, backup: Path) -> str:
        if kind == "sqlite":
            target = tmp_path / "restored" / "driftsafe.db"
            target.parent.mkdir()
            shutil.copyfile(backup, target)
            return f"sqlite:///{target}"
        pg_url: str = request.getfixturevalue("pg_url")
        import psycopg

        name = f"restore_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        databases.append((pg_url, name))
        base = pg_url.rsplit("/", 1)[0] + f"/{name}"
        subprocess.run(
            ["pg_restore", "--no-owner", f"--dbname={base}", str(backup)],
            check=True,
            capture_output=True,
        )
        with psycopg.connect(base) as conn:
            schema = conn.execute(
                "SELECT table_schema FROM information_schema.tables "
                "WHERE table_name = 'ds_versions'"
            ).fetchone()
        assert schema is not None
        return f"{base}?options=-csearch_path%3D{schema[0]}"

    yield restore
    if databases:
        import psycopg

        for pg_url, name in databases:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _corrupt_version(url: str, ws: str, serial: int) -> None:
    pool = sa.create_engine(normalize_url(url))
    try:
        with pool.begin() as conn:
            row = conn.execute(
                sa.text("SELECT id, codec FROM ds_versions WHERE workspace = :ws AND serial = :s"),
                {"ws": ws, "s": serial},
            ).one()
            if row.codec == "keyframe":  # its content is the keyframe's: flip a byte there
                table, where = "ds_keyframes", "workspace = :ws AND serial = :s"
            else:
                table, where = "ds_versions", "id = :id"
            params = {"ws": ws, "s": serial, "id": row.id}
            body = conn.execute(sa.text(f"SELECT body FROM {table} WHERE {where}"), params).scalar()
            body = bytes(body)
            broken = body[:10] + bytes([body[10] ^ 0x40]) + body[11:]
            conn.execute(
                sa.text(f"UPDATE {table} SET body = :b WHERE {where}"), {**params, "b": broken}
            )
    finally:
        pool.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def test_backup_under_writes_restores_verifies_and_serves(
    kind: str,
    settings: Settings,
    tmp_path: Path,
    make_store_url: Callable[[str], str],
    restore_to: Callable[[str, Path], str],
) -> None:
    if kind == "pg" and shutil.which("pg_restore") is None:
        pytest.skip("the PostgreSQL client tools (pg_dump, pg_restore) are not installed")
    server_settings = settings.with_(encryption_key=new_key_text(), home=tmp_path / "home")
    url = make_store_url(kind)
    running = start_server(server_settings, db=url)
    backup = tmp_path / "backups" / "driftsafe.bak"
    try:
        token = running.store.create_token("writer", "write")[1]
        with Writers(running.url, token) as writers:
            writers.wait_for(5)
            before = {ws: dict(acked) for ws, acked in writers.acked.items()}
            result = backup_database(url, backup)  # while both clients keep writing
            writers.wait_for(max(len(v) for v in writers.acked.values()) + 3)
        after = writers.acked
    finally:
        running.stop()
    assert result.path == backup and result.bytes == backup.stat().st_size > 0
    assert not list(backup.parent.glob(".*partial"))  # no temp file left
    with pytest.raises(Exception, match="exists"):
        backup_database(url, backup)

    restored = restore_to(kind, backup)
    report = verify_database(server_settings, restored)
    assert report.ok, report.problems
    assert report.counts["versions"] >= sum(len(v) for v in before.values())
    assert report.counts["tokens"] == 1 and report.counts["audit_events"] > 0

    served = start_server(server_settings, db=restored)
    try:
        with httpx.Client(
            base_url=served.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as client:
            for ws in WORKSPACES:
                listed = client.get(f"/api/v1/workspaces/{ws}/versions").json()
                serials = sorted(v["serial"] for v in listed["versions"])
                # A snapshot: every version acknowledged before the backup, none lost,
                # and nothing but acknowledged versions.
                assert set(before[ws]) <= set(serials) <= set(after[ws])
                assert serials == list(range(1, len(serials) + 1))
                for serial in serials:
                    got = client.get(f"/api/v1/workspaces/{ws}/versions/{serial}")
                    got.raise_for_status()
                    assert got.json()["state"] == json.loads(after[ws][serial])
                    sha = hashlib.sha256(after[ws][serial]).hexdigest()
                    assert got.json()["version"]["sha256"] == sha
                latest = client.get(f"/v1/states/{ws}", auth=("t", token))
                assert latest.content == after[ws][max(serials)]
    finally:
        served.stop()

    _corrupt_version(restored, "app/prod", 3)
    env = {"DRIFTSAFE_ENCRYPTION_KEY": server_settings.encryption_key or ""}
    out = CliRunner().invoke(cli, ["store", "verify", "--db", restored, "--json"], env=env)
    assert out.exit_code == 2, out.output
    problems = json.loads(out.output)["problems"]
    names = {p["name"] for p in problems}
    # The corrupt version is named (and its keyframe, when the byte was the keyframe's,
    # with every version stored against it).
    assert "app/prod@3" in names, problems
    assert all(n.startswith("app/prod@") for n in names)
    text = CliRunner().invoke(cli, ["store", "verify", "--db", restored], env=env)
    assert text.exit_code == 2 and "app/prod@" in text.output


def test_verify_clean_store_and_errors(tmp_path: Path, settings: Settings) -> None:
    key = new_key_text()
    url = f"sqlite:///{tmp_path / 'ds.db'}"
    env = {"DRIFTSAFE_ENCRYPTION_KEY": key}
    running = start_server(settings.with_(encryption_key=key, home=tmp_path), db=url)
    try:
        running.store.create_token("t", "admin")
        history = History()
        for _ in range(6):
            data = history.next()
            running.store.write_state(
                "ws", data, parse_state(data), Actor("t"), lock_id=None, findings=[]
            )
    finally:
        running.stop()
    ok = CliRunner().invoke(cli, ["store", "verify", "--db", url, "--json"], env=env)
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.output)
    assert data["ok"] and data["counts"]["versions"] == 6 and data["problems"] == []
    wrong_key = CliRunner().invoke(
        cli, ["store", "verify", "--db", url], env={"DRIFTSAFE_ENCRYPTION_KEY": new_key_text()}
    )
    assert wrong_key.exit_code == 1 and "key" in wrong_key.output
    missing = CliRunner().invoke(
        cli, ["store", "backup", str(tmp_path / "b.db"), "--db", f"sqlite:///{tmp_path}/no.db"]
    )
    assert missing.exit_code == 1 and "no store" in missing.output
    backed = CliRunner().invoke(
        cli, ["store", "backup", str(tmp_path / "b.db"), "--db", url, "--json"], env=env
    )
    assert backed.exit_code == 0, backed.output
    assert json.loads(backed.output)["database"] == "sqlite"
