"""Terraform's ``pg`` backend, read through psycopg.

It keeps one row per workspace in ``<schema_name>.states`` (no versions) and locks with
a session-level advisory lock keyed by that row's id: no LockInfo is stored anywhere,
so no holder can be named, and the lock ends when the holder's connection does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from driftsafe.backends.base import HeldLock, LockState, Measured
from driftsafe.backends.config import BackendConfig
from driftsafe.errors import BackendError

NO_HOLDER = (
    "the pg backend records no holder: its lock is a PostgreSQL advisory lock with no "
    "LockInfo (no Who, Operation or ID), and `terraform force-unlock` cannot release it"
)

_HOLDER = """
SELECT l.pid, a.client_addr::text AS client_addr, a.application_name, a.state,
       a.backend_start
FROM {schema}.states s
JOIN pg_locks l
  ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
 AND l.classid::bigint = (s.id >> 32) AND l.objid::bigint = (s.id & 4294967295)
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE s.name = %s
"""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class PgBackend:
    config: BackendConfig
    env: Mapping[str, str] | None = None

    @property
    def schema(self) -> str:
        env = os.environ if self.env is None else self.env
        return str(
            self.config.get("schema_name") or env.get("PG_SCHEMA_NAME") or "terraform_remote_state"
        )

    @property
    def conn_str(self) -> str:
        env = os.environ if self.env is None else self.env
        found = self.config.get("conn_str") or env.get("PG_CONN_STR")
        if not found:
            raise BackendError("the pg backend has no conn_str (nor PG_CONN_STR)")
        return str(found)

    def describe(self) -> str:
        return f"pg backend, table {self.schema}.states"

    def scratch_config(self, name: str) -> BackendConfig:
        return self.config

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        import psycopg

        try:
            with psycopg.connect(self.conn_str, autocommit=True, connect_timeout=10) as conn:
                cursor = conn.execute(sql.format(schema=_ident(self.schema)), params)
                return list(cursor.fetchall()) if cursor.description else []
        except psycopg.Error as exc:
            raise BackendError(f"the pg backend's database: {exc}".strip()) from exc

    def read_lock(self, workspace: str) -> LockState:
        rows = self._query(_HOLDER, (workspace,))
        held = None
        if rows:
            pid, addr, app, state, started = rows[0]
            held = HeldLock(
                {},
                None,
                {
                    "session_pid": pid,
                    "session_client": addr or "local socket",
                    "session_application": app,
                    "session_state": state,
                    "session_started": started.isoformat() if started else None,
                },
            )
        where = f"advisory lock on the row of {workspace!r} in {self.schema}.states"
        return LockState("pg", workspace, where, False, held, NO_HOLDER)

    def break_lock(self, workspace: str, lock_id: str | None) -> str:
        """End the PostgreSQL session that holds the lock: the only way to release a pg
        backend lock from outside (the holder's connection is cut, as in a crash)."""
        held = self.read_lock(workspace).held
        if held is None:
            return "not locked"
        pid = held.facts["session_pid"]
        self._query("SELECT pg_terminate_backend(%s)", (pid,))
        return f"ended PostgreSQL session {pid} (pg_terminate_backend), which held the lock"

    def versions(self, workspace: str) -> list[bytes] | None:
        rows = self._query("SELECT data FROM {schema}.states WHERE name = %s", (workspace,))
        return [str(row[0]).encode() for row in rows]

    def encryption(self, workspace: str) -> Measured:
        return Measured(
            None,
            f"not knowable from here: the pg backend writes the state as plaintext JSON in "
            f"{self.schema}.states; whether PostgreSQL's storage is encrypted is outside "
            "anything a connection can read",
        )

    def purge(self, workspace: str) -> list[str]:
        if workspace == "default":
            raise BackendError("refusing to purge the default workspace")
        rows = self._query(
            "DELETE FROM {schema}.states WHERE name = %s RETURNING name", (workspace,)
        )
        return [f"row {workspace!r} of {self.schema}.states" for _ in rows]
