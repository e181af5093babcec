"""The fault run's checker catches each kind of violation in a planted history, and
finds none in a clean one (so a clean fault run means something)."""

from __future__ import annotations

import faultcheck as fc
from faultcheck import Final, FinalLock, Op, StoredVersion


def write(client: str, lock: str, serial: int, call: float, ret: float, sha: str = "") -> Op:
    return Op(
        client, "post", "ws", lock, call, ret, 200, 1, serial, sha or f"sha{serial}", None, True
    )


def read(serial: int, call: float, ret: float) -> Op:
    return Op("reader", "get", "ws", "R", call, ret, 200, 1, serial)


def stored(*serials: int) -> dict[str, list[StoredVersion]]:
    return {"ws": [StoredVersion(s, f"sha{s}", f"t{n}") for n, s in enumerate(serials)]}


def clean_history() -> list[Op]:
    return [
        Op("a", "lock", "ws", "A", 0.0, 0.1, 200, 1),
        read(0, 0.1, 0.2),
        write("a", "A", 1, 0.2, 0.3),
        Op("a", "unlock", "ws", "A", 0.3, 0.4, 200, 2),
        Op("b", "lock", "ws", "B", 0.0, 0.5, 200, 1),
        read(1, 0.5, 0.6),
        write("b", "B", 2, 0.6, 0.7),
        write("b", "B", 2, 0.7, 0.8),  # a replay of the same write: same lock, fine
        Op("b", "unlock", "ws", "B", 0.8, 0.9, 200, 1),
        # No answer at all (gave up): never counts as acknowledged.
        Op("c", "post", "ws", "C", 1.0, 1.5, None, 9, 3, "sha-never"),
        # A clean-up unlock after an unknown LOCK may find nothing: not a violation.
        Op("c", "cleanup", "ws", "C", 1.5, 1.6, 404, 1),
    ]


def kinds(report: fc.Report) -> list[str]:
    return sorted(v.kind for v in report.violations)


def test_a_clean_history_has_no_violations() -> None:
    report = fc.check(clean_history(), Final(stored(1, 2), []))
    assert report.violations == []
    assert report.acknowledged_writes == 3


def test_overlapping_writes_under_two_locks_break_mutual_exclusion() -> None:
    ops = [write("a", "A", 1, 0.0, 1.0), write("b", "B", 2, 0.5, 0.6)]
    report = fc.check(ops, Final(stored(1, 2), []))
    assert kinds(report) == [fc.MUTUAL_EXCLUSION]
    assert "lock B" in report.violations[0].detail and "lock A" in report.violations[0].detail
    # The same two writes one after the other are fine.
    apart = [write("a", "A", 1, 0.0, 0.4), write("b", "B", 2, 0.5, 0.6)]
    assert fc.check(apart, Final(stored(1, 2), [])).violations == []


def test_an_acknowledged_write_missing_or_changed_is_lost() -> None:
    ops = [write("a", "A", 1, 0.0, 0.1), write("b", "B", 2, 0.2, 0.3)]
    missing = fc.check(ops, Final(stored(1), []))
    assert kinds(missing) == [fc.ACK_LOST] and "missing" in missing.violations[0].detail
    changed = {"ws": [StoredVersion(1, "sha1", "t0"), StoredVersion(2, "other", "t1")]}
    assert kinds(fc.check(ops, Final(changed, []))) == [fc.ACK_LOST]


def test_serials_must_increase_in_the_store_and_between_acknowledged_writes() -> None:
    backwards = fc.check([], Final(stored(1, 3, 2), []))
    assert kinds(backwards) == [fc.SERIAL_REGRESSION]
    ops = [write("a", "A", 5, 0.0, 0.1), write("b", "B", 4, 0.2, 0.3)]
    assert fc.SERIAL_REGRESSION in kinds(fc.check(ops, Final(stored(4, 5), [])))


def test_a_read_older_than_an_acknowledged_write_is_stale() -> None:
    ops = [write("a", "A", 1, 0.0, 0.1), write("a", "A", 2, 0.2, 0.3), read(1, 0.4, 0.5)]
    report = fc.check(ops, Final(stored(1, 2), []))
    assert kinds(report) == [fc.STALE_READ]
    # A read sent before the write was acknowledged may return either.
    concurrent = [write("a", "A", 1, 0.0, 0.1), write("a", "A", 2, 0.2, 0.5), read(1, 0.3, 0.6)]
    assert fc.check(concurrent, Final(stored(1, 2), [])).violations == []


def test_protocol_answers_a_holder_must_never_get() -> None:
    ops = [
        Op("a", "lock", "ws", "A", 0.0, 0.1, 423, 2, holder_id="A"),
        Op("a", "lock", "ws", "A2", 0.0, 0.1, 423, 1, holder_id="B"),  # someone else's: fine
        Op("b", "post", "ws", "B", 0.2, 0.3, 409, 1, 1, "sha1"),
        Op("b", "unlock", "ws", "B", 0.3, 0.4, 404, 2),
    ]
    report = fc.check(ops, Final({}, []))
    assert kinds(report) == sorted([fc.OWN_LOCK_REFUSED, fc.WRITE_REFUSED, fc.UNLOCK_REFUSED])


def test_a_lock_left_held_is_a_violation_unless_stale() -> None:
    ops = [Op("a", "lock", "ws", "A", 0.0, 0.1, 200, 1)]
    left = fc.check(ops, Final({}, [FinalLock("ws", "A", stale=False)]))
    assert kinds(left) == [fc.LOCK_LEFT_HELD] and "of a" in left.violations[0].detail
    assert fc.check(ops, Final({}, [FinalLock("ws", "A", stale=True)])).violations == []


def test_an_unreadable_stored_version_is_a_violation() -> None:
    final = Final(stored(1), [], verify_problems=["version ws@1: does not match its sha256"])
    report = fc.check([], final)
    assert kinds(report) == [fc.STORE_VERIFY]
    assert report.count(fc.STORE_VERIFY) == 1
