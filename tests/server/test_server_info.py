"""GET /api/v1/server reports the guarantees from the live configuration."""

from __future__ import annotations

import pytest
from srvhelpers import AppSrv


@pytest.mark.anyio
async def test_server_info_reflects_configuration(app_srv: AppSrv) -> None:
    async with app_srv.client(app_srv.reader) as c:
        body = (await c.get("/api/v1/server")).json()
    assert body["versioning"] == "every write"
    assert body["retention"] == "keep all versions"
    assert body["encryption"].startswith("AES-256-GCM")
    assert app_srv.store.cipher.key_id in body["encryption"]
    assert body["database"] in ("sqlite", "postgresql")
    assert "holder" in body["fencing"]


@pytest.mark.anyio
async def test_server_info_needs_a_token(app_srv: AppSrv) -> None:
    assert (await app_srv.client().get("/api/v1/server")).status_code == 401
