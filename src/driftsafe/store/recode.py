"""Re-encoding stored bodies: versions written before schema 6 into keyframes and
deltas (resumable, batch by batch), and every body under a new key (rotation)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from driftsafe.errors import StoreError
from driftsafe.store import codec, schema
from driftsafe.store.crypto import Cipher
from driftsafe.store.versions import VERSION_HEAD, VersionsMixin, check_sha

log = logging.getLogger("driftsafe.store")

# One batch is one transaction: at most this many versions, and at most this many
# bytes of plaintext (the batch's bodies are decoded one at a time, so memory stays
# at one body; the bound keeps each transaction, and the writers it holds up, short).
BATCH_ROWS = 200
BATCH_BYTES = 64 * 1024 * 1024

# Two servers starting together on PostgreSQL take turns, batch by batch.
_RECODE_LOCK = 7316022

_META = schema.meta
_V = schema.versions


@dataclass
class RecodeProgress:
    """Where the schema 6 re-encoding stands. ``skipped`` lists versions that could not
    be decoded (left as they were; ``driftsafe store verify`` names them too)."""

    finished: bool
    done: int = 0
    remaining: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "finished": self.finished,
            "done": self.done,
            "remaining": self.remaining,
            "skipped": self.skipped,
        }


def _load(conn: Connection) -> dict[str, Any] | None:
    value = conn.execute(sa.select(_META.c.value).where(_META.c.key == schema.RECODE_KEY)).scalar()
    return None if value is None else dict(json.loads(value))


def _remaining(conn: Connection, progress: dict[str, Any]) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                _V.c.id > progress["after_id"], _V.c.id <= progress["upto_id"]
            )
        ).scalar_one()
    )


def recode_progress(store: VersionsMixin) -> RecodeProgress:
    with store.read_tx() as conn:
        progress = _load(conn)
        if progress is None:
            return RecodeProgress(finished=True)
        return RecodeProgress(
            False, progress["done"], _remaining(conn, progress), list(progress["skipped"])
        )


def _recode_batch(
    store: VersionsMixin, conn: Connection, progress: dict[str, Any], rows: int, limit: int
) -> int:
    """Re-encode the next batch; returns how many rows it covered (0: nothing left)."""
    candidates = conn.execute(
        sa.select(_V.c.id, _V.c.workspace, _V.c.size)
        .where(_V.c.id > progress["after_id"], _V.c.id <= progress["upto_id"])
        .order_by(_V.c.id)
        .limit(rows)
    ).all()
    batch: list[Any] = []
    total = 0
    for candidate in candidates:
        if batch and total + int(candidate.size) > limit:
            break
        batch.append(candidate)
        total += int(candidate.size)
    if not batch:
        return 0
    now = time.time()
    # Hold each workspace, as writers do (in a fixed order): no write or retention of
    # these workspaces interleaves with the batch.
    for workspace in sorted({c.workspace for c in batch}):
        store.hold_workspace(conn, workspace, now)
    for candidate in batch:
        row = conn.execute(VERSION_HEAD.where(_V.c.id == candidate.id)).first()
        if row is None or row.codec != codec.RAW:
            continue  # pruned by retention meanwhile
        what = f"version {row.serial} of {row.workspace!r}"
        try:
            stored = store.version_body(conn, row)
            plain = store.cipher.decrypt(row.nonce, stored, row.workspace, row.key_id)
            del stored
            check_sha(plain, row.sha256, what)
        except StoreError as exc:
            log.error("re-encoding: %s is left as it is: %s", what, exc.message)
            progress["skipped"].append(
                {"workspace": row.workspace, "serial": int(row.serial), "error": exc.message}
            )
            continue
        sealed = store.seal(row.workspace, plain)
        del plain
        kind, base, nonce, body = store.encode(conn, row.workspace, int(row.serial), sealed, now)
        conn.execute(
            _V.update()
            .where(_V.c.id == row.id)
            .values(
                codec=kind, base_serial=base, key_id=store.cipher.key_id, nonce=nonce, body=body
            )
        )
    progress["after_id"] = int(batch[-1].id)
    progress["done"] += len(batch)
    return len(batch)


def recode_versions(
    store: VersionsMixin,
    *,
    batch_rows: int = BATCH_ROWS,
    batch_bytes: int = BATCH_BYTES,
    max_batches: int | None = None,
    on_batch: Callable[[RecodeProgress], None] | None = None,
) -> RecodeProgress:
    """Re-encode the versions written before schema 6, one transaction per batch, with
    the progress recorded in the same transaction: interrupted at any point (a crash,
    ``max_batches``), the next call resumes after the last committed batch."""
    batches = 0
    while max_batches is None or batches < max_batches:
        with store.write_tx() as conn:
            if store.is_postgres:
                conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_RECODE_LOCK})"))
            progress = _load(conn)
            if progress is None:
                return RecodeProgress(finished=True)
            covered = _recode_batch(store, conn, progress, batch_rows, batch_bytes)
            where = _META.c.key == schema.RECODE_KEY
            if covered == 0:
                conn.execute(_META.delete().where(where))
                result = RecodeProgress(True, progress["done"], 0, list(progress["skipped"]))
            else:
                conn.execute(_META.update().where(where).values(value=json.dumps(progress)))
                result = RecodeProgress(
                    False, progress["done"], _remaining(conn, progress), list(progress["skipped"])
                )
        batches += 1
        if on_batch is not None:
            on_batch(result)
        if result.finished:
            if result.done:
                log.warning(
                    "re-encoded %d versions into keyframes and deltas%s",
                    result.done,
                    f" ({len(result.skipped)} unreadable, left as they were)"
                    if result.skipped
                    else "",
                )
            return result
        log.warning(
            "re-encoding versions into keyframes and deltas: %d done, %d to go",
            result.done,
            result.remaining,
        )
    return recode_progress(store)


def reencrypt(store: VersionsMixin, conn: Connection, new: Cipher) -> int:
    """Re-encrypt every stored body (versions and keyframes) with ``new``, inside the
    caller's transaction. The compressed bytes are unchanged; only the encryption is.
    Returns the number of versions."""
    k = schema.keyframes
    old = store.cipher
    count = 0
    for row_id in conn.execute(sa.select(_V.c.id).order_by(_V.c.id)).scalars().all():
        row = conn.execute(
            sa.select(_V.c.workspace, _V.c.codec, _V.c.key_id, _V.c.nonce, _V.c.body).where(
                _V.c.id == row_id
            )
        ).one()
        count += 1
        if row.codec == codec.KEYFRAME:
            conn.execute(_V.update().where(_V.c.id == row_id).values(key_id=new.key_id))
            continue
        aad = row.workspace if row.codec == codec.RAW else codec.delta_aad(row.workspace)
        plain = old.decrypt(row.nonce, row.body, aad, row.key_id)
        nonce, sealed = new.encrypt(plain, aad)
        conn.execute(
            _V.update().where(_V.c.id == row_id).values(key_id=new.key_id, nonce=nonce, body=sealed)
        )
    keys = conn.execute(sa.select(k.c.workspace, k.c.serial)).all()
    for workspace, serial in keys:
        where = sa.and_(k.c.workspace == workspace, k.c.serial == serial)
        kf = conn.execute(sa.select(k.c.key_id, k.c.nonce, k.c.body).where(where)).one()
        aad = codec.keyframe_aad(workspace)
        plain = old.decrypt(kf.nonce, kf.body, aad, kf.key_id)
        nonce, sealed = new.encrypt(plain, aad)
        conn.execute(k.update().where(where).values(key_id=new.key_id, nonce=nonce, body=sealed))
    return count
