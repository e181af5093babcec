"""The OpenAPI 3.1 description of the JSON API (``GET /api/v1/openapi.json``).

Written by hand beside the routes in ``api.py`` (which stay plain Starlette): every
operation lists each status it can answer, and the suite fuzzes the live app against
this description (schemathesis), so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from typing import Any

from driftsafe import __version__

# Largest serial or count a request may name: a signed 64-bit integer, as stored.
MAX_INT = 2**63 - 1
# A segment of A-Z a-z 0-9 . _ -, but never "." or "..".
_SEGMENT = r"(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)"
WORKSPACE_PATTERN = f"^{_SEGMENT}(?:/{_SEGMENT})*$"

_NULLABLE_STRING = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "description": "RFC 3339, UTC, milliseconds"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: dict[str, Any], **optional: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **optional},
    }


_SCHEMAS: dict[str, Any] = {
    "Error": _obj(
        {
            "error": _obj(
                {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "detail": {},
                }
            )
        }
    ),
    "Version": _obj(
        {
            "serial": {"type": "integer"},
            "lineage": {"type": "string"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "size": {"type": "integer", "minimum": 0},
            "resources": {"type": "integer", "minimum": 0},
            "created_at": _TIME,
            "writer": _obj({"token": _NULLABLE_STRING, "who": _NULLABLE_STRING}),
            "lock_id": _NULLABLE_STRING,
            "findings": {"type": "array", "items": {"type": "object"}},
            "restored_from": {"type": ["integer", "null"]},
            "scan": {"enum": ["pending", "done", "encrypted by the client: not scanned"]},
            "format": {"enum": ["tfstate", "opentofu-encrypted-v0"]},
            "rules": {"type": "string"},
        }
    ),
    "Workspace": _obj(
        {
            "name": {"type": "string"},
            "latest_serial": {"type": ["integer", "null"]},
            "versions": {"type": "integer", "minimum": 0},
            "locked": {"type": "boolean"},
            "updated_at": _TIME,
        }
    ),
    "Lock": _obj(
        {
            "id": {"type": "string"},
            "operation": {"type": "string"},
            "who": {"type": "string"},
            "info": {"type": "string"},
            "version": {"type": "string"},
            "created": {"type": "string"},
            "path": {"type": "string"},
            "token": _NULLABLE_STRING,
            "remote_addr": _NULLABLE_STRING,
            "acquired_at": _TIME,
            "age_seconds": {"type": "number", "minimum": 0},
            "stale": {"type": "boolean"},
        }
    ),
    "AuditEvent": _obj(
        {
            "id": {"type": "integer"},
            "at": _TIME,
            "action": {"type": "string"},
            "workspace": _NULLABLE_STRING,
            "token": _NULLABLE_STRING,
            "remote_addr": _NULLABLE_STRING,
            "outcome": {"type": "string"},
            "detail": {"type": "object"},
        }
    ),
    "ServerInfo": _obj(
        {
            "database": {"enum": ["sqlite", "postgresql"]},
            "versioning": {"type": "string"},
            "retention": {"type": "string"},
            "locking": {"type": "object"},
            "fencing": {"type": "string"},
            "encryption": {"type": "string"},
            "max_state_bytes": {"type": "integer"},
            "auth": {"type": "string"},
        }
    ),
}

_ERRORS = {
    "400": "Invalid input: a parameter, a workspace name or a body",
    "401": "No token, or an unknown or revoked one",
    "403": "The token's scope or workspace glob does not cover this",
    "404": "No such workspace, version, lock or route",
    "409": "Refused by the current state: the lock is held, not stale, ...",
    "413": "The body is over the size limit",
    "429": "Too many failed authentications from this address: retry after Retry-After",
    "503": "The database is unreachable right now: retry after Retry-After seconds",
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _responses(ok: str, schema: dict[str, Any], errors: str, description: str) -> dict[str, Any]:
    out = {ok: _json(schema, description)}
    statuses = errors.split()
    if "401" in statuses:
        # Any request that carries credentials can meet the per-address limit.
        statuses.append("429")
    for status in statuses:
        out[status] = _json(_ref("Error"), _ERRORS[status])
    return out


_WS = {
    "name": "workspace",
    "in": "path",
    "required": True,
    "description": "/-separated segments of A-Z a-z 0-9 . _ - (never . or ..)",
    "schema": {"type": "string", "pattern": WORKSPACE_PATTERN, "maxLength": 400},
    "example": "team/app",
}


def _query(name: str, schema: dict[str, Any], description: str, required: bool = False) -> Any:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


_SERIAL = {"type": "integer", "minimum": 0, "maximum": MAX_INT}
_LIMIT = {"type": "integer", "minimum": 0, "maximum": 10_000}


def _op(summary: str, responses: dict[str, Any], *params: Any, body: Any = None) -> Any:
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = list(params)
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    return op


def _paths() -> dict[str, Any]:
    ws = "/api/v1/workspaces/{workspace}"
    lock_schema = _obj(
        {
            "workspace": {"type": "string"},
            "locked": {"type": "boolean"},
            "lock": {"oneOf": [_ref("Lock"), {"type": "null"}]},
        }
    )
    max_age = _query(
        "max_age",
        {"type": "number", "minimum": 0},
        "Seconds after which the lock counts as stale (default: the server's setting)",
    )
    return {
        "/api/v1/server": {
            "get": _op(
                "The guarantees this server gives, from its live configuration",
                _responses("200", _ref("ServerInfo"), "401 503", "Server information"),
            )
        },
        "/api/v1/workspaces": {
            "get": _op(
                "Workspaces the token may see",
                _responses(
                    "200",
                    _obj({"workspaces": {"type": "array", "items": _ref("Workspace")}}),
                    "401 503",
                    "Workspaces, by name",
                ),
            )
        },
        ws: {
            "delete": _op(
                "Delete a workspace with all its versions (admin, audited; not while locked)",
                _responses(
                    "200",
                    _obj(
                        {
                            "workspace": {"type": "string"},
                            "deleted_versions": {"type": "integer", "minimum": 0},
                        }
                    ),
                    "400 401 403 404 409 503",
                    "The workspace is gone",
                ),
                _WS,
            )
        },
        f"{ws}/versions": {
            "get": _op(
                "Versions of a workspace, newest first",
                _responses(
                    "200",
                    _obj(
                        {
                            "workspace": {"type": "string"},
                            "versions": {"type": "array", "items": _ref("Version")},
                        }
                    ),
                    "400 401 403 503",
                    "Versions",
                ),
                _WS,
                _query("limit", _LIMIT, "At most this many (0: all)"),
            )
        },
        f"{ws}/versions/{{serial}}": {
            "get": _op(
                "One version with its state",
                _responses(
                    "200",
                    _obj({"version": _ref("Version"), "state": {"type": "object"}}),
                    "400 401 403 404 503",
                    "The version and its state JSON",
                ),
                _WS,
                {
                    "name": "serial",
                    "in": "path",
                    "required": True,
                    "schema": _SERIAL,
                    "example": 1,
                },
            )
        },
        f"{ws}/diff": {
            "get": _op(
                "Resources added, removed and changed between two versions",
                _responses(
                    "200",
                    _obj(
                        {
                            "added": {"type": "array", "items": {"type": "string"}},
                            "removed": {"type": "array", "items": {"type": "string"}},
                            "changed": {
                                "type": "object",
                                "additionalProperties": {
                                    "type": "array",
                                    "items": {"type": "string"},
                                },
                            },
                        }
                    ),
                    "400 401 403 404 503",
                    "The difference",
                ),
                _WS,
                _query("from", _SERIAL, "The older serial", required=True),
                _query("to", _SERIAL, "The newer serial", required=True),
            )
        },
        f"{ws}/restore": {
            "post": _op(
                "Write an old version's content again as a new version (admin)",
                _responses(
                    "201",
                    _obj({"version": _ref("Version")}),
                    "400 401 403 404 409 413 503",
                    "The new version",
                ),
                _WS,
                body=_obj({"serial": _SERIAL}),
            )
        },
        f"{ws}/lock": {
            "get": _op(
                "The lock: holder, age, stale or not",
                _responses("200", lock_schema, "400 401 403 503", "The lock, or none"),
                _WS,
                max_age,
            ),
            "delete": _op(
                "Break the lock (admin, audited); with if_stale only a stale one",
                _responses(
                    "200",
                    _obj({"released": _ref("Lock")}),
                    "400 401 403 404 409 503",
                    "The lock released",
                ),
                _WS,
                _query(
                    "if_stale",
                    {"enum": ["1", "true", "yes", "0", "false", "no"]},
                    "Only break a lock older than max_age",
                ),
                max_age,
            ),
        },
        f"{ws}/drift": {
            "get": _op(
                "Drift reports sent by drift checks, newest first",
                _responses(
                    "200",
                    _obj(
                        {
                            "workspace": {"type": "string"},
                            "reports": {
                                "type": "array",
                                "items": _obj(
                                    {
                                        "id": {"type": "integer"},
                                        "created_at": {"type": "string"},
                                        "report": {"type": "object"},
                                    }
                                ),
                            },
                        }
                    ),
                    "400 401 403 503",
                    "Drift reports",
                ),
                _WS,
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "At most"),
            ),
            "post": _op(
                "Store a drift report (a JSON object, docs/drift-report.md)",
                _responses(
                    "201",
                    _obj({"id": {"type": "integer"}, "created_at": {"type": "string"}}),
                    "400 401 403 413 503",
                    "Stored",
                ),
                _WS,
                body={"type": "object"},
            ),
        },
        "/api/v1/audit": {
            "get": _op(
                "Audit events, newest first",
                _responses(
                    "200",
                    _obj({"events": {"type": "array", "items": _ref("AuditEvent")}}),
                    "400 401 403 503",
                    "Events the token may see",
                ),
                _query(
                    "workspace",
                    {"type": "string", "pattern": WORKSPACE_PATTERN, "maxLength": 400},
                    "Only this workspace's events",
                ),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 10_000}, "At most"),
            )
        },
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``/api/v1``."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "driftsafe state server: JSON API",
            "version": __version__,
            "description": (
                "Versions, diffs, restores, locks, drift reports and the audit log of a "
                "driftsafe state server. Terraform's http backend routes (/v1/states, "
                "/v1/locks) are Terraform's own protocol and are not described here. "
                'Errors are {"error": {"code", "message", "detail"}}.'
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API token"}
            },
            "schemas": _SCHEMAS,
        },
        "paths": _paths(),
    }
