"""The one ``Settings`` object: read once from ``DRIFTSAFE_*`` at start, passed down.

Every setting is declared in ``SETTINGS_DOC`` with its environment variable and a
one-line description; ``docs/settings.md`` lists them all (a test checks it).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftsafe.durations import parse_duration
from driftsafe.errors import ConfigError

ENV_PREFIX = "DRIFTSAFE_"

# field name -> (environment variable, description)
SETTINGS_DOC: dict[str, tuple[str, str]] = {
    "home": (
        "DRIFTSAFE_HOME",
        "Data directory: provider mirror, CLI config, default database, key file.",
    ),
    "engine": (
        "DRIFTSAFE_ENGINE",
        "Terraform engine: embedded (default), terraform, tofu, or a path.",
    ),
    "db": (
        "DRIFTSAFE_DB",
        "Store URL: sqlite:///PATH or postgresql://... (default: SQLite in home).",
    ),
    "server": ("DRIFTSAFE_SERVER", "Base URL of a driftsafe server, for client commands."),
    "token": ("DRIFTSAFE_TOKEN", "API token for client commands."),
    "encryption_key": ("DRIFTSAFE_ENCRYPTION_KEY", "Base64 32-byte AES key for state at rest."),
    "encryption_key_file": (
        "DRIFTSAFE_ENCRYPTION_KEY_FILE",
        "File holding the key (created 0600 if absent).",
    ),
    "max_state_bytes": (
        "DRIFTSAFE_MAX_STATE_BYTES",
        "Largest state body accepted (default 64 MiB).",
    ),
    "retention": ("DRIFTSAFE_RETENTION", "Versions kept per workspace; 0 keeps all (default)."),
    "lock_stale_after": (
        "DRIFTSAFE_LOCK_STALE_AFTER",
        "Age after which a lock counts as stale (default 15m).",
    ),
    "shutdown_grace": (
        "DRIFTSAFE_SHUTDOWN_GRACE",
        "On SIGTERM, how long the server lets requests in flight finish (default 30s).",
    ),
    "tf_timeout": (
        "DRIFTSAFE_TF_TIMEOUT",
        "Timeout for one Terraform command run by driftsafe (default 30m).",
    ),
    "auth_failure_limit": (
        "DRIFTSAFE_AUTH_FAILURE_LIMIT",
        "Failed authentications per client address per minute before 429 (default 20; 0 off).",
    ),
    "console_idle": (
        "DRIFTSAFE_CONSOLE_IDLE",
        "Web console sessions end after this long without a request (default 12h).",
    ),
    "log_level": ("DRIFTSAFE_LOG_LEVEL", "Log level: debug, info (default), warning, error."),
    "github_api": (
        "DRIFTSAFE_GITHUB_API",
        "GitHub API base URL (GitHub Enterprise: https://HOST/api/v3).",
    ),
    "provider_sessions": (
        "DRIFTSAFE_PROVIDER_SESSIONS",
        "0 lets Terraform start the lab provider itself (3-4 times per command); "
        "default: driftsafe serves it once per run (TF_REATTACH_PROVIDERS).",
    ),
}


_BOOLEAN = {"1": True, "true": True, "yes": True, "on": True}
_BOOLEAN |= {"0": False, "false": False, "no": False, "off": False}


def _default_home(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "driftsafe"


@dataclass(frozen=True)
class Settings:
    home: Path
    engine: str = "embedded"
    db: str | None = None
    server: str | None = None
    token: str | None = None
    encryption_key: str | None = None
    encryption_key_file: Path | None = None
    max_state_bytes: int = 64 * 1024 * 1024
    retention: int = 0
    lock_stale_after: float = 15 * 60.0
    shutdown_grace: float = 30.0
    tf_timeout: float = 30 * 60.0
    auth_failure_limit: int = 20
    console_idle: float = 12 * 3600.0
    log_level: str = "info"
    github_api: str = "https://api.github.com"
    provider_sessions: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(field: str) -> str | None:
            value = env.get(SETTINGS_DOC[field][0])
            return value if value not in (None, "") else None

        def as_int(field: str, default: int) -> int:
            raw = get(field)
            if raw is None:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{SETTINGS_DOC[field][0]}={raw!r} is not an integer") from None
            if value < 0:
                raise ConfigError(f"{SETTINGS_DOC[field][0]} must not be negative")
            return value

        home = Path(get("home") or _default_home(env)).expanduser()
        key_file = get("encryption_key_file")
        if key_file and get("encryption_key"):
            # One would silently win, and a store written with the other key would
            # then not open (or a backup would name the wrong key).
            raise ConfigError(
                "DRIFTSAFE_ENCRYPTION_KEY and DRIFTSAFE_ENCRYPTION_KEY_FILE are both set: "
                "set only one"
            )
        level = (get("log_level") or "info").lower()
        if level not in {"debug", "info", "warning", "error"}:
            raise ConfigError(f"DRIFTSAFE_LOG_LEVEL={level!r}: use debug, info, warning or error")
        sessions = (get("provider_sessions") or "1").lower()
        if sessions not in _BOOLEAN:
            raise ConfigError(f"DRIFTSAFE_PROVIDER_SESSIONS={sessions!r}: use 1 or 0")
        return cls(
            home=home,
            engine=get("engine") or "embedded",
            db=get("db"),
            server=(get("server") or "").rstrip("/") or None,
            token=get("token"),
            encryption_key=get("encryption_key"),
            encryption_key_file=Path(key_file).expanduser() if key_file else None,
            max_state_bytes=as_int("max_state_bytes", 64 * 1024 * 1024),
            retention=as_int("retention", 0),
            lock_stale_after=parse_duration(get("lock_stale_after") or "15m"),
            shutdown_grace=parse_duration(get("shutdown_grace") or "30s"),
            tf_timeout=parse_duration(get("tf_timeout") or "30m"),
            auth_failure_limit=as_int("auth_failure_limit", 20),
            console_idle=parse_duration(get("console_idle") or "12h"),
            log_level=level,
            github_api=(get("github_api") or "https://api.github.com").rstrip("/"),
            provider_sessions=_BOOLEAN[sessions],
        )

    def with_(self, **changes: Any) -> Settings:
        """A copy with command-line overrides applied (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{self.home / 'driftsafe.db'}"
