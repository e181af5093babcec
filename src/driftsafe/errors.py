"""The one error hierarchy of driftsafe.

Every error a user can cause or meet derives from :class:`DriftsafeError`. The CLI
turns these into a one-line message and exit code 1; the server renders them as
``{"error": {"code": ..., "message": ..., "detail": ...}}`` with ``http_status``.
"""

from __future__ import annotations

from typing import Any


class DriftsafeError(Exception):
    """Base class. ``code`` is a stable machine-readable name."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "detail": self.detail}}


class ConfigError(DriftsafeError):
    """Bad settings or bad command-line input."""

    code = "config_error"
    http_status = 400


class EngineError(DriftsafeError):
    """Terraform could not be found or started."""

    code = "engine_error"


class Interrupted(EngineError):
    """A signal (SIGINT, SIGTERM, SIGHUP) asked driftsafe to stop. Terraform was asked
    to stop too and waited for; no new Terraform command starts. The command exits
    ``128 + signal``, as a shell reports a process stopped by that signal."""

    code = "interrupted"

    def __init__(self, signum: int, message: str | None = None) -> None:
        import signal

        name = signal.Signals(signum).name
        super().__init__(message or f"interrupted by {name}: no new Terraform command started")
        self.signal = signum
        self.exit_code = 128 + signum


class BadRequest(DriftsafeError):
    code = "bad_request"
    http_status = 400


class AuthError(DriftsafeError):
    code = "unauthorized"
    http_status = 401


class Forbidden(DriftsafeError):
    code = "forbidden"
    http_status = 403


class NotFound(DriftsafeError):
    code = "not_found"
    http_status = 404


class Conflict(DriftsafeError):
    """A write or lock that contradicts the current state (fencing, serial, lineage)."""

    code = "conflict"
    http_status = 409


class LockHeld(DriftsafeError):
    """The lock is held by someone else; ``detail`` is the holder's LockInfo."""

    code = "locked"
    http_status = 423


class TooManyRequests(DriftsafeError):
    """Too many failed authentications from one address: wait ``retry_after`` seconds."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int, detail: Any = None) -> None:
        super().__init__(message, detail=detail)
        self.retry_after = retry_after


class PayloadTooLarge(DriftsafeError):
    code = "payload_too_large"
    http_status = 413


class StoreError(DriftsafeError):
    """The state store failed (database unreachable, migration needed, ...)."""

    code = "store_error"
    http_status = 503


class StoreUnavailable(StoreError):
    """The database cannot be reached right now (PostgreSQL restarting, network cut):
    answered 503 with ``Retry-After``, which Terraform's http client retries."""

    code = "store_unavailable"
    retry_after = 2


class StorageFull(StoreError):
    """The database's disk is full: nothing was written, earlier versions are intact."""

    code = "insufficient_storage"
    http_status = 507


class DriftError(DriftsafeError):
    """A drift check could not reach a verdict (lock held, init failed, provider error)."""

    code = "drift_error"


class NotifyError(DriftsafeError):
    """An alert could not be delivered."""

    code = "notify_error"


class BackendError(DriftsafeError):
    """A Terraform backend (S3, DynamoDB, PostgreSQL, a server) refused or failed."""

    code = "backend_error"
