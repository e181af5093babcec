"""The drill's steps that read the backend, on S3 (see lab/drill/s3.py).

The evidence is the seed's: the backend config, GetBucketVersioning = Enabled, the
``.tflock`` object while an apply holds it, the object-version listing and a diff
between two object versions. What needs driftsafe's server is reproduced as a
backend limitation, never faked.
"""

from __future__ import annotations

import json
import signal
import time
from typing import TYPE_CHECKING, Any, cast

from driftsafe.backends import secret_verdict
from driftsafe.lab.drill.context import Drill, DrillError
from driftsafe.lab.drill.steps_crash import _pid_alive, recover, stale_writer
from driftsafe.lab.drill.steps_drift import CONFIG_ADDR
from driftsafe.lab.drill.steps_proof import (
    check_secret_not_stored,
    scanner_can_fail,
    secret_in_file,
)
from driftsafe.lab.drill.steps_state import settle, slow_apply, wait_with_lock_timeout
from driftsafe.lab.timeline import run_spans, timeline_svg

if TYPE_CHECKING:
    from driftsafe.lab.drill.s3 import S3Bucket

ROLLOUT = "module.app.lab_delay.rollout"


def _bucket(d: Drill) -> S3Bucket:
    # These steps are S3Bucket's own (its step_overrides); s3.py imports this module.
    assert d.backend.name == "s3"
    return cast("S3Bucket", d.backend)


def step_backend(d: Drill) -> None:
    s = "backend"  # begun by the set-up (moto, the bucket, lab init), part of its evidence
    b = _bucket(d)
    backend = (d.env_dir("staging") / "backend.tf").read_text()
    art = d.ev.artifact(
        s, "envs/staging/backend.tf (credentials come from the environment)", backend, kind="hcl"
    )
    client = b.s3(d).s3()
    versioning, t_ver = b.capture(
        d,
        s,
        "GetBucketVersioning: every write is kept as an object version",
        ["get-bucket-versioning", "--bucket", b.bucket],
        lambda: {
            k: v
            for k, v in client.get_bucket_versioning(Bucket=b.bucket).items()
            if k != "ResponseMetadata"
        },
    )
    encryption, t_enc = b.capture(
        d,
        s,
        "GetBucketEncryption: objects are encrypted at rest",
        ["get-bucket-encryption", "--bucket", b.bucket],
        lambda: client.get_bucket_encryption(Bucket=b.bucket)["ServerSideEncryptionConfiguration"],
    )
    secret = b.credentials.get("AWS_SECRET_ACCESS_KEY", "")
    d.ev.check(
        "backend-s3",
        s,
        'The stack\'s state lives in S3 (backend "s3" with use_lockfile = true), '
        "with no credential in the file",
        'backend "s3"' in backend
        and "use_lockfile                = true" in backend
        and b.bucket in backend
        and (not secret or secret not in backend),
        evidence=[art],
    )
    algos = [
        r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm")
        for r in (encryption or {}).get("Rules", [])
    ]
    d.ev.check(
        "backend-settings",
        s,
        "The bucket keeps every version (GetBucketVersioning = Enabled) and encrypts "
        "objects at rest (GetBucketEncryption)",
        (versioning or {}).get("Status") == "Enabled" and any(algos),
        evidence=[t_ver, t_enc],
        detail=f"versioning {(versioning or {}).get('Status')}; "
        f"encryption {', '.join(map(str, algos))}",
    )


def _went_on_at(result: Any, after: float) -> float | None:
    """When a waiting apply went on: its first line after it got the lock."""
    for line in result.lines:
        if line.t >= after and ("Refreshing state" in line.text or "Modifying" in line.text):
            return float(line.t)
    return None


def step_waiting(d: Drill) -> None:
    s = "waiting"
    d.ev.step(s, "Waiting instead of failing: -lock-timeout (S3 has no server-side wait)")
    held, waiter, _lock, t_h, t_w = wait_with_lock_timeout(d, s)
    # The holder releases the lock right after its last line ("Apply complete!"); its
    # result was collected only after the waiter finished.
    released = held.lines[-1].t if held.lines else held.ended_at
    went_on = _went_on_at(waiter, released - 0.5)
    delay = None if went_on is None else max(0.0, went_on - released)
    d.figures["handover"] = {"lock_timeout": delay, "server_wait": None}
    spans = run_spans("A (holder)", held)
    spans += run_spans("B -lock-timeout", waiter, acquired_at=went_on)
    clash = d.figures.get("clash")
    if clash:
        spans = (
            run_spans("clash: A", clash["holder"])
            + run_spans("clash: B", clash["loser"], kind="failed")
            + spans
        )
    svg = timeline_svg(spans, title="Who held the staging lock, and who waited (S3)")
    art = d.ev.artifact(s, "Lock timeline (from the captured runs)", svg, kind="svg")
    shown = "not measured" if delay is None else f"{delay:.1f} s"
    d.ev.limitation(
        "wait-server",
        s,
        "A waiting apply gets the lock as soon as it is released (driftsafe's server "
        "holds the LOCK request open: `?wait=`)",
        held.returncode == 0 and waiter.returncode == 0 and delay is not None,
        evidence=[t_h, t_w, art],
        detail=f"S3 has no server to wait on: the waiter polls (Terraform retries after "
        f"1, 2, 4, 8, then every 16 s) and went on {shown} after the holder finished; "
        "driftsafe's `?wait=` hands over in milliseconds",
    )
    d.ev.narrative(
        s,
        f"On S3 the only way to wait is Terraform's own `-lock-timeout` retry loop: the "
        f"waiting apply went on {shown} after the holder released the `.tflock` object. "
        "There is no server that could hold the request open and hand the lock over at "
        "once, as driftsafe's `?wait=` does.",
    )
    settle(d, s)


