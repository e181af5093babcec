"""GET /api/v1/server reports the guarantees from the live configuration."""

from __future__ import annotations

import httpx
from srvhelpers import Srv


def test_server_info_reflects_configuration(srv: Srv) -> None:
    with srv.client(srv.reader) as c:
        body = c.get("/api/v1/server").json()
    assert body["versioning"] == "every write"
    assert body["retention"] == "keep all versions"
    assert body["encryption"].startswith("AES-256-GCM")
    assert srv.store.cipher.key_id in body["encryption"]
    assert body["database"] in ("sqlite", "postgresql")
    assert "holder" in body["fencing"]


def test_server_info_needs_a_token(srv: Srv) -> None:
    assert httpx.get(f"{srv.url}/api/v1/server").status_code == 401
