"""Real Terraform against a real driftsafe server (SQLite file and PostgreSQL)."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest
from srvhelpers import Srv, make_tf

from driftsafe.engine import Engine

APPLY = ("apply", "-auto-approve", "-input=false", "-no-color")


def versions(srv: Srv, ws: str) -> list[dict]:
    with srv.client(srv.reader) as c:
        return c.get(f"/api/v1/workspaces/{ws}/versions").json()["versions"]


def latest_state(srv: Srv, ws: str) -> dict:
    with srv.client(srv.reader) as c:
        serial = versions(srv, ws)[0]["serial"]
        return c.get(f"/api/v1/workspaces/{ws}/versions/{serial}").json()["state"]


def lock_of(srv: Srv, ws: str) -> dict | None:
    with srv.client(srv.reader) as c:
        return c.get(f"/api/v1/workspaces/{ws}/lock").json()["lock"]


def test_apply_noop_versions_and_remote_state(srv: Srv, engine: Engine, tmp_path: Path) -> None:
    tf = make_tf(engine, tmp_path / "a", srv, "team/app")
    tf.ok(*APPLY, "-var", "tag=one")
    again = tf.ok("plan", "-input=false", "-no-color", "-var", "tag=one")
    assert "No changes." in again.stdout
    tf.ok(*APPLY, "-var", "tag=two")
    found = versions(srv, "team/app")
    serials = [v["serial"] for v in found]
    assert serials == sorted(serials, reverse=True) and len(serials) >= 2
    assert found[0]["writer"]["token"] == "writer"
    assert found[0]["writer"]["who"] and found[0]["lock_id"]
    assert found[0]["resources"] == 1
    assert latest_state(srv, "team/app")["outputs"]["tag"]["value"] == "two"

    reader_root = tmp_path / "reader"
    reader_root.mkdir()
    (reader_root / "main.tf").write_text(
        f"""