def step_crash(d: Drill) -> None:
    s = "crash"
    d.ev.step(s, "A crashed run: stale lock, recovery, and what S3 cannot fence")
    staging = str(d.env_dir("staging"))
    victim = slow_apply(d, s, 60, "crash", "the apply to crash")
    victim.send_signal(signal.SIGKILL)
    crashed = victim.wait(timeout=30)
    t_crash = d.ev.record(s, crashed, title="apply SIGKILLed mid-flight (in the slow resource)")
    time.sleep(1.2)
    st, t_st = d.ds(
        s,
        ["lock", "status", staging, "--max-age", "1s", "--json"],
        "driftsafe lock status envs/staging: the .tflock object left behind",
    )
    try:
        lock = json.loads(st.stdout).get("lock") or {}
    except ValueError:
        lock = {}
    alive = _pid_alive(victim.pid)
    d.ev.check(
        "crash-stale",
        s,
        "The killed apply left a lock that `lock status` shows stale, with its holder and age",
        crashed.signal == signal.SIGKILL
        and bool(lock.get("id"))
        and bool(lock.get("stale"))
        and not alive,
        evidence=[t_crash, t_st],
    )
    lock_id = str(lock.get("id", ""))
    ok, t_ok = d.tf(
        s,
        "staging",
        ["force-unlock", "-force", lock_id],
        "force-unlock with the same credentials every apply uses",
    )
    d.ev.limitation(
        "crash-unlock",
        s,
        "force-unlock is reserved to an admin (driftsafe: admin token only, audited)",
        ok.returncode == 0 and "successfully unlocked" in ok.stdout,
        evidence=[t_ok],
        detail="on S3 anyone who can write the bucket can delete the .tflock object: the "
        "same credentials that apply just broke the lock, and nothing records who did",
    )
    recover(d, s)
    _stale_writer(d, s)


def _pull(d: Drill, s: str, title: str, name: str) -> tuple[dict[str, Any], str]:
    r, t = d.tf(s, "staging", ["state", "pull"], title)
    try:
        data: dict[str, Any] = json.loads(r.stdout)
    except ValueError:
        data = {}
    path = d.root / "s3-versions" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(r.stdout)
    return data, t.id


def _rollout(state: dict[str, Any]) -> str | None:
    """Which apply's rollout the state records (its ``triggers.rollout``)."""
    for r in state.get("resources", []):
        if f"{r.get('module', '')}.{r.get('type')}.{r.get('name')}".lstrip(".") == ROLLOUT:
            for i in r.get("instances", []):
                found = ((i.get("attributes") or {}).get("triggers") or {}).get("rollout")
                return None if found is None else str(found)
    return None


