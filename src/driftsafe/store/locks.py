"""Locks and lock waiters: one row per held lock, a FIFO queue of waiting requests."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from driftsafe.errors import BadRequest, Conflict, NotFound
from driftsafe.store import schema
from driftsafe.store.database import StoreBase
from driftsafe.store.models import Actor, LockRecord, LockResult
from driftsafe.timestamps import rfc3339

# A waiter that has not refreshed its row for this long belongs to a dead request
# (client gone, server killed) and no longer holds its place in the queue.
WAITER_TTL = 5.0

LOCKINFO_FIELDS = ("ID", "Operation", "Info", "Who", "Version", "Created", "Path")
# The longest value each LockInfo field may have (its column's size; None: unbounded).
_FIELD_MAX = {"Operation": 100, "Who": 500, "Version": 50, "Created": 100}


# Built once (see sql.py).
_LOCK_BY_WORKSPACE = sa.select(schema.locks).where(schema.locks.c.workspace == sa.bindparam("ws"))
_LOCK_INSERT = schema.locks.insert()
_LOCK_DELETE = schema.locks.delete().where(schema.locks.c.workspace == sa.bindparam("ws"))
_A = schema.audit
# How far back in a workspace's releases an UNLOCK sent again is looked for: its first
# answer was lost moments ago, but other runs may have locked and released since.
RELEASES_LOOKED_AT = 100
# The newest releases of a workspace's lock (by holders or forced), from the audit log.
_LAST_RELEASES = (
    sa.select(_A.c.action, _A.c.at, _A.c.detail)
    .where(
        _A.c.workspace == sa.bindparam("ws"),
        _A.c.action.in_(("unlock", "force-unlock")),
        _A.c.outcome == "ok",
    )
    .order_by(_A.c.id.desc())
    .limit(RELEASES_LOOKED_AT)
)


def lock_from_row(row: Any) -> LockRecord:
    return LockRecord(
        workspace=row.workspace,
        id=row.id,
        operation=row.operation,
        who=row.who,
        info=row.info,
        version=row.version,
        created=row.created,
        path=row.path,
        token=row.token,
        remote_addr=row.remote_addr,
        acquired_at=row.acquired_at,
    )


def validate_lock_info(info: Any) -> dict[str, str]:
    """Terraform's LockInfo: an object with a non-empty string ``ID``."""
    if not isinstance(info, dict):
        raise BadRequest("lock body must be a LockInfo JSON object")
    lock_id = info.get("ID")
    if not isinstance(lock_id, str) or not lock_id or len(lock_id) > 100:
        raise BadRequest("LockInfo needs a string ID (at most 100 characters)")
    out = {}
    for key in LOCKINFO_FIELDS:
        value = info.get(key, "")
        text = value if isinstance(value, str) else str(value)
        limit = _FIELD_MAX.get(key)
        if limit is not None and len(text) > limit:
            raise BadRequest(f"LockInfo {key} is longer than {limit} characters")
        if "\x00" in text:
            # PostgreSQL text cannot hold NUL, and no Terraform sends one.
            raise BadRequest(f"LockInfo {key} contains a NUL character")
        out[key] = text
    if not out["Created"]:
        # Terraform parses Created as a time when it shows a holder: never send "".
        out["Created"] = rfc3339(time.time())
    return out


def _same_lock(holder: LockRecord, info: dict[str, str], created_given: bool, actor: Actor) -> bool:
    """``info`` (validated) from ``actor`` is the holder's own LockInfo sent again: the
    same token, ID and fields. ``Created`` counts only when it was sent (an empty one
    was filled in with the time of the first request)."""
    return (
        holder.token == actor.token
        and holder.id == info["ID"]
        and holder.operation == info["Operation"]
        and holder.who == info["Who"]
        and holder.info == info["Info"]
        and holder.version == info["Version"]
        and holder.path == info["Path"]
        and (not created_given or holder.created == info["Created"])
    )