data "terraform_remote_state" "app" {{
  backend = "http"
  config = {{
    address  = "{srv.url}/v1/states/team/app"
    username = "driftsafe"
    password = "{srv.reader}"
  }}
}}
output "seen" {{
  value = data.terraform_remote_state.app.outputs.tag
}}
"""
    )
    assert engine.run(["init", "-no-color"], cwd=reader_root).returncode == 0
    applied = engine.run([*APPLY], cwd=reader_root)
    assert applied.returncode == 0, applied.stderr
    assert 'seen = "two"' in applied.stdout


def test_overlapping_applies_and_lock_timeout(srv: Srv, engine: Engine, tmp_path: Path) -> None:
    holder = make_tf(engine, tmp_path / "holder", srv, "ov")
    loser = make_tf(engine, tmp_path / "loser", srv, "ov")
    waiter = make_tf(engine, tmp_path / "waiter", srv, "ov")
    proc = holder.start(*APPLY, "-var", "sleep=4", "-var", "tag=holder")
    assert proc.wait_for_output(r"Provisioning with .local-exec.", 60), proc.wait(5).stderr
    held = lock_of(srv, "ov")
    assert held is not None and held["operation"] == "OperationTypeApply"

    lost = loser.run(*APPLY, "-var", "tag=loser")
    assert lost.returncode == 1
    assert "Error acquiring the state lock" in lost.stderr
    assert f"Who:       {held['who']}" in lost.stderr
    assert "Operation: OperationTypeApply" in lost.stderr
    assert held["id"] in lost.stderr
    assert not (tmp_path / "loser" / "errored.tfstate").exists()

    waited = waiter.run(*APPLY, "-lock-timeout=60s", "-var", "tag=waiter")
    holder_result = proc.wait(120)
    assert holder_result.returncode == 0, holder_result.stderr
    assert waited.returncode == 0, waited.stderr
    assert latest_state(srv, "ov")["outputs"]["tag"]["value"] == "waiter"
    serials = [v["serial"] for v in versions(srv, "ov")]
    assert serials == sorted(set(serials), reverse=True)


@pytest.mark.slow
def test_sigkilled_apply_leaves_lock_only_admin_force_unlocks(
    srv: Srv, engine: Engine, tmp_path: Path
) -> None:
    tf = make_tf(engine, tmp_path / "crash", srv, "crash")
    tf.ok(*APPLY, "-var", "tag=base")
    proc = tf.start(*APPLY, "-var", "sleep=60", "-var", "tag=crash")
    assert proc.wait_for_output(r"Provisioning with .local-exec.", 60), proc.wait(5).stderr
    proc.kill()
    proc.wait(30)
    stale = lock_of(srv, "crash")
    assert stale is not None
    refused = tf.run("force-unlock", "-force", "-no-color", stale["id"])
    assert refused.returncode == 1
    assert "403" in refused.stderr or "admin" in refused.stderr
    assert lock_of(srv, "crash") is not None

    admin = make_tf(engine, tmp_path / "crash", srv, "crash", token=srv.admin, init=False)
    unlocked = admin.ok("force-unlock", "-force", "-no-color", stale["id"])
    assert "successfully unlocked" in unlocked.stdout
    assert lock_of(srv, "crash") is None
    with srv.client(srv.admin) as c:
        events = c.get("/api/v1/audit", params={"workspace": "crash"}).json()["events"]
    outcomes = [(e["action"], e["outcome"], e["token"]) for e in events]
    assert ("force-unlock", "ok", "admin") in outcomes
    assert ("force-unlock", "forbidden", "writer") in outcomes
    replan = tf.run("plan", "-input=false", "-no-color", "-detailed-exitcode", "-var", "tag=crash")
    assert replan.returncode == 2  # the crashed change is still to do, from the kept state


@pytest.mark.slow
def test_stopped_holder_is_fenced_after_force_unlock(
    srv: Srv, engine: Engine, tmp_path: Path
) -> None:
    """The pg backend's lost update, shown impossible: a holder frozen past a
    force-unlock cannot overwrite the newer state when it wakes."""
    old = make_tf(engine, tmp_path / "old", srv, "fence")
    new = make_tf(engine, tmp_path / "new", srv, "fence")
    old.ok(*APPLY, "-var", "tag=base")
    proc = old.start(*APPLY, "-var", "sleep=2", "-var", "tag=stale")
    assert proc.wait_for_output(r"Provisioning with .local-exec.", 60), proc.wait(5).stderr
    stale_lock = lock_of(srv, "fence")
    assert stale_lock is not None
    proc.send_signal(signal.SIGSTOP)
    try:
        with srv.client(srv.admin) as c:
            assert c.delete("/api/v1/workspaces/fence/lock").status_code == 200
        new.ok(*APPLY, "-var", "tag=newer")
        newer_serial = versions(srv, "fence")[0]["serial"]
    finally:
        proc.send_signal(signal.SIGCONT)
    result = proc.wait(120)
    assert result.returncode == 1
    assert "409" in result.stderr
    errored = tmp_path / "old" / "errored.tfstate"
    assert errored.exists()
    assert json.loads(errored.read_text())["outputs"]["tag"]["value"] == "stale"
    assert versions(srv, "fence")[0]["serial"] == newer_serial
    assert latest_state(srv, "fence")["outputs"]["tag"]["value"] == "newer"
    with srv.client(srv.admin) as c:
        events = c.get("/api/v1/audit", params={"workspace": "fence"}).json()["events"]
    fenced = [e for e in events if e["action"] == "write" and e["outcome"] == "rejected"]
    assert fenced and fenced[0]["detail"]["lock_id"] == stale_lock["id"]


@pytest.mark.slow
def test_eight_concurrent_applies(srv: Srv, engine: Engine, tmp_path: Path) -> None:
    """Without waiting, losers fail cleanly; with ?wait= every apply gets its turn and
    no version is lost."""
    wait_body_url = srv.url  # lock_address with ?wait=: the server queues the LOCKs
    roots = []
    for i in range(8):
        tf = make_tf(engine, tmp_path / f"r{i}", srv, "eight", init=False)
        backend = (tf.cwd / "backend.tf").read_text()
        if i % 2 == 0:
            backend = backend.replace(
                f'lock_address   = "{wait_body_url}/v1/locks/eight"',
                f'lock_address   = "{wait_body_url}/v1/locks/eight?wait=120s"',
            )
        (tf.cwd / "backend.tf").write_text(backend)
        tf.ok("init", "-input=false", "-no-color")
        roots.append(tf)
    results: dict[int, object] = {}

    def run(i: int) -> None:
        results[i] = roots[i].run(*APPLY, "-var", f"tag=t{i}", "-var", "sleep=0")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, r in results.items() if r.returncode == 0]  # type: ignore[attr-defined]
    losers = [i for i in results if i not in winners]
    assert all(i in winners for i in range(0, 8, 2))  # every ?wait= apply got the lock
    for i in losers:
        assert i % 2 == 1
        assert "Error acquiring the state lock" in results[i].stderr  # type: ignore[attr-defined]
        assert not (roots[i].cwd / "errored.tfstate").exists()
    found = versions(srv, "eight")
    serials = [v["serial"] for v in found]
    assert serials == sorted(set(serials), reverse=True)
    # Each winner's apply is in the history under its own lock: none lost.
    lock_ids = {v["lock_id"] for v in found}
    assert len(lock_ids) == len(winners)
    with srv.client(srv.reader) as c:
        final = c.get("/v1/states/eight", auth=("x", srv.reader))
    assert final.status_code == 200


def test_handover_with_wait_is_fast(srv: Srv, engine: Engine, tmp_path: Path) -> None:
    tf = make_tf(engine, tmp_path / "w", srv, "handover", init=False)
    backend = (
        (tf.cwd / "backend.tf")
        .read_text()
        .replace(
            f'lock_address   = "{srv.url}/v1/locks/handover"',
            f'lock_address   = "{srv.url}/v1/locks/handover?wait=60s"',
        )
    )
    (tf.cwd / "backend.tf").write_text(backend)
    tf.ok("init", "-input=false", "-no-color")
    info = {"ID": "held-by-test", "Who": "test@here", "Operation": "OperationTypeApply"}
    with srv.client(srv.writer) as c:
        assert c.request("LOCK", "/v1/locks/handover", json=info).status_code == 200
        proc = tf.start(*APPLY, "-var", "tag=after")
        time.sleep(1.5)  # Terraform is now parked in the LOCK request
        assert proc.poll() is None
        released_at = time.time()
        assert c.request("UNLOCK", "/v1/locks/handover", json=info).status_code == 200
    result = proc.wait(60)
    assert result.returncode == 0, result.stderr
    lock = [
        e for e in srv.store.audit_events("handover") if e.action == "lock" and e.outcome == "ok"
    ][0]
    assert lock.at - released_at < 0.5
