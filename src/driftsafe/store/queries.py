"""The web console's reads (and its sessions): paginated by key, never by offset, and
answered from metadata columns and the schema 5 tables, so a page costs the same on
the first page as deep in 20,000 versions, and never decodes a state per row."""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from driftsafe.errors import Conflict, NotFound
from driftsafe.state import change_counts
from driftsafe.store import schema
from driftsafe.store.locks import lock_from_row
from driftsafe.store.models import Actor, AuditEvent, LockRecord, VersionRecord
from driftsafe.store.sessions import SessionsMixin
from driftsafe.store.versions import PENDING, VersionsMixin, version_from_row

_V, _W, _L = schema.versions, schema.workspaces, schema.locks
_D, _A, _I = schema.drift_reports, schema.audit, schema.version_info
_S, _T = schema.ui_sessions, schema.tokens

_META = [c for c in _V.c if c.name not in ("body", "nonce", "key_id", "id", "codec", "base_serial")]
_NO_FINDINGS = ("[]", PENDING)
_INFO = ("terraform_version", "added", "changed", "removed", "previous")


def _info_join(versions: Any) -> Any:
    return sa.and_(_I.c.workspace == versions.c.workspace, _I.c.serial == versions.c.serial)


def _drift_summary(report_id: int, at: float, text: str) -> DriftSummary:
    try:
        report = json.loads(text)
    except ValueError:
        report = {}
    report = report if isinstance(report, dict) else {}
    found = report.get("findings")
    status = report.get("status")
    return DriftSummary(
        int(report_id),
        float(at),
        status if isinstance(status, str) else "unknown",
        len(found) if isinstance(found, list) else 0,
    )


class _Head(msgspec.Struct):
    terraform_version: Any = ""


def _terraform_version(body: bytes | bytearray) -> str:
    try:
        value = msgspec.json.decode(body, type=_Head).terraform_version
    except msgspec.DecodeError:
        return ""
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class VersionInfo:
    """What a version changed against the one before it (schema 5, computed lazily)."""

    terraform_version: str
    added: int
    changed: int
    removed: int
    previous: int | None


@dataclass(frozen=True)
class VersionRow:
    version: VersionRecord
    info: VersionInfo | None


@dataclass(frozen=True)
class DriftSummary:
    id: int
    at: float
    status: str
    findings: int


@dataclass(frozen=True)
class WorkspaceRow:
    name: str
    latest: VersionRecord | None
    info: VersionInfo | None
    lock: LockRecord | None
    drift: DriftSummary | None


@dataclass(frozen=True)
class Page:
    """One page of a keyset-paginated list, in the list's order. ``next_key`` is the
    key to pass as ``next`` for the following page, ``prev_key`` as ``prev`` for the
    page before (None: there is none)."""

    rows: list[Any]
    total: int
    next_key: Any = None
    prev_key: Any = None