def _stale_writer(d: Drill, s: str) -> None:
    """A paused holder, its lock broken, a newer write, the holder resumed: on S3 the
    late write replaces the newer state (what driftsafe's fencing refuses with 409)."""
    pulled: dict[str, tuple[dict[str, Any], str]] = {}

    def pull_b() -> None:
        pulled["b"] = _pull(d, s, "the newer state, as B wrote it", "staging-b.tfstate")

    run = stale_writer(
        d,
        s,
        str(d.env_dir("staging")),
        "driftsafe lock unlock envs/staging --if-stale: the paused holder's .tflock",
        "the paused apply resumes and writes its state",
        while_paused=pull_b,
    )
    br, t_br, newer, t_newer, t_res = (
        run.unlock,
        run.t_unlock,
        run.newer,
        run.t_newer,
        run.t_resumed,
    )
    b_state, t_b = pulled.get("b", ({}, t_newer.id))
    final, t_final = _pull(d, s, "the state afterwards", "staging-after.tfstate")
    diff, t_diff = d.ds(
        s,
        ["state", "diff", "s3-versions/staging-b.tfstate", "s3-versions/staging-after.tfstate"],
        "driftsafe state diff: B's state against what the resumed holder wrote",
        cwd=d.root,
    )
    b_id, final_id = _rollout(b_state), _rollout(final)
    lost = b_id == "fence-b" and final_id == "fence-a" and diff.returncode == 2
    lost = lost and ROLLOUT in diff.stdout
    d.figures["lost_update"] = {
        "b_serial": b_state.get("serial"),
        "final_serial": final.get("serial"),
        "lost": b_id,
        "kept": final_id,
    }
    d.ev.limitation(
        "fencing",
        s,
        "The resumed stale holder is fenced: its late write cannot replace the newer state",
        br.returncode == 0 and newer.returncode == 0 and lost,
        evidence=[t_br, t_newer, t_b, t_res, t_final, t_diff],
        detail=f"lost update reproduced: B's {ROLLOUT} (rollout {b_id}, serial "
        f"{b_state.get('serial')}) is gone from the state; the resumed holder's late write "
        f"(rollout {final_id}, serial {final.get('serial')}) replaced it. S3 accepts any "
        "write from a holder whose lock was broken; driftsafe's server refuses it (409)",
    )
    d.ev.narrative(
        s,
        "**What fencing prevents.** The paused apply still believed it held the lock. "
        "After its `.tflock` object was deleted, B took the lock and wrote a newer state; "
        "when A resumed, S3 accepted A's write, built from an older state, over B's. "
        f"B's `{ROLLOUT}` (rollout `{b_id}`) vanished from the state, replaced by A's "
        f"(`{final_id}`): a lost update, with no "
        "error for anyone. driftsafe's server rejects a write whose lock ID is no longer "
        "the holder's (409): A would fail, keep its state in `errored.tfstate`, and B's "
        "state would survive. The object-version listing below still holds B's version, "
        "so it can be restored by hand.",
    )
    errored = d.env_dir("staging") / "errored.tfstate"
    if errored.is_file():
        errored.rename(d.root / "stale-errored.tfstate")
    fix, t_fix = d.tf(
        s,
        "staging",
        ["apply", "-auto-approve", "-no-color"],
        "reconcile: apply the configuration again from the state in S3",
    )
    d.ev.check(
        "fencing-nothing-lost",
        s,
        "Re-applying from the backend's state converges",
        fix.returncode == 0,
        evidence=[t_fix],
    )


def step_secrets(d: Drill) -> None:
    s = "secrets"
    d.ev.step(s, "Secrets stay out of state")
    b = _bucket(d)
    secret_in_file(d, s)
    listed, t_list = b.object_versions(d, s, "staging", "Every object version of staging's state")
    client = b.s3(d).s3()
    bodies = [
        client.get_object(Bucket=b.bucket, Key=b.key("staging"), VersionId=v["VersionId"])[
            "Body"
        ].read()
        for v in listed
    ]
    started = time.time()
    ok, verdict = secret_verdict(bodies)
    t_scan = d.ev.capture(
        s,
        "driftsafe's secret scan over every object version (in memory, never printed)",
        argv=["driftsafe-secret-scan", f"s3://{b.bucket}/{b.key('staging')}", "--all-versions"],
        cwd=b.url,
        returncode=0 if ok else 2,
        stdout=f"{len(bodies)} object versions scanned: {verdict}\n",
        started_at=started,
        ended_at=time.time(),
    )
    check_secret_not_stored(
        d,
        s,
        {v["VersionId"]: d.secret.encode() in body for v, body in zip(listed, bodies, strict=True)},
        where=b.url,
        kind="object version",
        scan_ok=ok,
        evidence=[t_list, t_scan],
    )
    latest = json.loads(bodies[0]) if bodies else {}
    scanner_can_fail(d, s, latest)


def step_versions(d: Drill) -> None:
    s = "versions"
    d.ev.step(s, "Versions: every write an object version, and a diff between two")
    b = _bucket(d)
    listed, t_list = b.object_versions(
        d, s, "staging", "ListObjectVersions: every version of staging's state"
    )
    readable = [v for v in listed if isinstance(v.get("serial"), int)]
    current, t_cur = d.tf(s, "staging", ["state", "pull"], "the current state (state pull)")
    try:
        serial_now = json.loads(current.stdout).get("serial")
    except ValueError:
        serial_now = None
    d.ev.check(
        "versions-one-per-write",
        s,
        "Every write is kept: the bucket lists every object version of the state, with "
        "its version id and time, each readable back",
        len(listed) > 5
        and len(readable) == len(listed)
        and listed[0].get("IsLatest") is True
        and listed[0].get("serial") == serial_now,
        evidence=[t_list, t_cur],
        detail=f"{len(listed)} object versions of lab/staging/terraform.tfstate",
    )
    d.figures["versions"] = len(listed)
    before = d.figures.get("s3_before_resolution") or (listed[-1] if listed else {})
    if not listed or not before:
        raise DrillError("no object versions to diff")
    old = b.save_version(d, "staging", before["VersionId"], "staging-before-resolution.tfstate")
    new = b.save_version(d, "staging", listed[0]["VersionId"], "staging-latest.tfstate")
    diff, t_diff = d.ds(
        s,
        ["state", "diff", old, new],
        "driftsafe state diff between two object versions (before the resolution, latest)",
        cwd=d.root,
    )
    d.ev.check(
        "versions-diff",
        s,
        "A diff between two versions names the changed resources and "
        "attribute paths (exit 2: they differ)",
        diff.returncode == 2
        and CONFIG_ADDR in diff.stdout
        and "values.max_connections" in diff.stdout,
        evidence=[t_diff],
        detail=f"versions {before['VersionId']} (serial {before.get('serial')}) and "
        f"{listed[0]['VersionId']} (serial {listed[0].get('serial')})",
    )


