"""``driftsafe backend check DIR``: what a Terraform backend really guarantees, measured
with real Terraform processes on a scratch workspace of that backend.

The root's real state is never touched: the checks run in a scratch root (a temporary
directory holding the root's backend settings and a small configuration of
``terraform_data`` resources), in a workspace named ``driftsafe-check-<random>`` (for
the http backend, at a scratch address), which is deleted afterwards, even after a
Ctrl-C.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftsafe.backends.adapters import adapter_for
from driftsafe.backends.base import Adapter, parse_go_time
from driftsafe.backends.config import BackendConfig, backend_json, read_backend
from driftsafe.backends.http import split_address
from driftsafe.backends.report import CHECK_IDS, CheckReport, CheckResult, Evidence
from driftsafe.engine import Engine, Process, ProcessTracker, RunResult
from driftsafe.errors import ConfigError, DriftsafeError, Interrupted
from driftsafe.state import scan_state

SCRATCH_PREFIX = "driftsafe-check-"
LOCK_ERROR = "Error acquiring the state lock"
# The slow resource is being created: the apply holds the lock.
IN_SLOW = re.compile(r"terraform_data\.slow(?:\[\d+\])?: (?:Creating|Provisioning|Still creating)")

# The scratch configuration. A provisioner runs only when its resource is created, so
# `triggers_replace` makes each apply with a new `tag` replace the slow resource and
# sleep for `sleep` seconds while holding the lock; `extra` adds a second resource.
SCRATCH_TF = """\
# Written by `driftsafe backend check`; removed when the check ends.
variable "tag" {
  type    = string
  default = "start"
}
variable "sleep" {
  type    = number
  default = 0
}
variable "extra" {
  type    = number
  default = 0
}
resource "terraform_data" "slow" {
  input            = var.tag
  triggers_replace = [var.tag]
  provisioner "local-exec" {
    command = "sleep ${var.sleep}"
  }
}
resource "terraform_data" "extra" {
  count = var.extra
  input = "written by the second writer"
}
"""

# Seconds the lock holder sleeps in the overlap test; the refused and the waiting apply
# both start while it sleeps.
HOLD = 6
TF_TIMEOUT = 180.0
OUTPUT_LIMIT = 6000


def _trim(text: str) -> str:
    text = text.strip("\n")
    if len(text) <= OUTPUT_LIMIT:
        return text
    return text[:1000] + "\n[... trimmed ...]\n" + text[-(OUTPUT_LIMIT - 1000) :]


def lock_info_from_output(output: str) -> dict[str, str]:
    """The ``Lock Info:`` block Terraform prints with a lock error (ID, Who, ...)."""
    _, found, rest = output.partition("Lock Info:")
    if not found:
        return {}
    info: dict[str, str] = {}
    for line in rest.splitlines()[1:]:
        match = re.match(r"^\s+(ID|Path|Operation|Who|Version|Created|Info):\s*(.*)$", line)
        if not match:
            if line.strip():
                break
            continue
        info[match.group(1)] = match.group(2).strip()
    return info


@dataclass
class _Run:
    """One check: the scratch root, the Terraform processes, the evidence."""

    engine: Engine
    config: BackendConfig
    adapter: Adapter
    dir: Path
    workspace: str
    env: dict[str, str]
    say: Callable[[str], None]
    procs: list[Process] = field(default_factory=list)
    serials: dict[int, str] = field(default_factory=dict)  # serial -> lineage seen
    notes: list[str] = field(default_factory=list)
    first_state: bytes = b""

    # -- Terraform ------------------------------------------------------------------

    def start(self, *args: str, env: Mapping[str, str] | None = None) -> Process:
        proc = self.engine.start(list(args), cwd=self.dir, env={**self.env, **(env or {})})
        self.procs.append(proc)
        return proc

    def tf(
        self, *args: str, timeout: float = TF_TIMEOUT, env: Mapping[str, str] | None = None
    ) -> RunResult:
        return self.finished(self.start(*args, env=env), timeout)

    def finished(self, proc: Process, timeout: float = TF_TIMEOUT) -> RunResult:
        """``proc``'s result; :class:`Interrupted` instead when a signal stopped the check
        meanwhile (a run it cut short proves nothing, and must not read as a failure)."""
        result = proc.wait(timeout=timeout)
        self.engine.check_interrupted()
        return result

    def apply(self, *variables: str, lock_timeout: str = "") -> Process:
        args = ["apply", "-auto-approve", "-input=false", "-no-color"]
        if lock_timeout:
            args.append(f"-lock-timeout={lock_timeout}")
        for v in variables:
            args += ["-var", v]
        return self.start(*args)

    def probe(self) -> RunResult:
        """A plan that takes the lock or fails at once: is the state locked now?"""
        return self.tf("plan", "-input=false", "-no-color", "-refresh=false", "-lock-timeout=0s")

    def holder(self, what: str, *variables: str) -> Process:
        """An apply that is inside its slow resource, so holds the lock. Refused by a
        lock that no run of ours holds, it is retried once (see :meth:`stray_lock`)."""
        for attempt in (1, 2):
            proc = self.apply(*variables)
            if proc.wait_for_output(IN_SLOW, timeout=120):
                return proc
            result = self.finished(proc, 60)
            if attempt == 2 or not self.stray_lock(what, result):
                break
        raise DriftsafeError(
            f"{what} never reached the slow resource (exit {result.returncode}):\n"
            + _trim(result.output)
        )

    def applied(self, what: str, *variables: str) -> RunResult:
        """An apply run to its end; retried once after a stray lock, like :meth:`holder`."""
        result = self.finished(self.apply(*variables))
        if result.returncode != 0 and self.stray_lock(what, result):
            result = self.finished(self.apply(*variables))
        return result

    def stray_lock(self, what: str, result: RunResult) -> bool:
        """True when ``result`` was refused by a lock that no running process of ours
        held: one the backend itself left behind (e.g. a conditional write retried by
        the client after the first try had succeeded). It is noted in the report,
        released, and the caller tries again."""
        info = lock_info_from_output(result.output)
        if not info.get("ID") or any(p.poll() is None for p in self.procs):
            return False
        path = info.get("Path") or ""
        if self.config.has_workspaces and path and self.workspace not in path:
            return False  # not the scratch workspace's lock: never touched
        try:
            # The backend's own means: no dependence on which workspace is selected
            # (a failed `workspace new` leaves it unselected).
            how = self.adapter.break_lock(self.workspace, info["ID"])
        except DriftsafeError as exc:
            how = f"it could not be released ({exc.message})"
        self.notes.append(
            f"{what} was refused by lock {info['ID']} (created {info.get('Created')}), which "
            f"no running Terraform process held: a lock the backend left behind. Released: "
            f"{how}; the run was retried"
        )
        return True

    def pull(self, note: bool = True) -> dict[str, Any]:
        result = self.tf("state", "pull")
        if result.returncode != 0:
            raise DriftsafeError("terraform state pull failed:\n" + _trim(result.output))
        data: dict[str, Any] = json.loads(result.stdout or "{}")
        if note and isinstance(data.get("serial"), int):
            self.serials[data["serial"]] = str(data.get("lineage"))
        return data

    def ev(self, title: str, result: RunResult) -> Evidence:
        argv = result.argv[len(self.engine.argv_prefix) :]
        return Evidence(
            title,
            "terraform " + " ".join(argv),
            result.returncode if result.signal is None else -result.signal,
            _trim(result.output),
            result.duration,
        )

    @staticmethod
    def note(title: str, command: str, data: Any) -> Evidence:
        text = data if isinstance(data, str) else json.dumps(data, indent=2, default=str)
        return Evidence(title, command, None, _trim(text))

    def lock_view(self) -> Evidence:
        try:
            state = self.adapter.read_lock(self.workspace)
            return self.note(
                "The lock as the backend records it", "driftsafe lock status", state.to_json()
            )
        except DriftsafeError as exc:
            return self.note(
                "The lock as the backend records it", "driftsafe lock status", exc.message
            )

    def release(self, lock_id: str) -> tuple[bool, list[Evidence]]:
        """``terraform force-unlock -force ID``, then a probe: was it released?"""
        unlocked = self.tf("force-unlock", "-force", lock_id)
        after = self.probe()
        released = after.returncode == 0 and LOCK_ERROR not in after.output
        return released, [
            self.ev("terraform force-unlock", unlocked),
            self.ev("is the state still locked? (a plan that does not wait)", after),
        ]

    def break_natively(self, lock_id: str | None) -> tuple[bool, Evidence]:
        try:
            how = self.adapter.break_lock(self.workspace, lock_id)
        except DriftsafeError as exc:
            return False, self.note("Break the lock by the backend's own means", "-", exc.message)
        after = self.probe()
        ok = after.returncode == 0 and LOCK_ERROR not in after.output
        return ok, self.note(
            "Break the lock by the backend's own means", "-", how + "\n\n" + after.output
        )

    # -- cleanup ---------------------------------------------------------------------

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait(timeout=30)


def _check_lock_overlap(run: _Run, report: CheckReport) -> None:
    run.say("lock-excludes, lock-names-holder, lock-timeout-waits: three overlapping applies")
    holder = run.holder("the holder apply", "tag=a", f"sleep={HOLD}")
    waiter = run.apply("tag=c", lock_timeout="90s")
    refused_proc = run.apply("tag=b")
    refused = refused_proc.wait(timeout=TF_TIMEOUT)
    held = holder.wait(timeout=TF_TIMEOUT)
    waited = waiter.wait(timeout=TF_TIMEOUT)
    e_held, e_refused, e_waited = (
        run.ev("apply A (holds the lock)", held),
        run.ev("apply B (starts while A holds the lock)", refused),
        run.ev("apply C with -lock-timeout=90s (starts while A holds the lock)", waited),
    )
    excluded = refused.returncode != 0 and LOCK_ERROR in refused.output
    report.checks.append(
        CheckResult(
            "lock-excludes",
            excluded and held.returncode == 0,
            "the second apply failed with `Error acquiring the state lock`"
            if excluded
            else "the second apply was NOT refused while the first held the lock",
            [e_held, e_refused],
        )
    )
    info = lock_info_from_output(refused.output)
    created = parse_go_time(info.get("Created", ""))
    named = all(info.get(k) for k in ("ID", "Who", "Operation"))
    holders = created is not None and created < refused.started_at
    if not excluded:
        names: bool | None = None
        why = "not measurable: the second apply was not refused"
    elif not named:
        names, why = False, "the refusal has no Lock Info with Who, Operation and ID"
    elif not holders:
        names = False
        why = (
            f"the Lock Info names a lock created {info.get('Created')}, after the refused "
            "apply started: it is the refused run's own request, not the holder"
        )
    else:
        names = True
        why = f"names the holder: {info.get('Who')}, {info.get('Operation')}, ID {info.get('ID')}"
    report.checks.append(CheckResult("lock-names-holder", names, why, [e_refused]))
    # The holder releases the lock just after its last line of output.
    released = held.lines[-1].t if held.lines else held.ended_at
    went_on = [
        line.t
        for line in waited.lines
        if "Refreshing state" in line.text or "Destroying" in line.text
    ]
    ok = (
        waited.returncode == 0
        and "Apply complete!" in waited.output
        and waited.ended_at > released
        and (not went_on or went_on[0] >= released - 0.5)
    )
    if ok and went_on:
        delay = max(0.0, went_on[0] - released)
        detail = (
            f"it waited and succeeded; it went on {delay:.1f} s after the holder released "
            "the lock (Terraform retries after 1, 2, 4, 8, then every 16 s)"
        )
    elif ok:
        detail = "it waited and succeeded"
    else:
        detail = f"the waiting apply failed (exit {waited.returncode})"
    report.checks.append(CheckResult("lock-timeout-waits", ok, detail, [e_held, e_waited]))
    if held.returncode == 0 or waited.returncode == 0:
        run.pull()


def _check_stale_lock(run: _Run, report: CheckReport) -> list[tuple[bool, list[Evidence]]]:
    run.say("stale-lock-visible: an apply SIGKILLed while it holds the lock")
    victim = run.holder("the apply to kill", "tag=d", "sleep=120")
    victim.kill()
    killed = victim.wait(timeout=30)
    probe = run.probe()
    info = lock_info_from_output(probe.output)
    view = run.lock_view()
    evidence = [
        run.ev("apply SIGKILLed in the slow resource", killed),
        run.ev("a plan afterwards (does not wait for the lock)", probe),
        view,
    ]
    visible = LOCK_ERROR in probe.output and bool(info.get("ID"))
    named = visible and bool(info.get("Who"))
    if named:
        detail = f"the crashed run's lock stays: {info.get('Who')}, ID {info.get('ID')}"
    elif visible:
        detail = "the lock stays but without its holder"
    else:
        detail = (
            "the lock vanished with the killed process: nothing shows that a run crashed mid-apply"
        )
    report.checks.append(CheckResult("stale-lock-visible", named, detail, evidence))
    attempts = []
    if visible:
        released, evs = run.release(info["ID"])
        if not released:
            # Cleared for the next checks; shown with the failed try.
            evs.append(run.break_natively(info["ID"])[1])
        attempts.append((released, evs))
    return attempts


def _check_stale_writer(
    run: _Run, report: CheckReport, earlier: list[tuple[bool, list[Evidence]]]
) -> None:
    run.say("stale-writer-fenced: a paused holder, its lock broken, a newer write, resumed")
    before = run.pull(note=False)
    tag = str(_attr(before, "slow", "input") or "c")
    stale = run.holder("the apply to pause", "tag=stale", "sleep=8")
    stale.send_signal(signal.SIGSTOP)
    evidence: list[Evidence] = []
    newer: RunResult | None = None
    how = "terraform force-unlock"
    try:
        probe = run.probe()
        info = lock_info_from_output(probe.output)
        evidence.append(run.ev("a plan while A is paused (does not wait)", probe))
        locked = LOCK_ERROR in probe.output
        released, evs = run.release(info.get("ID", "")) if locked else (True, [])
        evidence += evs
        attempts = [*earlier, (released, evs)] if locked else earlier
        if locked and not released:
            released, ev = run.break_natively(info.get("ID"))
            evidence.append(ev)
            how = "the backend's own means (terraform force-unlock did not release it)"
        _force_unlock_result(report, attempts)
        if released:
            newer = run.tf(
                *("apply", "-auto-approve", "-input=false", "-no-color"),
                *("-var", f"tag={tag}", "-var", "extra=1"),
            )
            evidence.append(
                run.ev("apply B (after the lock was broken): adds terraform_data.extra", newer)
            )
            if newer.returncode == 0:
                run.pull()
    finally:
        stale.send_signal(signal.SIGCONT)
    resumed = stale.wait(timeout=TF_TIMEOUT)
    evidence.append(run.ev("apply A resumed", resumed))
    (run.dir / "errored.tfstate").unlink(missing_ok=True)
    if newer is None:
        report.checks.append(
            CheckResult(
                "stale-writer-fenced",
                None,
                "not measurable: the paused holder's lock could not be broken, so no "
                "second writer could start (nor can a dead holder's lock be cleared)",
                evidence,
            )
        )
        return
    final = run.pull()
    kept = any(
        r.get("type") == "terraform_data" and r.get("name") == "extra"
        for r in final.get("resources", [])
    )
    evidence.append(
        run.note(
            "the state afterwards",
            "terraform state pull",
            {"serial": final.get("serial"), "resources": _addresses(final)},
        )
    )
    if newer.returncode != 0:
        ok: bool | None = None
        detail = f"not measurable: the second writer failed after the lock was broken by {how}"
    elif kept:
        ok = True
        detail = (
            "the resumed holder's late write was refused"
            + (" (fenced)" if resumed.returncode != 0 else "")
            + "; the newer state, with terraform_data.extra, survived"
        )
    else:
        ok = False
        detail = (
            "lost update: the resumed holder's late write replaced the newer state; "
            "terraform_data.extra[0], written by B, is gone from the state"
        )
    report.checks.append(CheckResult("stale-writer-fenced", ok, detail, evidence))


def _force_unlock_result(report: CheckReport, attempts: list[tuple[bool, list[Evidence]]]) -> None:
    evidence = [e for _, evs in attempts for e in evs]
    if not attempts:
        ok: bool | None = None
        detail = "not measurable: no lock was left to release"
    elif all(released for released, _ in attempts):
        ok = True
        detail = f"released the lock ({len(attempts)} of {len(attempts)} tries)"
    else:
        failed = sum(1 for released, _ in attempts if not released)
        ok = False
        codes = ", ".join(
            str(e.exit_code) for _, evs in attempts for e in evs[:1] if e.exit_code is not None
        )
        detail = (
            f"the lock was still held after `terraform force-unlock -force ID` "
            f"({failed} of {len(attempts)} tries; it exited {codes})"
        )
    report.checks.append(CheckResult("force-unlock-works", ok, detail, evidence))


def _attr(state: Mapping[str, Any], name: str, attr: str) -> Any:
    for resource in state.get("resources", []):
        if resource.get("name") == name:
            for instance in resource.get("instances", []):
                return (instance.get("attributes") or {}).get(attr)
    return None


def _addresses(state: Mapping[str, Any]) -> list[str]:
    out = []
    for r in state.get("resources", []):
        for i in r.get("instances", []):
            key = i.get("index_key")
            suffix = f"[{key}]" if isinstance(key, int) else ""
            out.append(f"{r.get('type')}.{r.get('name')}{suffix}")
    return out


def _check_older_serial(run: _Run, report: CheckReport) -> None:
    run.say("older-serial-refused: state push -force of the first state")
    current = run.pull()
    old = json.loads(run.first_state)
    path = run.dir / "older.tfstate"
    path.write_bytes(run.first_state)
    pushed = run.tf("state", "push", "-force", "-lock-timeout=60s", str(path))
    after = run.pull()
    refused = pushed.returncode != 0 and after.get("serial") == current.get("serial")
    detail = (
        f"refused: serial {old.get('serial')} is older than {current.get('serial')}"
        if refused
        else f"accepted: the state went back from serial {current.get('serial')} to "
        f"{after.get('serial')}"
    )
    report.checks.append(
        CheckResult(
            "older-serial-refused",
            refused,
            detail,
            [
                run.ev(
                    f"push the first state back (serial {old.get('serial')}) with -force", pushed
                ),
                run.note(
                    "the state afterwards", "terraform state pull", {"serial": after.get("serial")}
                ),
            ],
        )
    )


def _check_versions(run: _Run, report: CheckReport) -> list[bytes]:
    run.say("versions-kept, secret-free, encrypted-at-rest: reading the backend")
    seen = sorted(run.serials)
    try:
        bodies = run.adapter.versions(run.workspace)
    except DriftsafeError as exc:
        report.checks.append(CheckResult("versions-kept", None, f"not measurable: {exc.message}"))
        return []
    if bodies is None:
        report.checks.append(
            CheckResult(
                "versions-kept",
                None,
                "not measurable: driftsafe has no way to list the versions of a "
                f"{run.config.type} backend",
            )
        )
        return []
    stored: dict[int, str] = {}
    for body in bodies:
        try:
            data = json.loads(body)
            stored.setdefault(int(data["serial"]), str(data.get("lineage")))
        except (ValueError, TypeError, KeyError):
            continue  # not a readable state: it does not count as kept
    readable = [s for s in seen if stored.get(s) == run.serials[s]]
    ok = len(readable) == len(seen) > 1
    detail = (
        f"{len(seen)} states written (serials {', '.join(map(str, seen))}); the backend keeps "
        f"{len(bodies)} version(s) and {len(readable)} of those states read back"
    )
    listing = run.note(
        "Stored versions as the backend lists them",
        "list versions",
        [{"serial": s, "lineage": lin} for s, lin in sorted(stored.items())],
    )
    report.checks.append(CheckResult("versions-kept", ok, detail, [listing]))
    return bodies


def _check_secrets(run: _Run, report: CheckReport, bodies: list[bytes]) -> None:
    if not bodies:
        bodies = [json.dumps(run.pull(note=False)).encode()]
        where = "the latest state (no versions to read)"
    else:
        where = f"{len(bodies)} stored version(s)"
    ok, detail = secret_verdict(bodies)
    report.checks.append(CheckResult("secret-free", ok, f"{where}: {detail}"))


def secret_verdict(bodies: list[bytes]) -> tuple[bool, str]:
    """driftsafe's secret scan over state bodies: (no finding, what was found)."""
    found = []
    for n, body in enumerate(bodies, 1):
        try:
            data = json.loads(body)
        except ValueError:
            continue
        found += [f"version {n}: {f.to_json().get('path')}" for f in scan_state(data)]
    if found:
        return False, "secrets found at " + "; ".join(found[:10])
    return True, "no secret found"