def _keyset(
    conn: Connection,
    query: Any,
    key: Any,
    *,
    descending: bool,
    nxt: Any,
    prv: Any,
    limit: int,
) -> tuple[list[Any], bool, bool]:
    """(rows, has_next, has_prev) of the page after ``nxt`` or before ``prv``."""
    if prv is not None:
        query = query.where(key > prv if descending else key < prv)
        query = query.order_by(key.asc() if descending else key.desc())
    else:
        if nxt is not None:
            query = query.where(key < nxt if descending else key > nxt)
        query = query.order_by(key.desc() if descending else key.asc())
    rows = list(conn.execute(query.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    if prv is not None:
        rows.reverse()
        return rows, True, more
    return rows, more, nxt is not None


@dataclass(frozen=True)
class AuditFilter:
    workspace: str | None = None
    action: str | None = None
    token: str | None = None
    since: float | None = None
    until: float | None = None
    # The reader's workspace glob: events of other workspaces (and of none, for a
    # limited token) are never returned.
    glob: str = "*"
    extra: dict[str, str] = field(default_factory=dict)


def glob_to_like(glob: str) -> str | None:
    """An fnmatch glob as a LIKE pattern (escape ``\\``), or None when it uses ``[]``."""
    if "[" in glob:
        return None
    out = []
    for ch in glob:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch in "%_\\":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _info(row: Any) -> VersionInfo | None:
    if getattr(row, "terraform_version", None) is None:
        return None
    return VersionInfo(
        row.terraform_version,
        int(row.added),
        int(row.changed),
        int(row.removed),
        int(row.previous) if row.previous is not None else None,
    )


class ConsoleMixin(SessionsMixin, VersionsMixin):
    """Console reads. Every method takes the reader's workspace glob where it lists."""

    def _drift_status(self) -> Any:
        if self.is_postgres:
            return sa.cast(_D.c.report, postgresql.JSON)["status"].astext
        return sa.func.json_extract(_D.c.report, "$.status")

    # workspaces -------------------------------------------------------------------

    def console_workspaces(
        self,
        glob: str,
        *,
        search: str = "",
        locked: bool = False,
        drifted: bool = False,
        findings: bool = False,
        nxt: str | None = None,
        prv: str | None = None,
        limit: int = 50,
        names: Sequence[str] | None = None,
    ) -> Page:
        """Workspaces the glob covers that hold a version or a lock, by name."""
        has_version = sa.exists().where(_V.c.workspace == _W.c.name)
        has_lock = sa.exists().where(_L.c.workspace == _W.c.name)
        where: list[Any] = [sa.or_(has_version, has_lock)]
        if names is not None:
            where.append(_W.c.name.in_(list(names)))
        if search:
            escaped = "".join("\\" + c if c in "%_\\" else c for c in search.lower())
            where.append(sa.func.lower(_W.c.name).like(f"%{escaped}%", escape="\\"))
        if locked:
            where.append(has_lock)
        if findings:
            latest_findings = (
                sa.select(_V.c.findings)
                .where(_V.c.workspace == _W.c.name)
                .order_by(_V.c.serial.desc())
                .limit(1)
                .scalar_subquery()
            )
            where.append(latest_findings.not_in(_NO_FINDINGS))
        if drifted:
            status = (
                sa.select(self._drift_status())
                .where(_D.c.workspace == _W.c.name)
                .order_by(_D.c.id.desc())
                .limit(1)
                .scalar_subquery()
            )
            where.append(status == "drift")
        like = glob_to_like(glob)
        with self.read_tx() as conn:
            if glob == "*":
                pass
            elif like is not None:
                where.append(_W.c.name.like(like, escape="\\"))
            else:  # a glob LIKE cannot express ([...]): match the names here
                listed = conn.execute(sa.select(_W.c.name).where(*where)).scalars()
                where.append(_W.c.name.in_([n for n in listed if fnmatch.fnmatchcase(n, glob)]))
            total = conn.execute(sa.select(sa.func.count()).select_from(_W).where(*where))
            count = int(total.scalar_one())
            found, has_next, has_prev = _keyset(
                conn,
                sa.select(_W.c.name).where(*where),
                _W.c.name,
                descending=False,
                nxt=nxt,
                prv=prv,
                limit=limit,
            )
            page = [r[0] for r in found]
            rows = self._workspace_rows(conn, page)
        return Page(
            rows,
            count,
            next_key=page[-1] if page and has_next else None,
            prev_key=page[0] if page and has_prev else None,
        )

    def _workspace_rows(self, conn: Connection, names: list[str]) -> list[WorkspaceRow]:
        if not names:
            return []
        # The newest serial of each, one backward index step per workspace (a max() over
        # a workspace's rows, as PostgreSQL plans it, would read all 20,000 of them).
        newest = (
            sa.select(_V.c.serial)
            .where(_V.c.workspace == _W.c.name)
            .order_by(_V.c.serial.desc())
            .limit(1)
            .scalar_subquery()
        )
        keys = [
            (name, int(serial))
            for name, serial in conn.execute(
                sa.select(_W.c.name, newest).where(_W.c.name.in_(names))
            )
            if serial is not None
        ]
        latest = {}
        if keys:
            versions = conn.execute(
                sa.select(*_META, *[_I.c[n] for n in _INFO])
                .select_from(_V.outerjoin(_I, _info_join(_V)))
                .where(sa.tuple_(_V.c.workspace, _V.c.serial).in_(keys))
            )
            latest = {row.workspace: row for row in versions}
        locks = {
            row.workspace: lock_from_row(row)
            for row in conn.execute(sa.select(_L).where(_L.c.workspace.in_(names)))
        }
        newest_reports = (
            sa.select(sa.func.max(_D.c.id))
            .where(_D.c.workspace.in_(names))
            .group_by(_D.c.workspace)
        )
        drift = {
            row.workspace: _drift_summary(row.id, row.created_at, row.report)
            for row in conn.execute(sa.select(_D).where(_D.c.id.in_(newest_reports)))
        }
        return [
            WorkspaceRow(
                name,
                version_from_row(latest[name]) if name in latest else None,
                _info(latest[name]) if name in latest else None,
                locks.get(name),
                drift.get(name),
            )
            for name in names
        ]

    def console_workspace(self, glob: str, name: str) -> WorkspaceRow:
        """One workspace the glob covers, or NotFound (whether it exists or not)."""
        page = self.console_workspaces(glob, names=[name], limit=1)
        if not page.rows:
            raise NotFound(f"no workspace {name!r}")
        row: WorkspaceRow = page.rows[0]
        return row

    # versions --------------------------------------------------------------------

    def console_versions(
        self,
        workspace: str,
        *,
        nxt: int | None = None,
        prv: int | None = None,
        limit: int = 50,
    ) -> Page:
        """Versions newest first; ``nxt``/``prv`` are serials (exclusive)."""
        query = (
            sa.select(*_META, *[_I.c[n] for n in _INFO])
            .select_from(_V.outerjoin(_I, _info_join(_V)))
            .where(_V.c.workspace == workspace)
        )
        with self.read_tx() as conn:
            found, has_next, has_prev = _keyset(
                conn, query, _V.c.serial, descending=True, nxt=nxt, prv=prv, limit=limit
            )
            total = conn.execute(
                sa.select(sa.func.count()).select_from(_V).where(_V.c.workspace == workspace)
            ).scalar_one()
        rows = [VersionRow(version_from_row(r), _info(r)) for r in found]
        return Page(
            rows,
            int(total),
            next_key=rows[-1].version.serial if rows and has_next else None,
            prev_key=rows[0].version.serial if rows and has_prev else None,
        )

    def version_info(self, workspace: str, serial: int) -> VersionInfo:
        """The info of a version, computed (decoding it and the one before) and kept
        the first time it is asked for."""
        with self.read_tx() as conn:
            row = conn.execute(
                sa.select(_I).where(_I.c.workspace == workspace, _I.c.serial == serial)
            ).first()
            if row is not None:
                found = _info(row)
                assert found is not None
                return found
            previous = conn.execute(
                sa.select(sa.func.max(_V.c.serial)).where(
                    _V.c.workspace == workspace, _V.c.serial < serial
                )
            ).scalar()
        tf_version = _terraform_version(self.get_version(workspace, serial)[1])
        before = None
        if previous is not None:
            older = int(previous)

            def before() -> bytes:
                return self.get_version(workspace, older)[1]

        added, changed, removed = change_counts(
            before, lambda: self.get_version(workspace, serial)[1]
        )
        info = VersionInfo(tf_version, added, changed, removed, previous)
        with self.write_tx() as conn:
            conn.execute(
                self.insert(_I).on_conflict_do_nothing(),
                {
                    "workspace": workspace,
                    "serial": serial,
                    "terraform_version": tf_version,
                    "added": added,
                    "changed": changed,
                    "removed": removed,
                    "previous": previous,
                    "computed_at": time.time(),
                },
            )
        return info

    # locks -----------------------------------------------------------------------

    def force_unlock(self, workspace: str, lock_id: str, actor: Actor) -> LockRecord:
        """Break the lock on ``workspace`` only if ``lock_id`` (typed by an admin) is
        still its holder's, in one transaction: a lock taken meanwhile by another run
        is never broken by a confirmation meant for the old one. Audited as a
        force-unlock; fencing then refuses the old holder's writes."""
        now = time.time()
        try:
            with self.write_tx() as conn:
                self.hold_workspace(conn, workspace, now)
                holder = self._lock_row(conn, workspace)
                if holder is None:
                    raise NotFound(f"workspace {workspace!r} is not locked")
                if holder.id != lock_id:
                    raise Conflict(
                        f"the typed ID {lock_id!r} is not the ID of the lock on {workspace!r} "
                        f"(held by {holder.who}, lock {holder.id}): nothing released"
                    )
                conn.execute(_L.delete().where(_L.c.workspace == workspace))
                detail = {
                    "id": holder.id,
                    "who": holder.who,
                    "operation": holder.operation,
                    "held_seconds": round(now - holder.acquired_at, 3),
                    "holder_token": holder.token,
                    "via": "console",
                }
                self.audit_in(conn, "force-unlock", workspace, actor, "ok", detail, now=now)
                self.notify_in(conn, workspace)
        except (NotFound, Conflict) as exc:
            detail = {"id": lock_id, "reason": exc.message, "via": "console"}
            self.record("force-unlock", workspace, actor, "rejected", detail)
            raise
        self.notify_local(workspace)
        return holder

    # audit and drift ----------------------------------------------------------------

    def console_audit(
        self, where: AuditFilter, *, nxt: int | None = None, prv: int | None = None, limit: int = 50
    ) -> Page:
        """Audit events newest first, filtered; keyed by event id."""
        conditions: list[Any] = []
        if where.glob != "*":
            like = glob_to_like(where.glob)
            conditions.append(_A.c.workspace.is_not(None))
            if like is not None:
                conditions.append(_A.c.workspace.like(like, escape="\\"))
        if where.workspace is not None:
            conditions.append(_A.c.workspace == where.workspace)
        if where.action:
            conditions.append(_A.c.action == where.action)
        if where.token:
            conditions.append(_A.c.token == where.token)
        if where.since is not None:
            conditions.append(_A.c.at >= where.since)
        if where.until is not None:
            conditions.append(_A.c.at < where.until)
        query = sa.select(_A).where(*conditions)
        with self.read_tx() as conn:
            found, has_next, has_prev = _keyset(
                conn, query, _A.c.id, descending=True, nxt=nxt, prv=prv, limit=limit
            )
        events = [audit_event(r) for r in found]
        if where.glob != "*" and glob_to_like(where.glob) is None:
            events = [e for e in events if fnmatch.fnmatchcase(e.workspace or "", where.glob)]
        return Page(
            events,
            -1,  # not counted: an audit log grows without bound
            next_key=found[-1].id if found and has_next else None,
            prev_key=found[0].id if found and has_prev else None,
        )

    def audit_actions(self) -> list[str]:
        with self.read_tx() as conn:
            return list(
                conn.execute(sa.select(_A.c.action).distinct().order_by(_A.c.action)).scalars()
            )

    def lock_events(self, workspace: str, since: float) -> list[AuditEvent]:
        """Lock and unlock events of ``workspace`` since ``since`` (oldest first), and
        the last one before it (so a lock held across ``since`` has its start)."""
        kinds = _A.c.action.in_(("lock", "unlock", "force-unlock"))
        base = sa.select(_A).where(_A.c.workspace == workspace, kinds, _A.c.outcome == "ok")
        with self.read_tx() as conn:
            recent = list(conn.execute(base.where(_A.c.at >= since).order_by(_A.c.id)))
            before = conn.execute(
                base.where(_A.c.at < since).order_by(_A.c.id.desc()).limit(1)
            ).first()
        return [audit_event(r) for r in ([before] if before is not None else []) + recent]

    def last_write(self, workspace: str, lock_id: str) -> float | None:
        """When the holder of ``lock_id`` last wrote ``workspace`` (from the audit log)."""
        with self.read_tx() as conn:
            rows = conn.execute(
                sa.select(_A.c.at, _A.c.detail)
                .where(_A.c.workspace == workspace, _A.c.action == "write", _A.c.outcome == "ok")
                .order_by(_A.c.id.desc())
                .limit(20)
            )
            for at, detail in rows:
                if json.loads(detail).get("lock_id") == lock_id:
                    return float(at)
        return None

    def drift_history(self, workspace: str, limit: int = 200) -> list[DriftSummary]:
        """The stored drift reports of ``workspace``, newest first, summarized."""
        query = (
            sa.select(_D.c.id, _D.c.created_at, _D.c.report)
            .where(_D.c.workspace == workspace)
            .order_by(_D.c.id.desc())
            .limit(limit)
        )
        with self.read_tx() as conn:
            return [_drift_summary(r.id, r.created_at, r.report) for r in conn.execute(query)]


def audit_event(row: Any) -> AuditEvent:
    """An ``ds_audit`` row as the record the store hands out."""
    return AuditEvent(
        id=row.id,
        at=row.at,
        action=row.action,
        workspace=row.workspace,
        token=row.token,
        remote_addr=row.remote_addr,
        outcome=row.outcome,
        detail=json.loads(row.detail),
    )
