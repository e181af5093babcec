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


class PayloadTooLarge(DriftsafeError):
    code = "payload_too_large"
    http_status = 413


class StoreError(DriftsafeError):
    """The state store failed (database unreachable, migration needed, ...)."""

    code = "store_error"
    http_status = 503


class DriftError(DriftsafeError):
    """A drift check could not reach a verdict (lock held, init failed, provider error)."""

    code = "drift_error"


class NotifyError(DriftsafeError):
    """An alert could not be delivered."""

    code = "notify_error"


class BackendError(DriftsafeError):
    """A Terraform backend (S3, DynamoDB, PostgreSQL, a server) refused or failed."""

    code = "backend_error"