def step_reflection(d: Drill) -> None:
    s = "reflection"
    d.ev.step(s, "Reflection")
    b = _bucket(d)
    listed, t_list = b.object_versions(d, s, "staging", "The object versions, once more")
    lost = d.figures.get("lost_update") or {}
    handover = (d.figures.get("handover") or {}).get("lock_timeout")
    limits = [c for c in d.ev.checks if c.status == "limitation"]
    d.ev.narrative(
        s,
        f"In this run S3 kept {len(listed)} object versions of staging's state, so every "
        f"write can be read back and restored by hand, and `use_lockfile` refused the "
        f"overlapping apply and named its holder from the `.tflock` object. What it "
        f"cannot do showed up as {len(limits)} backend limitation(s), reproduced rather "
        f"than assumed: a waiting apply polls (it went on "
        f"{'?' if handover is None else f'{handover:.1f} s'} after the release), anyone "
        f"who can write the bucket can break a lock, and a paused holder whose lock was "
        f"broken overwrote a newer state (serial {lost.get('b_serial')} lost "
        f"`{ROLLOUT}` rollout `{lost.get('lost')}`). The versions make that lost update "
        f"recoverable; fencing, as driftsafe's server does it, makes it impossible.",
    )
    d.ev.check(
        "reflection",
        s,
        "The reflection is computed from this run's own evidence (the object-version "
        "listing and the checks above)",
        bool(listed),
        evidence=[t_list],
    )


# Rows of the side-by-side table: guarantee, the drill checks that measure it on this run's
# backend, and what driftsafe's server gives (measured by `driftsafe backend check` in the
# suite: docs/backends.md).
_ROWS = (
    (
        "Two applies cannot overlap; the refusal names the holder",
        ("clash-error", "clash-holder"),
        "✓ 423 with the holder's LockInfo",
    ),
    (
        "A waiting apply gets the lock as it is released",
        ("wait-server",),
        "✓ `?wait=`: hand-over in milliseconds",
    ),
    (
        "A crashed run's lock stays, with holder and age",
        ("crash-stale",),
        "✓ lock status shows it stale",
    ),
    ("Force-unlock is reserved to an admin", ("crash-unlock",), "✓ admin token only, audited"),
    (
        "A stale writer cannot replace a newer state (fencing)",
        ("fencing",),
        "✓ 409: the late write is refused",
    ),
    (
        "Every write is kept as a version, readable back",
        ("versions-one-per-write", "versions-diff"),
        "✓ every write, with writer and lock id",
    ),
    ("Encrypted at rest", ("backend-settings",), "✓ AES-256-GCM (the server's key)"),
    ("No secret in any stored version", ("secret-not-in-state",), "✓ scanned on every write"),
)


def comparison_table(d: Drill) -> str:
    """This run's backend against driftsafe's guarantees, from this run's checks."""
    by_id = {c.id: c for c in d.ev.checks}
    marks = {"passed": "✓", "failed": "✗", "limitation": "⚠ limitation, reproduced"}
    lines = [
        f"**This run's backend: {d.backend.description}**, side by side with driftsafe's "
        "state server. The S3 column is measured by this run's checks; the driftsafe "
        "column is what its server guarantees, measured by `driftsafe backend check` "
        "(docs/backends.md).",
        "",
        "| guarantee | this run: S3 | driftsafe server |",
        "| --- | --- | --- |",
    ]
    for title, ids, ours in _ROWS:
        found = [by_id[i] for i in ids if i in by_id]
        if not found:
            cell = "not run"
        else:
            worst = next((c for c in found if c.status == "failed"), None) or next(
                (c for c in found if c.status == "limitation"), found[0]
            )
            cell = marks[worst.status]
        lines.append(f"| {title} | {cell} | {ours} |")
    return "\n".join(lines)
