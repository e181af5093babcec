"""Drill steps about state itself: backend, applies, lock clash, waiting, crash, fencing."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from driftsafe.engine import Process, RunResult
from driftsafe.lab.drill.camera import ConsoleCamera
from driftsafe.lab.drill.context import Drill, DrillError
from driftsafe.lab.evidence import Transcript
from driftsafe.lab.timeline import Mark, Span, run_spans, timeline_svg

LOCK_ERROR = "Error acquiring the state lock"
# Output that shows an apply is inside the slow resource, i.e. holding the lock.
SLOW_CREATING = r"lab_delay\.rollout: (Creating|Still creating)"


def _iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def slow_env(seconds: int, trigger: str, gate: Path | None = None) -> dict[str, str]:
    """Variables that make the next apply replace the rollout delay, taking ``seconds``,
    or less: until ``gate`` exists (the lab provider's release file)."""
    env = {"TF_VAR_rollout_seconds": str(seconds), "TF_VAR_rollout_trigger": trigger}
    if gate is not None:
        gate.unlink(missing_ok=True)
        env["LAB_DELAY_RELEASE_FILE"] = str(gate)
    return env


def _audit(d: Drill, s: str, env: str) -> list[dict[str, Any]]:
    call = d.api(
        s,
        "GET",
        f"/api/v1/audit?workspace={d.workspace(env)}&limit=200",
        "Audit log of staging (lock and unlock times)",
    )
    events = call.body.get("events", []) if isinstance(call.body, dict) else []
    return list(events)


def step_backend(d: Drill) -> None:
    s = "backend"  # started by the drill's setup, which the step's evidence includes
    backend = (d.env_dir("staging") / "backend.tf").read_text()
    art = d.ev.artifact(
        s, "envs/staging/backend.tf (credentials come from the environment)", backend, kind="hcl"
    )
    info = d.api(s, "GET", "/api/v1/server", "Server settings")
    health = d.api(s, "GET", "/healthz", "Health check")
    body = info.body if isinstance(info.body, dict) else {}
    d.ev.check(
        "backend-http",
        s,
        "The stack's state lives on the driftsafe server (http backend "
        "with lock and unlock addresses)",
        'backend "http"' in backend
        and "lock_address" in backend
        and d.server_url in backend
        and d.admin_token not in backend,
        evidence=[art],
    )
    d.ev.check(
        "backend-settings",
        s,
        "The server keeps every version, locks with fencing and "
        "encrypts state at rest (its own settings)",
        info.status == 200
        and body.get("versioning") == "every write"
        and bool(body.get("locking"))
        and bool(body.get("fencing"))
        and str(body.get("encryption", "")).startswith("AES")
        and health.status == 200,
        evidence=[info.transcript, health.transcript],
    )


def step_apply(d: Drill) -> None:
    s = "apply"
    d.ev.step(s, "Clean apply of staging and prod from one module")
    outputs: dict[str, Any] = {}
    trs = []

    def bring_up(env: str) -> tuple[RunResult, RunResult]:
        # The two environments have separate states and files: apply them side by side.
        init = d.engine.run(
            ["init", "-no-color", "-input=false"], cwd=d.env_dir(env), env=d.tf_env(), timeout=180
        )
        if init.returncode != 0:
            return init, init
        apply = d.engine.run(
            ["apply", "-auto-approve", "-no-color"], cwd=d.env_dir(env), env=d.tf_env(), timeout=180
        )
        return init, apply

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(
            zip(("staging", "prod"), pool.map(bring_up, ("staging", "prod")), strict=True)
        )
    for env in ("staging", "prod"):
        init, apply = results[env]
        d.ev.record(s, init, title=f"{env}: terraform init")
        if init.returncode != 0:
            raise DrillError(f"terraform init failed in envs/{env}")
        trs.append((apply, d.ev.record(s, apply, title=f"{env}: terraform apply")))
        o, ot = d.tf(s, env, ["output", "-json", "-no-color"], f"{env}: terraform output -json")
        try:
            outputs[env] = {k: v.get("value") for k, v in json.loads(o.stdout or "{}").items()}
        except ValueError:
            outputs[env] = {}
        trs.append((o, ot))
    module_src = {env: (d.env_dir(env) / "main.tf").read_text() for env in ("staging", "prod")}
    d.ev.check(
        "apply-clean",
        s,
        "staging and prod apply cleanly",
        all(r.returncode == 0 and "Apply complete!" in r.stdout for r, t in trs[::2]),
        evidence=[t for _, t in trs[::2]],
    )
    differ = [
        k
        for k in outputs.get("staging", {})
        if outputs["staging"].get(k) != outputs.get("prod", {}).get(k)
    ]
    d.ev.check(
        "one-module",
        s,
        "One module source, two environments whose outputs differ",
        'source = "../../modules/app"' in module_src["staging"]
        and module_src["staging"] == module_src["prod"]
        and len(differ) >= 2,
        evidence=[t for _, t in trs[1::2]],
        detail="outputs that differ: " + ", ".join(sorted(differ)),
    )
    d.figures["outputs"] = outputs


def step_noop(d: Drill) -> None:
    s = "noop"
    d.ev.step(s, "Second apply is a no-op")
    r, t = d.tf(s, "staging", ["apply", "-auto-approve", "-no-color"], "staging: apply again")
    d.ev.check(
        "noop",
        s,
        "A second apply prints `No changes.`",
        r.returncode == 0 and "No changes." in r.stdout,
        evidence=[t],
    )


def slow_apply(
    d: Drill,
    s: str,
    seconds: int,
    trigger: str,
    what: str,
    *,
    gate: Path | None = None,
    title: str = "apply",
) -> Process:
    """An apply of staging, once it is inside its slow rollout (holding the lock).
    ``what`` names it in the error if it never gets there."""
    proc = d.tf_start(
        "staging",
        ["apply", "-auto-approve", "-no-color"],
        extra_env=slow_env(seconds, trigger, gate),
    )
    if not proc.wait_for_output(SLOW_CREATING, timeout=90):
        if gate is not None:
            gate.touch()  # its rollout need not run on
        d.ev.record(s, proc.wait(timeout=60), title=f"{title} (never reached the slow resource)")
        raise DrillError(f"{what} never reached the slow resource")
    return proc


def _holder_and_loser(
    d: Drill,
    s: str,
    trigger: str,
    loser_args: list[str],
    loser_env: dict[str, str] | None = None,
    hold: int = 6,
    loser_root: str = "staging",
    during: Callable[[], None] | None = None,
    release_after_loser: Callable[[], None] | None = None,
) -> tuple[RunResult, RunResult, dict[str, Any]]:
    """Start a slow apply (the holder); once it holds the lock, run the second command.
    ``release_after_loser``: the holder's rollout ends as soon as the second command
    has and this returns (``hold`` is then only its longest)."""
    gate = d.root / f"release-{trigger}" if release_after_loser else None
    holder = slow_apply(d, s, hold, trigger, "the holder apply", gate=gate, title="holder apply")
    try:
        status = d.backend.lock_entry(d, s, "staging")
        if during is not None:
            during()
        loser = d.engine.run(
            loser_args, cwd=d.env_dir(loser_root), env=d.tf_env(**(loser_env or {})), timeout=180
        )
    finally:
        if release_after_loser is not None and gate is not None:
            release_after_loser()
            gate.touch()
    held = holder.wait(timeout=180)
    if gate is not None:
        gate.unlink(missing_ok=True)
    return held, loser, {"lock": status}


def step_lock_clash(d: Drill) -> None:
    s = "lock-clash"
    d.ev.step(s, "Lock clash: two overlapping applies")
    # The console's page of staging while A holds the lock (a picture, not a check).
    # Chromium starts while apply A does; the picture is taken while A holds the lock,
    # and A's rollout ends once both B and the picture are done.
    with ConsoleCamera(d, f"/ui/workspaces/{d.workspace('staging')}") as camera:
        held, loser, extra = _holder_and_loser(
            d,
            s,
            "clash",
            ["apply", "-auto-approve", "-no-color"],
            hold=60,
            during=camera.shoot,
            release_after_loser=camera.wait_taken,
        )
    camera.record(s, "The web console while apply A holds the lock (versions, lock panel)")
    t_h = d.ev.record(s, held, title="apply A (holds the lock, slow rollout)")
    t_l = d.ev.record(s, loser, title="apply B (started while A holds the lock)")
    lock = extra["lock"]
    body = lock.body if isinstance(lock.body, dict) else {}
    entry = body.get("lock") or {}
    d.ev.check(
        "clash-error",
        s,
        "The second apply fails with `Error acquiring the state lock`",
        loser.returncode != 0 and LOCK_ERROR in loser.stderr,
        evidence=[t_l],
    )
    d.ev.check(
        "clash-holder",
        s,
        "The error names the holder (Who, Operation, ID)",
        "Who:" in loser.stderr
        and "Operation:" in loser.stderr
        and bool(entry.get("id"))
        and str(entry.get("id")) in loser.stderr,
        evidence=[t_l, lock.transcript],
    )
    d.ev.check(
        "clash-winner",
        s,
        "The holder's apply completes unharmed",
        held.returncode == 0 and "Apply complete!" in held.stdout,
        evidence=[t_h],
    )
    d.figures["clash"] = {"holder": held, "loser": loser, "holder_id": entry.get("id")}


def step_waiting(d: Drill) -> None:
    s = "waiting"
    d.ev.step(s, "Waiting instead of failing: -lock-timeout and the server's ?wait=")
    # 1. Terraform's own retry loop.
    held, waiter, lock, t_h, t_w = wait_with_lock_timeout(d, s)
    # 2. The server holds the LOCK request open until the lock frees. A second working
    # directory for the same state asks for that with `?wait=` in its lock address (the
    # backend block wins over TF_HTTP_LOCK_ADDRESS, so it goes into the block).
    waiter_dir = _waiting_checkout(d, s)
    held2, waiter2, lock2 = _holder_and_loser(
        d,
        s,
        "wait-2",
        ["apply", "-auto-approve", "-no-color"],
        loser_env={"TF_VAR_rollout_trigger": "wait-2"},
        loser_root=waiter_dir,
    )
    # The extra checkout has served its purpose; it must not look like a third env.
    import shutil

    shutil.rmtree(d.env_dir(waiter_dir))
    t_h2 = d.ev.record(s, held2, title="apply C (holds the lock)")
    t_w2 = d.ev.record(s, waiter2, title="apply D with the server-side wait (?wait=60s)")
    events = _audit(d, s, "staging")
    id_a = ((lock["lock"].body or {}).get("lock") or {}).get("id")
    id_c = ((lock2["lock"].body or {}).get("lock") or {}).get("id")

    def handover(holder_id: str | None) -> tuple[float, float] | None:
        released = [
            e
            for e in events
            if e.get("action") == "unlock" and (e.get("detail") or {}).get("id") == holder_id
        ]
        if not released:
            return None
        t_rel = _iso(released[0]["at"])
        after = sorted(
            _iso(e["at"])
            for e in events
            if e.get("action") == "lock" and e.get("outcome") == "ok" and _iso(e["at"]) >= t_rel
        )
        return (t_rel, after[0]) if after else None

    h1, h2 = handover(id_a), handover(id_c)
    d.figures["handover"] = {
        "lock_timeout": h1[1] - h1[0] if h1 else None,
        "server_wait": h2[1] - h2[0] if h2 else None,
    }
    audit_tr = d.ev.transcripts[-1]
    ok2 = held2.returncode == 0 and waiter2.returncode == 0 and h2 is not None
    d.ev.check(
        "wait-server",
        s,
        "With `?wait=` the server hands the lock over in under a second",
        ok2 and h2 is not None and (h2[1] - h2[0]) < 1.0,
        evidence=[t_h2, t_w2, audit_tr],
        detail=_handover_text(d.figures["handover"]),
    )
    spans = _lock_spans(events, held, id_a, waiter, "A (holder)", "B -lock-timeout")
    spans += _lock_spans(events, held2, id_c, waiter2, "C (holder)", "D ?wait=60s")
    clash = d.figures.get("clash")
    if clash:
        spans = (
            _lock_spans(events, clash["holder"], clash["holder_id"], None, "clash: A", "")
            + run_spans("clash: B", clash["loser"], kind="failed")
            + spans
        )
    marks = [Mark(h[0], "released") for h in (h1, h2) if h]
    svg = timeline_svg(spans, title="Who held the staging lock, and who waited", marks=marks)
    d.ev.artifact(
        s, "Lock timeline (from the captured runs and the server's audit log)", svg, kind="svg"
    )
    d.ev.narrative(s, _handover_text(d.figures["handover"]))
    settle(d, s)


def wait_with_lock_timeout(
    d: Drill, s: str
) -> tuple[RunResult, RunResult, dict[str, Any], Transcript, Transcript]:
    """Terraform's own retry loop: apply B with ``-lock-timeout`` while A holds the lock."""
    held, waiter, lock = _holder_and_loser(
        d,
        s,
        "wait-1",
        ["apply", "-auto-approve", "-no-color", "-lock-timeout=60s"],
        loser_env={"TF_VAR_rollout_trigger": "wait-1"},
    )
    t_h = d.ev.record(s, held, title="apply A (holds the lock)")
    t_w = d.ev.record(s, waiter, title="apply B with -lock-timeout=60s (waits)")
    d.ev.check(
        "wait-timeout",
        s,
        "An overlapping apply with `-lock-timeout` waits and succeeds",
        held.returncode == 0 and waiter.returncode == 0 and "Apply complete!" in waiter.stdout,
        evidence=[t_h, t_w],
    )
    return held, waiter, lock, t_h, t_w


def _lock_spans(
    events: list[dict[str, Any]],
    holder: RunResult,
    holder_id: str | None,
    waiter: RunResult | None,
    holder_lane: str,
    waiter_lane: str,
) -> list[Span]:
    """Spans from the server's audit log: when each run really acquired and released the
    lock (a run starts before it locks and ends after it unlocks)."""

    def at(action: str, lock_id: str | None) -> float | None:
        for e in events:
            if (
                e.get("action") == action
                and e.get("outcome") == "ok"
                and ((e.get("detail") or {}).get("id") == lock_id)
            ):
                return _iso(e["at"])
        return None

    spans: list[Span] = []
    got, gave = at("lock", holder_id), at("unlock", holder_id)
    if got is None or gave is None:
        return run_spans(holder_lane, holder)
    spans.append(Span(holder_lane, got, gave, "held", "held"))
    if waiter is None:
        return spans
    # The waiter's lock is the first one acquired after the holder's release.
    nxt = sorted(
        (_iso(e["at"]), (e.get("detail") or {}).get("id"))
        for e in events
        if e.get("action") == "lock" and e.get("outcome") == "ok" and _iso(e["at"]) >= gave
    )
    if not nxt:
        return spans + run_spans(waiter_lane, waiter, kind="failed")
    w_got, w_id = nxt[0]
    w_gave = at("unlock", w_id) or waiter.ended_at
    spans.append(
        Span(
            waiter_lane,
            waiter.started_at,
            w_got,
            "waited",
            f"waited {w_got - waiter.started_at:.1f} s",
        )
    )
    spans.append(Span(waiter_lane, w_got, max(w_gave, w_got), "held", "held"))
    return spans


def settle(d: Drill, s: str) -> None:
    """Apply the configuration as written (no slow rollout): later steps start clean."""
    r, _t = d.tf(
        s,
        "staging",
        ["apply", "-auto-approve", "-no-color"],
        "settle: apply the configuration as written",
    )
    if r.returncode != 0:
        raise DrillError("the settling apply failed")


def _waiting_checkout(d: Drill, s: str) -> str:
    """envs/staging-wait: staging's config and state, with `?wait=60s` on the lock address."""
    import shutil

    src, name = d.env_dir("staging"), "staging-wait"
    dst = d.env_dir(name)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
    backend = dst / "backend.tf"
    lock_url = f"{d.server_url}/v1/locks/{d.workspace('staging')}"
    text = backend.read_text().replace(f'"{lock_url}"', f'"{lock_url}?wait=60s"', 1)
    backend.write_text(text)
    d.ev.artifact(
        s, "envs/staging-wait/backend.tf (same state, server-side wait)", text, kind="hcl"
    )
    r, _t = d.tf(s, name, ["init", "-no-color", "-input=false"], "init the waiting checkout")
    if r.returncode != 0:
        raise DrillError("terraform init failed in envs/staging-wait")
    return name


def _handover_text(h: dict[str, float | None]) -> str:
    def fmt(v: float | None) -> str:
        return "not measured" if v is None else f"{v * 1000:.0f} ms"

    return (
        f"Hand-over after release: Terraform's `-lock-timeout` retry loop took "
        f"{fmt(h.get('lock_timeout'))}; the server-side `?wait=` took "
        f"{fmt(h.get('server_wait'))}."
    )