def _check_encryption(run: _Run, report: CheckReport) -> None:
    try:
        measured = run.adapter.encryption(run.workspace)
    except DriftsafeError as exc:
        report.checks.append(
            CheckResult("encrypted-at-rest", None, f"not measurable: {exc.message}")
        )
        return
    report.checks.append(CheckResult("encrypted-at-rest", measured.ok, measured.detail))


def _isolated_env(directory: Path) -> dict[str, str]:
    """Terraform settings from the caller's environment that would point the scratch
    runs at the real state or change what they measure: the selected workspace, the
    data directory (where init records the backend), extra CLI arguments (e.g.
    ``-lock=false``). Terraform reads an empty value as unset."""
    env = {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "TF_WORKSPACE": ""}
    env["TF_DATA_DIR"] = str(directory / ".terraform")
    for command in ("", "_init", "_plan", "_apply", "_state", "_force-unlock", "_workspace"):
        env[f"TF_CLI_ARGS{command}"] = ""
    return env


@contextlib.contextmanager
def _no_interrupt() -> Iterator[None]:
    """Cleanup must finish: a second Ctrl-C waits until it has."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _tell(run: _Run, line: str) -> None:
    try:
        run.say(line)
    except OSError:
        # A closed terminal (a broken pipe) must not stop the cleanup; what it did is
        # still kept in the report's cleanup list.
        return


def _cleanup(run: _Run, report: CheckReport) -> None:
    """Remove everything the check made. Each part runs whatever the others did: one
    failure must not leave the rest behind."""
    _tell(run, f"cleaning up the scratch workspace {run.workspace}")
    notes = report.cleanup
    try:
        run.stop_all()
        _clear_lock(run, notes)
        if run.config.has_workspaces:
            run.tf("workspace", "select", "default", timeout=60)
            deleted = run.tf("workspace", "delete", "-force", run.workspace, timeout=60)
            if deleted.returncode == 0:
                notes.append(f"deleted workspace {run.workspace}")
            else:
                notes.append(f"terraform workspace delete failed: {deleted.output.strip()[-300:]}")
    except (DriftsafeError, OSError) as exc:
        notes.append(f"could not stop the runs or delete the workspace: {exc}")
    finally:
        _purge(run, notes)
        shutil.rmtree(run.dir, ignore_errors=True)
        notes.append(f"removed the scratch root {run.dir}")
        for line in notes:
            _tell(run, f"cleanup: {line}")


def _clear_lock(run: _Run, notes: list[str]) -> None:
    try:
        held = run.adapter.read_lock(run.workspace).held
        if held is not None:
            notes.append("left lock: " + run.adapter.break_lock(run.workspace, None))
    except DriftsafeError as exc:
        notes.append(f"could not clear a left lock: {exc.message}")


def _purge(run: _Run, notes: list[str]) -> None:
    try:
        removed = run.adapter.purge(run.workspace)
    except DriftsafeError as exc:
        notes.append(f"could not remove the scratch workspace's leftovers: {exc.message}")
        return
    if len(removed) > 3:
        notes.append(
            f"removed {len(removed)} leftover objects, versions and items of "
            f"{run.workspace}, e.g. {removed[0]}"
        )
    elif removed:
        notes.append("removed " + "; ".join(removed))
    elif not run.config.has_workspaces:
        notes.append(f"the scratch state {run.workspace} stays: the server could not delete it")


def run_backend_check(
    root: str | Path,
    *,
    engine: Engine,
    allow_local: bool = False,
    scratch_address: str | None = None,
    env: Mapping[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> CheckReport:
    """Measure what ``root``'s backend guarantees (see the module docstring)."""
    say = progress or (lambda _line: None)
    config = read_backend(root)
    if config.type == "local" and not allow_local:
        raise ConfigError(
            f"{config.root} uses the local backend: its state is a file on this machine. "
            "Pass --allow-local to check it anyway"
        )
    if scratch_address and config.type != "http":
        raise ConfigError("--scratch is for the http backend (others get a scratch workspace)")
    name = SCRATCH_PREFIX + secrets.token_hex(4)
    adapter = adapter_for(config, env=env, scratch_address=scratch_address)
    scratch_config = adapter.scratch_config(name)
    workspace = name if config.has_workspaces else str(scratch_config.get("address"))
    if config.type == "http":
        parts = split_address(workspace)
        workspace = parts[1] if parts else workspace
    directory = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    (directory / "main.tf").write_text(SCRATCH_TF)
    (directory / "backend.tf.json").write_text(backend_json(scratch_config))
    adapter = adapter_for(scratch_config, env=env, cwd=directory, scratch_address=scratch_address)
    report = CheckReport(
        config.type,
        adapter.describe(),
        workspace if config.has_workspaces else str(scratch_config.get("address")),
        engine.describe(),
        time.time(),
    )
    run = _Run(engine, scratch_config, adapter, directory, workspace, dict(env or {}), say)
    run.env.update(_isolated_env(directory))
    say(f"backend check: {report.description}; scratch root {directory}")
    try:
        # A Ctrl-C (or SIGTERM) stops the Terraform in flight gracefully and the check
        # with Interrupted; the cleanup below still runs.
        with engine.forward_signals():
            _measure(run, report)
    except (KeyboardInterrupt, Interrupted):
        report.interrupted = True
        raise
    finally:
        report.notes = run.notes
        # The interrupted engine starts no new Terraform: the cleanup gets its own.
        run.engine = dataclasses.replace(engine, processes=ProcessTracker())
        with _no_interrupt():
            _cleanup(run, report)
        report.ended_at = time.time()
    return report