class LocksMixin(StoreBase):
    def _lock_row(self, conn: Connection, workspace: str) -> LockRecord | None:
        row = conn.execute(_LOCK_BY_WORKSPACE, {"ws": workspace}).first()
        return lock_from_row(row) if row else None

    def get_lock(self, workspace: str) -> LockRecord | None:
        with self.read_tx() as conn:
            return self._lock_row(conn, workspace)

    def acquire_lock(
        self, workspace: str, info: dict[str, Any], actor: Actor, *, waiter: int | None = None
    ) -> LockResult | None:
        """Take the lock. Returns the holder when held; ``None`` when the lock is free
        but ``waiter`` is not first in the queue (it must keep waiting).

        The holder's own LOCK sent again (same token, ID and LockInfo: a client that
        lost the first answer and retried) is acquired, not held: it is audited as a
        retry and answered with ``retry`` set."""
        created_given = isinstance(info, dict) and bool(info.get("Created"))
        info = validate_lock_info(info)
        now = time.time()
        with self.write_tx() as conn:
            self.hold_workspace(conn, workspace, now)
            holder = self._lock_row(conn, workspace)
            if holder is not None and _same_lock(holder, info, created_given, actor):
                self.audit_in(
                    conn,
                    "lock",
                    workspace,
                    actor,
                    "retry",
                    {"id": holder.id, "who": holder.who, "operation": holder.operation},
                    now=now,
                )
                return LockResult(True, dataclasses.replace(holder, retry=True))
            if holder is not None:
                if waiter is None:  # a queued waiter re-checks often: audit only its end
                    self.audit_in(
                        conn,
                        "lock",
                        workspace,
                        actor,
                        "held",
                        {
                            "id": info["ID"],
                            "who": info["Who"],
                            "holder_id": holder.id,
                            "holder_who": holder.who,
                        },
                        now=now,
                    )
                return LockResult(False, holder)
            if waiter is not None:
                head = self._queue_head(conn, workspace, now)
                if head is not None and head != waiter:
                    return None
                conn.execute(schema.lock_waiters.delete().where(schema.lock_waiters.c.id == waiter))
            record = LockRecord(
                workspace=workspace,
                id=info["ID"],
                operation=info["Operation"],
                who=info["Who"],
                info=info["Info"],
                version=info["Version"],
                created=info["Created"],
                path=info["Path"],
                token=actor.token,
                remote_addr=actor.remote_addr,
                acquired_at=now,
            )
            conn.execute(
                _LOCK_INSERT,
                {
                    "workspace": workspace,
                    "id": record.id,
                    "operation": record.operation,
                    "who": record.who,
                    "info": record.info,
                    "version": record.version,
                    "created": record.created,
                    "path": record.path,
                    "token": record.token,
                    "remote_addr": record.remote_addr,
                    "acquired_at": now,
                },
            )
            self.audit_in(
                conn,
                "lock",
                workspace,
                actor,
                "ok",
                {"id": record.id, "who": record.who, "operation": record.operation},
                now=now,
            )
            return LockResult(True, record)

    def release_lock(
        self,
        workspace: str,
        lock_id: str | None,
        actor: Actor,
        *,
        max_age: float | None = None,
    ) -> LockRecord:
        """Release by the holder's ``lock_id``; ``None`` is a force-unlock (the caller
        checked admin). ``max_age``: refuse to break a lock younger than that.

        An UNLOCK sent again by the holder after its lock was released (its first
        answer lost) is answered as released, with ``retry`` set: the audit log must
        show this ID released by its own unlock, from this token (not force-broken)."""
        action = "unlock" if lock_id is not None else "force-unlock"
        now = time.time()
        try:
            with self.write_tx() as conn:
                self.hold_workspace(conn, workspace, now)
                holder = self._lock_row(conn, workspace)
                if lock_id is not None and (holder is None or holder.id != lock_id):
                    again = self._released_by(conn, workspace, lock_id, actor)
                    if again is not None:
                        record, released_at = again
                        detail: dict[str, Any] = {
                            "id": lock_id,
                            "who": record.who,
                            "released_at": released_at,
                        }
                        self.audit_in(conn, action, workspace, actor, "retry", detail, now=now)
                        return record
                if holder is None:
                    raise NotFound(f"workspace {workspace!r} is not locked")
                if lock_id is not None and holder.id != lock_id:
                    raise Conflict(
                        f"lock {lock_id} does not hold {workspace!r}: it is held by "
                        f"{holder.who} (lock {holder.id})",
                        detail=holder.lock_info(),
                    )
                age = now - holder.acquired_at
                if max_age is not None and age < max_age:
                    raise Conflict(
                        f"the lock on {workspace!r} is {age:.0f}s old, younger than "
                        f"{max_age:.0f}s: not stale, not released",
                        detail=holder.lock_info(),
                    )
                conn.execute(_LOCK_DELETE, {"ws": workspace})
                detail = {
                    "id": holder.id,
                    "who": holder.who,
                    "operation": holder.operation,
                    "held_seconds": round(age, 3),
                    "holder_token": holder.token,
                }
                self.audit_in(conn, action, workspace, actor, "ok", detail, now=now)
                self.notify_in(conn, workspace)
        except (NotFound, Conflict) as exc:
            self.record(
                action, workspace, actor, "rejected", {"id": lock_id, "reason": exc.message}
            )
            raise
        self.notify_local(workspace)
        return holder

    def _released_by(
        self, conn: Connection, workspace: str, lock_id: str, actor: Actor
    ) -> tuple[LockRecord, str] | None:
        """The lock ``lock_id`` as released, and when, if its release (among the
        workspace's recent ones) was its holder ``actor`` unlocking it; None when it
        was broken by an admin, or never held. Others may have locked and released
        since: the holder's lock is still gone by its own hand."""
        for row in conn.execute(_LAST_RELEASES, {"ws": workspace}):
            detail = json.loads(row.detail)
            if detail.get("id") == lock_id:
                break
        else:
            return None
        if row.action != "unlock" or detail.get("holder_token") != actor.token:
            return None
        held = float(detail.get("held_seconds") or 0.0)
        return LockRecord(
            workspace=workspace,
            id=lock_id,
            operation=str(detail.get("operation") or ""),
            who=str(detail.get("who") or ""),
            info="",
            version="",
            created="",
            path="",
            token=actor.token,
            remote_addr=actor.remote_addr,
            acquired_at=row.at - held,
            retry=True,
        ), rfc3339(row.at)

    # waiters ------------------------------------------------------------------

    def _queue_head(self, conn: Connection, workspace: str, now: float) -> int | None:
        w = schema.lock_waiters
        head = conn.execute(
            sa.select(w.c.id)
            .where(
                w.c.workspace == workspace, w.c.seen_at >= now - WAITER_TTL, w.c.expires_at > now
            )
            .order_by(w.c.id)
            .limit(1)
        ).scalar()
        return int(head) if head is not None else None

    def add_waiter(self, workspace: str, timeout: float) -> int:
        now = time.time()
        w = schema.lock_waiters
        with self.write_tx() as conn:
            # Dead entries of crashed servers are harmless but would pile up.
            conn.execute(
                w.delete().where(sa.or_(w.c.expires_at < now - 60, w.c.seen_at < now - 60))
            )
            new_id = conn.execute(
                w.insert().values(
                    workspace=workspace, created_at=now, seen_at=now, expires_at=now + timeout
                )
            ).inserted_primary_key
            assert new_id is not None
            return int(new_id[0])

    def touch_waiter(self, waiter: int) -> None:
        with self.write_tx() as conn:
            conn.execute(
                schema.lock_waiters.update()
                .where(schema.lock_waiters.c.id == waiter)
                .values(seen_at=time.time())
            )

    def remove_waiter(self, waiter: int) -> None:
        workspace = None
        with self.write_tx() as conn:
            workspace = conn.execute(
                sa.select(schema.lock_waiters.c.workspace).where(schema.lock_waiters.c.id == waiter)
            ).scalar()
            conn.execute(schema.lock_waiters.delete().where(schema.lock_waiters.c.id == waiter))
            if workspace is not None:
                # The next waiter may now be first in line for a free lock.
                self.notify_in(conn, workspace)
        if workspace is not None:
            self.notify_local(workspace)
