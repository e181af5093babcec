"""Terraform's ``http`` backend. When its address is a driftsafe server
(``.../v1/states/<workspace>``), locks, versions and encryption are read from the
server's JSON API with the backend's own token; any other http server gives no such
view, and what cannot be read is said to be unknown."""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from driftsafe.backends.base import HeldLock, LockState, Measured, parse_go_time
from driftsafe.backends.config import BackendConfig
from driftsafe.client import Client
from driftsafe.errors import BackendError, ConfigError, DriftsafeError, NotFound

_DRIFTSAFE = re.compile(r"^(?P<base>https?://[^?#]*?)/v1/states/(?P<ws>[^?#]+)$")


def split_address(address: str) -> tuple[str, str] | None:
    """(server base URL, workspace) of a driftsafe state address, else None."""
    match = _DRIFTSAFE.match(address.strip())
    return (match.group("base"), match.group("ws")) if match else None


@dataclass
class HttpBackend:
    config: BackendConfig
    env: Mapping[str, str] | None = None
    scratch_address: str | None = None

    @property
    def address(self) -> str:
        address = self.config.get("address")
        if not address:
            raise BackendError("the http backend block has no address")
        return str(address)

    @property
    def token(self) -> str | None:
        env = os.environ if self.env is None else self.env
        found = self.config.get("password") or env.get("TF_HTTP_PASSWORD")
        return str(found) if found else None

    @property
    def workspace(self) -> str:
        parts = split_address(self.address)
        return parts[1] if parts else self.address

    @functools.cached_property
    def server(self) -> str | None:
        """The driftsafe server behind the address, if it is one (asked, not guessed)."""
        parts = split_address(self.address)
        if parts is None:
            return None
        try:
            with Client(parts[0], self.token, timeout=10) as client:
                info = client.request("GET", "/api/v1/server")
        except DriftsafeError:
            return None
        return parts[0] if isinstance(info, dict) and "versioning" in info else None

    def describe(self) -> str:
        if self.server:
            return f"driftsafe server {self.server}, workspace {self.workspace}"
        return f"http backend at {self.address}"

    def _client(self) -> Client:
        if not self.server:
            raise BackendError(f"{self.address} is not a driftsafe server: no API to ask")
        return Client(self.server, self.token, timeout=30)

    def scratch_config(self, name: str) -> BackendConfig:
        address = self.scratch_address
        if address is None:
            if not self.server:
                raise ConfigError(
                    "the http backend has no workspaces: give a scratch state address with "
                    "--scratch ADDRESS (never the real state's)"
                )
            address = f"{self.server}/v1/states/{name}"
        if address.rstrip("/") == self.address.rstrip("/"):
            raise ConfigError("--scratch must not be the real state's address")
        parts = split_address(address)
        changes: dict[str, Any] = {"address": address}
        if self.config.get("lock_address"):
            lock = f"{parts[0]}/v1/locks/{parts[1]}" if parts else address
            changes.update(lock_address=lock, unlock_address=lock)
        return self.config.with_settings(**changes)

    def read_lock(self, workspace: str) -> LockState:
        if not self.server:
            return LockState(
                "http",
                workspace,
                self.address,
                False,
                None,
                "an http server other than driftsafe: its lock can only be seen through "
                "Terraform (a command that fails with `Error acquiring the state lock`)",
            )
        with self._client() as client:
            answer = client.lock_status(workspace)
        lock = answer.get("lock") if answer.get("locked") else None
        held = None
        if lock:
            info = {
                "ID": lock.get("id"),
                "Operation": lock.get("operation"),
                "Info": lock.get("info"),
                "Who": lock.get("who"),
                "Version": lock.get("version"),
                "Created": lock.get("created"),
                "Path": lock.get("path"),
            }
            held = HeldLock(
                info,
                parse_go_time(str(lock.get("acquired_at") or "")),
                {"token": lock.get("token"), "from": lock.get("remote_addr")},
            )
        return LockState("http", workspace, f"{self.server}/v1/locks/{workspace}", True, held)

    def break_lock(self, workspace: str, lock_id: str | None) -> str:
        with self._client() as client:
            current = self.read_lock(workspace).held
            if current is None:
                return "not locked"
            if lock_id and current.id != lock_id:
                raise BackendError(f"the lock is now held by {current.id}, not {lock_id}")
            released = client.force_unlock(workspace)
        return f"released lock {released.get('id')} through the server's API (admin, audited)"

    def versions(self, workspace: str) -> list[bytes] | None:
        if not self.server:
            return None
        with self._client() as client:
            serials = sorted(int(v["serial"]) for v in client.versions(workspace))
            return [json.dumps(client.version(workspace, n)["state"]).encode() for n in serials]

    def encryption(self, workspace: str) -> Measured:
        if not self.server:
            return Measured(None, "not knowable: an http server other than driftsafe")
        with self._client() as client:
            said = str(client.request("GET", "/api/v1/server").get("encryption") or "")
        return Measured(said.startswith("AES"), f"the server says: {said or 'nothing'}")

    def purge(self, workspace: str) -> list[str]:
        """The scratch workspace and its versions, through the API (admin token)."""
        if not self.server:
            return []
        with self._client() as client:
            try:
                count = client.delete_workspace(workspace)
            except NotFound:
                return []
        return [f"workspace {workspace} on {self.server} with its {count} version(s)"]
