"""The server's side of tokens and binds: an expired token is refused with a 401 that
says so (and audited), last use is recorded without a write per request, a refused
token is named in the request log, and plain HTTP off loopback needs consent."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from srvhelpers import AppSrv, lifespan

from driftsafe.errors import ConfigError
from driftsafe.server.app import create_app
from driftsafe.server.serving import check_bind, serve
from driftsafe.settings import Settings
from driftsafe.store import open_store


def _expire(app_srv: AppSrv, name: str) -> None:
    with app_srv.store.write_tx() as conn:
        conn.execute(
            sa.text("UPDATE ds_tokens SET expires_at = :t WHERE name = :n"),
            {"t": time.time() - 5, "n": name},
        )


@pytest.mark.anyio
async def test_an_expired_token_gets_a_401_that_says_so(app_srv: AppSrv) -> None:
    _, secret = app_srv.store.create_token("ci", "write", "lab/*", expires_in=3600)
    async with app_srv.client(secret) as api:
        assert (await api.get("/api/v1/workspaces/lab/x/versions")).status_code == 200
    _expire(app_srv, "ci")
    async with app_srv.client(secret) as api:
        refused = await api.get("/api/v1/workspaces/lab/x/versions")
    backend = await app_srv.client(basic=secret).get("/v1/states/lab/x")
    for answer in (refused, backend):
        assert answer.status_code == 401, answer.text
        message = answer.json()["error"]["message"]
        assert message.startswith("token 'ci' expired at 20") and "Z" in message
        assert "driftsafe token rotate ci" in message
    events = [e for e in app_srv.store.audit_events() if e.action == "auth"]
    assert len(events) == 2
    assert all(e.token == "ci" and e.outcome == "unauthenticated" for e in events)
    assert all("expired at" in e.detail["reason"] for e in events)


@pytest.mark.anyio
async def test_last_use_is_recorded_once_a_minute_not_per_request(app_srv: AppSrv) -> None:
    record, secret = app_srv.store.create_token("ci", "read")
    writes: list[str] = []
    touch = app_srv.store.touch_token

    def counting(token_id: str, now: float) -> bool:
        writes.append(token_id)
        return touch(token_id, now)

    app_srv.store.touch_token = counting  # type: ignore[method-assign]
    async with app_srv.client(secret) as api:
        for _ in range(5):
            assert (await api.get("/api/v1/workspaces")).status_code == 200
    backend = app_srv.client(basic=secret)
    for _ in range(5):
        assert (await backend.get("/v1/states/lab/x")).status_code == 204
    assert writes == [record.id]  # ten requests, both auth paths, one write
    (listed,) = [t for t in app_srv.store.list_tokens() if t.name == "ci"]
    assert listed.last_used_at is not None and time.time() - listed.last_used_at < 60


@pytest.mark.anyio
async def test_the_request_log_names_the_token_on_a_403(
    app_srv: AppSrv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="driftsafe.server")
    async with app_srv.client(app_srv.reader) as api:
        refused = await api.post("/api/v1/workspaces/lab/x/restore", json={"serial": 1})
    assert refused.status_code == 403
    backend = await app_srv.client(basic=app_srv.reader).request(
        "LOCK", "/v1/locks/lab/x", json={"ID": "x"}
    )
    assert backend.status_code == 403
    logged = [
        r.event  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage() == "request" and r.event["status"] == 403  # type: ignore[attr-defined]
    ]
    assert [e["token"] for e in logged] == ["reader", "reader"]
    audited = [e for e in app_srv.store.audit_events() if e.outcome == "forbidden"]
    assert [e.token for e in audited] == ["reader", "reader"]


def test_plain_http_off_loopback_needs_consent(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="clear text.*--allow-plain-http"):
        check_bind("0.0.0.0", insecure_no_auth=False, tls=None)
    with pytest.raises(ConfigError, match="clear text"):
        check_bind("2001:db8::1", insecure_no_auth=False, tls=None)
    assert check_bind("127.0.0.1", insecure_no_auth=False, tls=None) == []
    assert check_bind("::1", insecure_no_auth=False, tls=None) == []
    (warning,) = check_bind("0.0.0.0", insecure_no_auth=False, tls=None, allow_plain_http=True)
    assert "clear text" in warning
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    assert check_bind("0.0.0.0", insecure_no_auth=False, tls=(cert, key)) == []


def test_serve_warns_before_it_binds(server_settings: Settings, tmp_path: Path) -> None:
    """The warning comes at start, before the bind (192.0.2.1 is a documentation
    address no machine has: the bind then fails, so nothing listens off loopback)."""
    said: list[str] = []
    with pytest.raises(ConfigError, match="cannot listen"):
        serve(
            server_settings,
            db=f"sqlite:///{tmp_path / 'ds.db'}",
            host="192.0.2.1",
            port=0,
            allow_plain_http=True,
            announce=said.append,
        )
    assert any(line.startswith("WARNING: plain HTTP") for line in said), said


@pytest.mark.anyio
async def test_healthz_shows_the_warnings(server_settings: Settings, tmp_path: Path) -> None:
    import httpx

    store = open_store(server_settings, f"sqlite:///{tmp_path / 'ds.db'}")
    try:
        for warnings, expected in (([], None), (["plain HTTP on '0.0.0.0'"], 1)):
            app = create_app(server_settings, store, warnings=warnings)
            async with lifespan(app):
                transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                    health = (await c.get("/healthz")).json()
            assert health["status"] == "ok"
            assert len(health.get("warnings", [])) == (expected or 0)
    finally:
        store.close()


def test_clients_trust_a_self_signed_server_through_ssl_cert_file(tmp_path: Path) -> None:
    """What docs/settings.md tells users of a self-signed certificate."""
    from click.testing import CliRunner
    from srvhelpers import ServeProcess
    from test_server_cli import _self_signed

    from driftsafe.cli.main import cli

    cert, key = _self_signed(tmp_path)
    db = f"sqlite:///{tmp_path}/tls.db"
    env = {"DRIFTSAFE_HOME": str(tmp_path)}
    made = CliRunner().invoke(
        cli, ["token", "create", "r", "--db", db, "--json"], env=env, catch_exceptions=False
    )
    token = json.loads(made.stdout)["token"]
    server = ServeProcess(
        ["--db", db, "--port", "0", "--tls-cert", str(cert), "--tls-key", str(key)], env
    )
    try:
        argv = ["state", "versions", "lab/x", "--server", server.url, "--token", token]
        untrusted = CliRunner().invoke(cli, argv, env=env)
        assert untrusted.exit_code == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
        trusted = CliRunner().invoke(cli, argv, env={**env, "SSL_CERT_FILE": str(cert)})
        assert trusted.exit_code == 1 and "'lab/x' does not exist" in trusted.stderr
    finally:
        server.stop()


def test_serve_command_refuses_plain_http_off_loopback(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from driftsafe.cli.main import cli

    env = {"DRIFTSAFE_HOME": str(tmp_path)}
    db = f"sqlite:///{tmp_path}/x.db"
    refused = CliRunner().invoke(cli, ["serve", "--db", db, "--host", "0.0.0.0"], env=env)
    assert refused.exit_code == 1
    assert "clear text" in refused.stderr and "--allow-plain-http" in refused.stderr
    assert not (tmp_path / "x.db").exists()  # refused before anything is opened
    allowed = CliRunner().invoke(
        cli,
        ["serve", "--db", db, "--host", "192.0.2.1", "--port", "0", "--allow-plain-http"],
        env=env,
    )
    assert allowed.exit_code == 1 and "cannot listen" in allowed.stderr  # nobody has it
    assert "WARNING: plain HTTP on non-loopback address '192.0.2.1'" in allowed.stderr
