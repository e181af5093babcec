"""A small typed client for the JSON API of ``driftsafe serve``.

Every failure becomes a DriftsafeError: the server's ``{"error": ...}`` answers map
back onto the same classes the server raised, and a server that cannot be reached
says so with its URL, so a CLI command never shows a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from driftsafe import errors
from driftsafe.errors import ConfigError, DriftsafeError
from driftsafe.settings import Settings
from driftsafe.state import SecretFinding, scan_state

_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")

_BY_CODE: dict[str, type[DriftsafeError]] = {
    cls.code: cls
    for cls in (
        errors.BadRequest,
        errors.AuthError,
        errors.Forbidden,
        errors.NotFound,
        errors.Conflict,
        errors.LockHeld,
        errors.PayloadTooLarge,
        errors.StoreError,
        errors.ConfigError,
    )
}
_BY_STATUS: dict[int, type[DriftsafeError]] = {
    400: errors.BadRequest,
    401: errors.AuthError,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.PayloadTooLarge,
    423: errors.LockHeld,
    503: errors.StoreError,
}


class ServerUnreachable(DriftsafeError):
    """No HTTP answer at all: connection refused, DNS, TLS, timeout."""

    code = "unreachable"
    http_status = 502


def check_workspace(name: str) -> str:
    """Reject a workspace name the server would refuse, before any request."""
    segments = name.split("/")
    if not name or any(not _SEGMENT.match(s) or s in {".", ".."} for s in segments):
        raise ConfigError(
            f"invalid workspace name {name!r}: use /-separated segments of "
            "letters, digits, '.', '_' and '-' (e.g. lab/staging)"
        )
    return "/".join(quote(s, safe="") for s in segments)


def error_from_response(response: httpx.Response) -> DriftsafeError:
    """The DriftsafeError that an error answer of the server stands for."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        cls = _BY_CODE.get(str(err.get("code")), _BY_STATUS.get(status, DriftsafeError))
        message = err["message"]
        detail = err.get("detail")
    else:
        cls = _BY_STATUS.get(status, DriftsafeError)
        text = response.text.strip().replace("\n", " ")
        message = f"server answered HTTP {status}" + (f": {text[:200]}" if text else "")
        detail = None
    if cls is errors.AuthError:
        message += " (check --token or DRIFTSAFE_TOKEN)"
    return cls(message, detail=detail)