def _measure(run: _Run, report: CheckReport) -> None:
    init = run.tf("init", "-input=false", "-no-color")
    if init.returncode != 0:
        raise DriftsafeError("terraform init failed in the scratch root:\n" + _trim(init.output))
    if run.config.has_workspaces:
        made = run.tf("workspace", "new", "-no-color", run.workspace)
        if made.returncode != 0 and run.stray_lock("terraform workspace new", made):
            made = run.tf("workspace", "select", "-or-create", "-no-color", run.workspace)
        if made.returncode != 0:
            raise DriftsafeError("terraform workspace new failed:\n" + _trim(made.output))
    first = run.applied("the first apply", "tag=first")
    if first.returncode != 0:
        raise DriftsafeError(
            "the first apply on the scratch workspace failed:\n" + _trim(first.output)
        )
    run.first_state = json.dumps(run.pull()).encode()
    # A signal that came while no Terraform ran raises Interrupted wherever the check
    # was, possibly inside a backend read whose errors a check records and moves past:
    # the tracker remembers the signal, so ask it after every check.
    stop_if_interrupted = run.engine.check_interrupted
    _check_lock_overlap(run, report)
    stop_if_interrupted()
    earlier = _check_stale_lock(run, report)
    stop_if_interrupted()
    _check_stale_writer(run, report, earlier)
    stop_if_interrupted()
    bodies = _check_versions(run, report)
    stop_if_interrupted()
    _check_older_serial(run, report)
    stop_if_interrupted()
    _check_encryption(run, report)
    stop_if_interrupted()
    _check_secrets(run, report, bodies)
    stop_if_interrupted()
    order = {cid: n for n, cid in enumerate(CHECK_IDS)}
    report.checks.sort(key=lambda c: order.get(c.id, len(order)))
