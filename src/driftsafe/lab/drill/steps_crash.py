"""Drill step: a crashed run, its stale lock, the safe recovery, and fencing."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from driftsafe.engine import RunResult
from driftsafe.lab.drill.context import Drill
from driftsafe.lab.drill.steps_state import slow_apply, slow_env
from driftsafe.lab.evidence import Transcript


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def step_crash(d: Drill) -> None:
    s = "crash"
    d.ev.step(s, "A crashed run: stale lock, safe recovery, and fencing")
    ws = d.workspace("staging")
    victim = slow_apply(d, s, 60, "crash", "the apply to crash")
    killed_at = time.time()
    victim.send_signal(signal.SIGKILL)
    crashed = victim.wait(timeout=30)
    t_crash = d.ev.record(s, crashed, title="apply SIGKILLed mid-flight (in the slow resource)")
    time.sleep(1.2)
    st, t_st = d.ds(
        s,
        ["lock", "status", ws, "--max-age", "1s", "--json"],
        "driftsafe lock status: the lock left behind",
    )
    try:
        lock = json.loads(st.stdout).get("lock") or {}
    except ValueError:
        lock = {}
    alive = _pid_alive(crashed_pid := victim.pid)
    t_dead = d.ev.capture(
        s,
        "Is the holder still running?",
        argv=["kill", "-0", str(crashed_pid)],
        cwd=str(d.env_dir("staging")),
        returncode=0 if alive else 1,
        stdout="" if not alive else "alive\n",
        stderr=f"kill: ({crashed_pid}) - No such process\n" if not alive else "",
        started_at=time.time(),
        ended_at=time.time(),
    )
    d.ev.check(
        "crash-stale",
        s,
        "The killed apply left a lock that `lock status` shows stale, with its holder and age",
        crashed.signal == signal.SIGKILL
        and bool(lock.get("id"))
        and bool(lock.get("stale"))
        and not alive,
        evidence=[t_crash, t_st, t_dead],
    )
    lock_id = str(lock.get("id", ""))
    denied, t_denied = d.tf(
        s,
        "staging",
        ["force-unlock", "-force", lock_id],
        "force-unlock with a write token (refused)",
    )
    ok, t_ok = d.tf(
        s,
        "staging",
        ["force-unlock", "-force", lock_id],
        "force-unlock with the admin token",
        token=d.admin_token,
    )
    d.ev.check(
        "crash-unlock",
        s,
        "force-unlock is refused to a write token and works with the "
        "admin token, after confirming the holder is dead",
        denied.returncode != 0 and ok.returncode == 0 and "successfully unlocked" in ok.stdout,
        evidence=[t_denied, t_ok],
    )
    recover(d, s)
    d.figures["crash"] = {"killed_at": killed_at, "lock_id": lock_id}
    _fencing(d, s)


def recover(d: Drill, s: str) -> None:
    """After the crashed run's lock is gone: re-plan, finish its change, and check that
    state and reality agree."""
    plan, t_plan = d.tf(
        s,
        "staging",
        ["plan", "-no-color", "-detailed-exitcode"],
        "re-plan after recovery: what the crashed apply left undone",
        extra_env=slow_env(0, "crash"),
    )
    fin, t_fin = d.tf(
        s,
        "staging",
        ["apply", "-auto-approve", "-no-color"],
        "finish the interrupted change",
        extra_env=slow_env(0, "crash"),
    )
    after, t_after = d.tf(
        s,
        "staging",
        ["plan", "-refresh-only", "-no-color", "-detailed-exitcode"],
        "state and reality agree after recovery",
        extra_env=slow_env(0, "crash"),
    )
    d.ev.check(
        "crash-recovered",
        s,
        "After recovery a re-plan shows the unfinished change, "
        "apply finishes it, and state matches reality",
        plan.returncode == 2
        and fin.returncode == 0
        and after.returncode == 0
        and "No changes." in after.stdout,
        evidence=[t_plan, t_fin, t_after],
    )


@dataclass
class StaleWriter:
    """A paused holder, its lock broken with `driftsafe lock unlock --if-stale`, a newer
    apply, and the holder resumed: what each of those runs did."""

    unlock: RunResult
    t_unlock: Transcript
    newer: RunResult
    t_newer: Transcript
    resumed: RunResult
    t_resumed: Transcript


def stale_writer(
    d: Drill,
    s: str,
    lock_target: str,
    unlock_title: str,
    resumed_title: str,
    while_paused: Callable[[], None] | None = None,
) -> StaleWriter:
    """Pause an apply inside its slow rollout (SIGSTOP), break its lock (``lock_target``:
    a workspace or a root), let another apply write, run ``while_paused``, resume it."""
    # Its rollout ends when it is resumed (the gate), not on a timer that runs on in the
    # provider while Terraform is stopped.
    gate = d.root / "release-fence-a"
    paused = slow_apply(d, s, 60, "fence-a", "the apply to pause", gate=gate)
    paused.send_signal(signal.SIGSTOP)
    try:
        time.sleep(1.2)
        br, t_br = d.ds(
            s, ["lock", "unlock", lock_target, "--if-stale", "--max-age", "1s"], unlock_title
        )
        newer, t_newer = d.tf(
            s,
            "staging",
            ["apply", "-auto-approve", "-no-color"],
            "another apply takes the lock and writes a newer state",
            extra_env=slow_env(0, "fence-b"),
        )
        if while_paused is not None:
            while_paused()
    finally:
        gate.touch()
        paused.send_signal(signal.SIGCONT)
    resumed = paused.wait(timeout=120)
    gate.unlink(missing_ok=True)
    t_res = d.ev.record(s, resumed, title=resumed_title)
    return StaleWriter(br, t_br, newer, t_newer, resumed, t_res)


def _fencing(d: Drill, s: str) -> None:
    ws = d.workspace("staging")
    before = d.api(s, "GET", f"/api/v1/workspaces/{ws}/versions", "Versions before fencing")
    run = stale_writer(
        d,
        s,
        ws,
        "admin breaks the paused holder's lock (older than 1s)",
        "the paused apply resumes and tries to write (fenced)",
    )
    br, t_br, newer, t_newer = run.unlock, run.t_unlock, run.newer, run.t_newer
    resumed, t_res = run.resumed, run.t_resumed
    errored = d.env_dir("staging") / "errored.tfstate"
    after = d.api(s, "GET", f"/api/v1/workspaces/{ws}/versions", "Versions after fencing")
    audit = d.api(s, "GET", f"/api/v1/audit?workspace={ws}&limit=20", "Audit: the rejected write")
    latest = ((after.body or {}).get("versions") or [{}])[0]
    prev_latest = ((before.body or {}).get("versions") or [{}])[0]
    rejected = [
        e
        for e in (audit.body or {}).get("events", [])
        if e.get("outcome") == "rejected" and "write" in str(e.get("action"))
    ]
    d.ev.check(
        "fencing",
        s,
        "The resumed stale holder is fenced: its write gets 409, Terraform "
        "keeps it in errored.tfstate, and the newer state survives",
        br.returncode == 0
        and newer.returncode == 0
        and resumed.returncode != 0
        and "409" in resumed.stderr
        and errored.is_file()
        and latest.get("serial", 0) > prev_latest.get("serial", 0)
        and bool(rejected),
        evidence=[t_br, t_newer, t_res, after.transcript, audit.transcript],
    )
    if errored.is_file():
        # Kept as evidence of what the fenced run would have written, then moved aside so
        # later steps start from the server's state.
        errored.rename(d.root / "fenced-errored.tfstate")
    plan, t_plan = d.tf(
        s,
        "staging",
        ["apply", "-auto-approve", "-no-color"],
        "reconcile: apply the configuration again from the server's state",
    )
    d.ev.check(
        "fencing-nothing-lost",
        s,
        "Nothing is lost: re-applying from the server's state converges",
        plan.returncode == 0,
        evidence=[t_plan],
    )