class Client:
    """One server, one token. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``transport`` replaces the network (e.g. ``httpx.MockTransport`` in tests);
        ``verify`` then does not apply."""
        base = base_url.rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ConfigError(f"server URL {base_url!r} must start with http:// or https://")
        self.base_url = base
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=base, headers=headers, timeout=timeout, verify=verify, transport=transport
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        server: str | None = None,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> Client:
        url = server or settings.server
        if not url:
            raise ConfigError("no server given: pass --server URL or set DRIFTSAFE_SERVER")
        return cls(url, token or settings.token, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | float] | None = None,
        json: Any = None,
    ) -> Any:
        try:
            response = self._http.request(method, path, params=params, json=json)
        except httpx.TransportError as exc:
            why = str(exc) or type(exc).__name__  # a timeout's text is often empty
            raise ServerUnreachable(
                f"cannot reach driftsafe server at {self.base_url}: {why}"
            ) from None
        if response.status_code >= 400:
            raise error_from_response(response)
        try:
            return response.json()
        except ValueError:
            raise DriftsafeError(
                f"server at {self.base_url} answered {method} {path} with non-JSON "
                f"(HTTP {response.status_code})"
            ) from None

    def _ws(self, workspace: str, suffix: str) -> str:
        return f"/api/v1/workspaces/{check_workspace(workspace)}{suffix}"

    # --- reads ---------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/healthz")
        return result

    def workspaces(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/workspaces")["workspaces"]
        return result

    def versions(self, workspace: str) -> list[dict[str, Any]]:
        """Versions of a workspace, newest first."""
        result: list[dict[str, Any]] = self.request("GET", self._ws(workspace, "/versions"))[
            "versions"
        ]
        return result

    def require_workspace(self, workspace: str) -> None:
        """Raise NotFound, with the one message every command uses, unless the server
        knows ``workspace`` (it holds a version or a lock of it)."""
        check_workspace(workspace)
        if workspace not in {w.get("name") for w in self.workspaces()}:
            raise errors.NotFound(
                f"workspace {workspace!r} does not exist on {self.base_url}: "
                "the server holds no state and no lock for it"
            )

    def latest_serial(self, workspace: str) -> int:
        listed = self.versions(workspace)
        if not listed:
            self.require_workspace(workspace)
            raise errors.NotFound(f"workspace {workspace!r} has no versions yet")
        return int(listed[0]["serial"])

    def version(self, workspace: str, serial: int | None = None) -> dict[str, Any]:
        """``{"version": V, "state": {...}}`` for ``serial`` (default: the latest)."""
        if serial is None:
            serial = self.latest_serial(workspace)
        result: dict[str, Any] = self.request("GET", self._ws(workspace, f"/versions/{serial}"))
        return result

    def diff(self, workspace: str, old: int, new: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "GET", self._ws(workspace, "/diff"), params={"from": old, "to": new}
        )
        return result

    def lock_status(self, workspace: str, *, max_age: float | None = None) -> dict[str, Any]:
        params = {"max_age": max_age} if max_age is not None else None
        result: dict[str, Any] = self.request("GET", self._ws(workspace, "/lock"), params=params)
        return result

    def audit(
        self, *, workspace: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        params: dict[str, str | int] = {}
        if workspace is not None:
            check_workspace(workspace)
            params["workspace"] = workspace
        if limit is not None:
            params["limit"] = limit
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/audit", params=params)["events"]
        return result

    def drift_reports(self, workspace: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", self._ws(workspace, "/drift"))["reports"]
        return result

    # --- writes --------------------------------------------------------------

    def restore(self, workspace: str, serial: int) -> dict[str, Any]:
        """Write version ``serial``'s content as a new version; returns the new V."""
        result: dict[str, Any] = self.request(
            "POST", self._ws(workspace, "/restore"), json={"serial": serial}
        )["version"]
        return result

    def force_unlock(
        self, workspace: str, *, if_stale: bool = False, max_age: float | None = None
    ) -> dict[str, Any]:
        """Release the lock whoever holds it; with ``if_stale`` only a lock older than
        ``max_age`` (server default: lock_stale_after). Returns the released lock."""
        params: dict[str, str | float] = {}
        if if_stale:
            params["if_stale"] = "true"
        if max_age is not None:
            params["max_age"] = max_age
        result: dict[str, Any] = self.request(
            "DELETE", self._ws(workspace, "/lock"), params=params
        )["released"]
        return result

    def delete_workspace(self, workspace: str) -> int:
        """Delete a workspace and all its versions (admin; refused while locked)."""
        result: dict[str, Any] = self.request("DELETE", self._ws(workspace, ""))
        return int(result["deleted_versions"])

    def post_drift(self, workspace: str, report: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", self._ws(workspace, "/drift"), json=dict(report)
        )
        return result

    # --- composed --------------------------------------------------------------

    def scan_workspace(
        self, workspace: str, *, all_versions: bool = False
    ) -> list[tuple[int, list[SecretFinding]]]:
        """Scan the latest (or every) stored version here, with this client's scanner."""
        listed = self.versions(workspace)
        if not listed:
            self.require_workspace(workspace)
            raise errors.NotFound(f"workspace {workspace!r} has no versions yet")
        chosen = listed if all_versions else listed[:1]
        results: list[tuple[int, list[SecretFinding]]] = []
        for meta in chosen:
            serial = int(meta["serial"])
            state = self.version(workspace, serial)["state"]
            results.append((serial, scan_state(state)))
        return results
