"""Web console sessions: the cookie holds a random secret, the store its sha256 (schema
5), so every server on one PostgreSQL shares a session; it dies with its token."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from driftsafe.store import schema
from driftsafe.store.database import StoreBase
from driftsafe.store.models import Actor, TokenRecord

_S, _T = schema.ui_sessions, schema.tokens


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class UiSession:
    id: str
    token: TokenRecord
    csrf: str
    created_at: float
    seen_at: float


class _Prefixed:
    """Attribute access to the ``prefix``-labelled columns of a row."""

    def __init__(self, row: Any, prefix: str) -> None:
        self._row, self._prefix = row, prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, self._prefix + name)


class SessionsMixin(StoreBase):
    # The token code's row reader (sql.py), so a session's token reads as any token.
    token_record: Callable[[Any], TokenRecord]

    # sessions --------------------------------------------------------------------

    def create_session(
        self, token: TokenRecord, remote: str | None, idle: float
    ) -> tuple[str, str]:
        """A new console session for ``token``: (cookie secret, CSRF token). Sessions
        idle longer than ``idle`` seconds are dropped on the way."""
        secret, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.time()
        with self.write_tx() as conn:
            conn.execute(_S.delete().where(_S.c.seen_at < now - idle))
            conn.execute(
                _S.insert().values(
                    id=_hash(secret),
                    token_id=token.id,
                    csrf=csrf,
                    created_at=now,
                    seen_at=now,
                    remote_addr=remote,
                )
            )
            self.audit_in(conn, "login", None, Actor(token.name, remote), "ok", {}, now=now)
        return secret, csrf

    def session(self, secret: str, idle: float, *, touch_after: float = 60.0) -> UiSession | None:
        """The live session of a cookie secret (its token still valid), or None. Using
        it counts as activity (recorded at most every ``touch_after`` seconds)."""
        now = time.time()
        with self.read_tx() as conn:
            row = conn.execute(
                sa.select(_S, _T.c.id.label("tid"))
                .add_columns(*[_T.c[c.name].label(f"t_{c.name}") for c in _T.c])
                .select_from(_S.join(_T, _T.c.id == _S.c.token_id))
                .where(_S.c.id == _hash(secret))
            ).first()
        if row is None:
            return None
        if row.seen_at < now - idle:
            self.end_session(secret)
            return None
        token = self.token_record(
            _Prefixed(row, "t_")  # the tokens columns, as the token code reads them
        )
        if now - row.seen_at > touch_after:
            with self.write_tx() as conn:
                conn.execute(_S.update().where(_S.c.id == row.id).values(seen_at=now))
        return UiSession(row.id, token, row.csrf, row.created_at, row.seen_at)

    def end_session(self, secret: str) -> bool:
        with self.write_tx() as conn:
            gone = conn.execute(_S.delete().where(_S.c.id == _hash(secret)))
            return bool(gone.rowcount)
