"""The history checker of bench/faults.py: what every recorded operation and the store
left at the end must satisfy, whatever faults were injected.

An ``Op`` is one logical request of a client (its retries included): when it was
called and when its final answer came (monotonic seconds), and that answer. The checks:

- mutual exclusion: no two acknowledged writes (200) on one workspace under different
  lock IDs overlap in time (fencing holds);
- nothing acknowledged is lost: every acknowledged write's serial is stored, with the
  acknowledged body's sha256 (the run keeps every version);
- serials strictly increase per workspace: in the store, in the order versions were
  written; between acknowledged writes that did not overlap; and a read never returns
  a serial older than a write acknowledged before the read was sent;
- the protocol answered as it must: a holder never refused its own lock, a write under
  a held lock never refused, an UNLOCK of a held lock never refused;
- every stored version decrypts and matches its sha256 (``store verify``);
- no lock is left held by a client that is gone, unless the server shows it as stale.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Op:
    client: str
    kind: str  # lock, get, post, unlock
    workspace: str
    lock_id: str
    call: float
    ret: float | None = None
    status: int | None = None  # None: no answer (gave up after its retries)
    attempts: int = 0
    serial: int | None = None  # get: serial read; post: serial written
    sha256: str | None = None  # post: the body's sha256
    holder_id: str | None = None  # lock answered 423/409: the holder's ID
    created: bool | None = None  # post: created (false: a replay of the same body)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class StoredVersion:
    serial: int
    sha256: str
    created_at: str


@dataclass
class FinalLock:
    workspace: str
    lock_id: str
    stale: bool


@dataclass
class Final:
    """What the store holds after the run."""

    versions: dict[str, list[StoredVersion]]  # per workspace, in the order written
    locks: list[FinalLock]
    verify_problems: list[str] = field(default_factory=list)


@dataclass
class Violation:
    kind: str
    workspace: str | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "workspace": self.workspace, "detail": self.detail}


MUTUAL_EXCLUSION = "mutual_exclusion"
ACK_LOST = "acknowledged_write_lost"
SERIAL_REGRESSION = "serial_regression"
STALE_READ = "stale_read"
OWN_LOCK_REFUSED = "own_lock_refused"
WRITE_REFUSED = "write_refused_under_lock"
UNLOCK_REFUSED = "unlock_refused"
LOCK_LEFT_HELD = "lock_left_held"
STORE_VERIFY = "stored_version_unreadable"


@dataclass
class Report:
    acknowledged_writes: int
    violations: list[Violation]

    def count(self, *kinds: str) -> int:
        return sum(1 for v in self.violations if v.kind in kinds)


def _acked(ops: list[Op]) -> dict[str, list[Op]]:
    writes: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.kind == "post" and op.status == 200 and op.ret is not None:
            writes[op.workspace].append(op)
    for group in writes.values():
        group.sort(key=lambda op: op.call)
    return writes


def _mutual_exclusion(ws: str, writes: list[Op]) -> list[Violation]:
    found = []
    latest: Op | None = None  # of the writes so far, the one answered last
    for op in writes:
        assert op.ret is not None
        if (
            latest is not None
            and latest.ret is not None
            and op.call < latest.ret
            and op.lock_id != latest.lock_id
        ):
            found.append(
                Violation(
                    MUTUAL_EXCLUSION,
                    ws,
                    f"write of serial {op.serial} under lock {op.lock_id} "
                    f"[{op.call:.3f}, {op.ret:.3f}] overlaps the write of serial "
                    f"{latest.serial} under lock {latest.lock_id} "
                    f"[{latest.call:.3f}, {latest.ret:.3f}]",
                )
            )
        if latest is None or (latest.ret or 0) < op.ret:
            latest = op
    return found


def _ordering(ws: str, writes: list[Op], reads: list[Op]) -> list[Violation]:
    """Writes acknowledged before another write (or a read) was sent bound it below."""
    found = []
    by_ack = sorted(writes, key=lambda op: op.ret or 0.0)
    floor: Op | None = None  # the highest serial acknowledged so far
    i = 0
    for later in sorted(writes + reads, key=lambda op: op.call):
        # An op is answered after it is sent, so it never bounds itself.
        while i < len(by_ack) and (by_ack[i].ret or 0.0) < later.call:
            if floor is None or (by_ack[i].serial or 0) > (floor.serial or 0):
                floor = by_ack[i]
            i += 1
        if floor is None or later.serial is None or floor.serial is None:
            continue
        if later.kind == "post" and later.serial <= floor.serial:
            found.append(
                Violation(
                    SERIAL_REGRESSION,
                    ws,
                    f"write of serial {later.serial} (lock {later.lock_id}) was acknowledged "
                    f"after serial {floor.serial} (lock {floor.lock_id}) had been",
                )
            )
        if later.kind == "get" and later.serial < floor.serial:
            found.append(
                Violation(
                    STALE_READ,
                    ws,
                    f"a read sent at {later.call:.3f} returned serial {later.serial}, older "
                    f"than serial {floor.serial} acknowledged at {floor.ret:.3f}",
                )
            )
    return found


def _stored(ws: str, versions: list[StoredVersion], writes: list[Op]) -> list[Violation]:
    found = []
    for before, after in zip(versions, versions[1:], strict=False):
        if after.serial <= before.serial:
            found.append(
                Violation(
                    SERIAL_REGRESSION,
                    ws,
                    f"stored serial {after.serial} was written after serial {before.serial}",
                )
            )
    by_serial = {v.serial: v for v in versions}
    for op in writes:
        stored = by_serial.get(op.serial or -1)
        if stored is None or stored.sha256 != op.sha256:
            what = "missing" if stored is None else f"stored with sha256 {stored.sha256[:12]}"
            found.append(
                Violation(
                    ACK_LOST,
                    ws,
                    f"acknowledged write of serial {op.serial} (lock {op.lock_id}, sha256 "
                    f"{(op.sha256 or '')[:12]}) is {what}",
                )
            )
    return found


def _protocol(ops: list[Op]) -> list[Violation]:
    found = []
    for op in ops:
        if op.kind == "lock" and op.status in (409, 423) and op.holder_id == op.lock_id:
            found.append(
                Violation(
                    OWN_LOCK_REFUSED,
                    op.workspace,
                    f"{op.client}'s LOCK {op.lock_id} answered {op.status} naming itself",
                )
            )
        if op.kind == "post" and op.status is not None and op.status != 200:
            found.append(
                Violation(
                    WRITE_REFUSED,
                    op.workspace,
                    f"{op.client}'s write of serial {op.serial} under its lock {op.lock_id} "
                    f"answered {op.status}",
                )
            )
        if op.kind == "unlock" and op.status is not None and op.status != 200:
            found.append(
                Violation(
                    UNLOCK_REFUSED,
                    op.workspace,
                    f"{op.client}'s UNLOCK of its lock {op.lock_id} answered {op.status}",
                )
            )
    return found


def check(ops: list[Op], final: Final) -> Report:
    """Every violation in ``ops`` and ``final``, in a stable order."""
    violations: list[Violation] = []
    writes = _acked(ops)
    reads: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.kind == "get" and op.status in (200, 204) and op.ret is not None:
            reads[op.workspace].append(op)
    for ws in sorted(set(writes) | set(reads) | set(final.versions)):
        violations += _mutual_exclusion(ws, writes.get(ws, []))
        violations += _ordering(ws, writes.get(ws, []), reads.get(ws, []))
        violations += _stored(ws, final.versions.get(ws, []), writes.get(ws, []))
    violations += _protocol(ops)
    for lock in final.locks:
        if not lock.stale:
            owner = next((op.client for op in ops if op.lock_id == lock.lock_id), "nobody")
            violations.append(
                Violation(
                    LOCK_LEFT_HELD,
                    lock.workspace,
                    f"lock {lock.lock_id} of {owner} is still held after the run and not stale",
                )
            )
    violations += [Violation(STORE_VERIFY, None, problem) for problem in final.verify_problems]
    return Report(sum(len(w) for w in writes.values()), violations)
