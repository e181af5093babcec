"""DELETE /api/v1/workspaces/{ws}: a scratch workspace removed with every version
(admin only, refused while locked, audited)."""

from __future__ import annotations

import pytest
from srvhelpers import AppSrv
from test_server_api import Backend, state


@pytest.mark.anyio
async def test_delete_workspace_needs_admin_and_no_lock(app_srv: AppSrv) -> None:
    be = Backend(app_srv, app_srv.writer, "scratch/one")
    for serial in (1, 2, 3):
        assert (await be.post(state(serial))).status_code == 200
    assert (await Backend(app_srv, app_srv.writer, "keep").post(state(1))).status_code == 200
    writer, admin = app_srv.client(app_srv.writer), app_srv.client(app_srv.admin)
    assert (await writer.delete("/api/v1/workspaces/scratch/one")).status_code == 403
    assert (await be.lock("HELD")).status_code == 200
    refused = await admin.delete("/api/v1/workspaces/scratch/one")
    assert refused.status_code == 409 and "locked" in refused.json()["error"]["message"]
    assert (await be.unlock("HELD")).status_code == 200
    done = await admin.delete("/api/v1/workspaces/scratch/one")
    assert done.json() == {"workspace": "scratch/one", "deleted_versions": 3}
    assert app_srv.store.list_versions("scratch/one") == []
    assert (await be.get()).status_code == 204
    names = [w["name"] for w in (await admin.get("/api/v1/workspaces")).json()["workspaces"]]
    assert names == ["keep"]
    assert (await admin.delete("/api/v1/workspaces/scratch/one")).status_code == 404
    events = app_srv.store.audit_events("scratch/one")
    deletes = [(e.action, e.outcome) for e in events if e.action == "delete-workspace"]
    assert deletes == [("delete-workspace", "ok"), ("delete-workspace", "rejected")]
    # The lock route still answers under the same prefix.
    assert (await admin.delete("/api/v1/workspaces/keep/lock")).status_code in (404, 409)
