"""``driftsafe serve``, ``token`` and ``rotate-key`` as a user runs them, and two server
processes sharing one PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from srvhelpers import ServeProcess

from driftsafe.cli.main import cli
from driftsafe.store.crypto import new_key_text


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def make_token(db: str, name: str, scope: str, env: dict[str, str]) -> str:
    result = invoke(
        "token", "create", name, "--scope", scope, "--workspace", "*", "--db", db, "--json", env=env
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"name", "token", "scope", "workspace", "expires_at"}
    return str(data["token"])


def test_serve_prints_one_listening_line_and_announces_key(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/data/ds.db"
    server = ServeProcess(["--db", db, "--port", "0"], {"DRIFTSAFE_HOME": str(tmp_path)})
    try:
        assert sum("listening on" in line for line in server.lines) == 1
        assert server.url.startswith("http://127.0.0.1:") and not server.url.endswith(":0")
        assert any("created encryption key file" in line for line in server.lines)
        assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"
        assert httpx.get(f"{server.url}/v1/states/x").status_code == 401
    finally:
        assert server.stop() == 0
    assert (tmp_path / "data" / "driftsafe.key").exists()


def test_serve_refuses_insecure_no_auth_off_loopback(tmp_path: Path) -> None:
    result = invoke(
        "serve", "--db", f"sqlite:///{tmp_path}/x.db", "--host", "0.0.0.0", "--insecure-no-auth"
    )
    assert result.exit_code == 1
    assert "loopback" in result.output
    assert "Traceback" not in result.output
    half = invoke("serve", "--tls-cert", str(tmp_path / "c.pem"))
    assert half.exit_code == 1 and "go together" in half.output


def test_token_commands(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/t.db"
    env = {"DRIFTSAFE_HOME": str(tmp_path)}
    make_token(db, "ci", "write", env)
    listed = invoke("token", "list", "--db", db, "--json", env=env)
    assert json.loads(listed.stdout)["tokens"][0]["name"] == "ci"
    assert "dst_" not in listed.stdout
    assert invoke("token", "revoke", "ci", "--db", db, env=env).exit_code == 0
    again = invoke("token", "revoke", "nope", "--db", db, env=env)
    assert again.exit_code == 1 and "no token named" in again.output
    dup = invoke("token", "create", "viewer", "--db", db, env=env)
    assert dup.exit_code == 0, dup.output
    dup = invoke("token", "create", "viewer", "--db", db, env=env)
    assert dup.exit_code == 1 and "already exists" in dup.output
    for command in (["token"], ["token", "create"], ["serve"], ["rotate-key"]):
        assert "Example:" in invoke(*command, "--help").output


def test_rotate_key_command(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/r.db"
    env = {"DRIFTSAFE_HOME": str(tmp_path)}
    make_token(db, "a", "admin", env)
    result = invoke("rotate-key", "--db", db, "--json", env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["key_file"] == str(tmp_path / "driftsafe.key")
    assert (tmp_path / "driftsafe.key.old").exists()
    assert invoke("token", "list", "--db", db, env=env).exit_code == 0
    refused = invoke(
        "rotate-key", "--db", db, env={**env, "DRIFTSAFE_ENCRYPTION_KEY": new_key_text()}
    )
    assert refused.exit_code == 1 and "--new-key-file" in refused.output


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_serve_with_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server = ServeProcess(
        [
            "--db",
            f"sqlite:///{tmp_path}/tls.db",
            "--port",
            "0",
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
        ],
        {"DRIFTSAFE_HOME": str(tmp_path)},
    )
    try:
        assert server.url.startswith("https://")
        import ssl

        context = ssl.create_default_context(cafile=str(cert))
        assert httpx.get(f"{server.url}/healthz", verify=context).status_code == 200
        with pytest.raises(httpx.TransportError):
            httpx.get(server.url.replace("https", "http") + "/healthz").raise_for_status()
    finally:
        server.stop()


@pytest.mark.pg
@pytest.mark.slow
def test_two_server_processes_share_locks_queue_and_fencing(
    make_store_url,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    db = make_store_url("pg")
    env = {"DRIFTSAFE_HOME": str(tmp_path), "DRIFTSAFE_ENCRYPTION_KEY": new_key_text()}
    admin = make_token(db, "admin", "admin", env)
    writer = make_token(db, "writer", "write", env)
    one = ServeProcess(["--db", db, "--port", "0"], env)
    two = ServeProcess(["--db", db, "--port", "0"], env)
    a = httpx.Client(base_url=one.url, auth=("tf", writer), timeout=30)
    b = httpx.Client(base_url=two.url, auth=("tf", writer), timeout=30)
    try:
        lock = {"ID": "on-one", "Who": "a@one", "Operation": "OperationTypeApply"}
        assert a.request("LOCK", "/v1/locks/shared", json=lock).status_code == 200
        held = b.request("LOCK", "/v1/locks/shared", json={"ID": "x", "Who": "b"})
        assert held.status_code == 423 and held.json()["Who"] == "a@one"
        got: dict[str, float] = {}

        def waiter() -> None:
            r = b.request(
                "LOCK",
                "/v1/locks/shared",
                params={"wait": "20s"},
                json={"ID": "on-two", "Who": "b@two"},
            )
            got["status"] = r.status_code
            got["at"] = time.monotonic()

        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(1.0)
        released = time.monotonic()
        assert a.request("UNLOCK", "/v1/locks/shared", json=lock).status_code == 200
        thread.join(30)
        assert got["status"] == 200
        assert got["at"] - released < 0.5  # NOTIFY from process one woke process two
        # Fencing across processes: an admin on one breaks two's lock; two's ID is dead.
        with httpx.Client(base_url=one.url, headers={"Authorization": f"Bearer {admin}"}) as c:
            assert c.delete("/api/v1/workspaces/shared/lock").status_code == 200
        state = {"version": 4, "serial": 1, "lineage": "L", "resources": [], "outputs": {}}
        fenced = b.post("/v1/states/shared", params={"ID": "on-two"}, json=state)
        assert fenced.status_code == 409
        # Concurrent lock/write/unlock cycles through both servers: no serial lost.
        errors: list[str] = []

        def cycles(client: httpx.Client, name: str) -> None:
            for i in range(6):
                info = {"ID": f"{name}-{i}", "Who": name}
                r = client.request("LOCK", "/v1/locks/shared", params={"wait": "30s"}, json=info)
                if r.status_code != 200:
                    errors.append(f"lock {r.status_code}")
                    continue
                current = client.get("/v1/states/shared")
                serial = current.json()["serial"] + 1 if current.status_code == 200 else 1
                body = {**state, "serial": serial}
                w = client.post("/v1/states/shared", params={"ID": info["ID"]}, json=body)
                if w.status_code != 200:
                    errors.append(f"write {w.status_code} {w.text}")
                client.request("UNLOCK", "/v1/locks/shared", json=info)

        threads = [
            threading.Thread(target=cycles, args=(client, f"{client is a}-{n}"))
            for client in (a, b)
            for n in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with httpx.Client(base_url=two.url, headers={"Authorization": f"Bearer {admin}"}) as c:
            serials = [
                v["serial"] for v in c.get("/api/v1/workspaces/shared/versions").json()["versions"]
            ]
        assert serials == list(range(24, 0, -1))
    finally:
        a.close()
        b.close()
        one.stop()
        two.stop()


@pytest.mark.pg
@pytest.mark.slow
def test_terraform_through_two_servers_on_one_postgres(
    make_store_url,
    engine,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """Two Terraform runs, each talking to a different server process: the lock
    still clashes with the holder named, and a ?wait= run on the other server gets
    the lock as soon as the first releases it."""
    from srvhelpers import APPLY_ARGS, Tf, tf_root

    db = make_store_url("pg")
    env = {"DRIFTSAFE_HOME": str(tmp_path), "DRIFTSAFE_ENCRYPTION_KEY": new_key_text()}
    writer = make_token(db, "writer", "write", env)
    one = ServeProcess(["--db", db, "--port", "0"], env)
    two = ServeProcess(["--db", db, "--port", "0"], env)
    try:
        holder = Tf(engine, tf_root(tmp_path / "holder", one.url, "both"), writer)
        loser = Tf(engine, tf_root(tmp_path / "loser", two.url, "both"), writer)
        waiter = Tf(engine, tf_root(tmp_path / "waiter", two.url, "both", wait="60s"), writer)
        for tf in (holder, loser, waiter):
            tf.ok("init", "-input=false", "-no-color")
        proc = holder.start(*APPLY_ARGS, "-var", "sleep=3", "-var", "tag=one")
        assert proc.wait_for_output(r"Provisioning with .local-exec.", 60)
        lost = loser.run(*APPLY_ARGS, "-var", "tag=loser")
        assert lost.returncode == 1
        assert "Error acquiring the state lock" in lost.stderr and "Who:" in lost.stderr
        waited = waiter.run(*APPLY_ARGS, "-var", "tag=two")
        assert proc.wait(60).returncode == 0
        assert waited.returncode == 0, waited.stderr
        with httpx.Client(base_url=one.url, auth=("tf", writer)) as c:
            final = c.get("/v1/states/both").json()
        assert final["outputs"]["tag"]["value"] == "two"
    finally:
        one.stop()
        two.stop()
