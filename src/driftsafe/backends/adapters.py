"""The adapter for a backend type."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from driftsafe.backends.base import Adapter
from driftsafe.backends.config import BackendConfig
from driftsafe.backends.http import HttpBackend
from driftsafe.backends.local import LocalBackend
from driftsafe.backends.pg import PgBackend
from driftsafe.backends.s3 import S3Backend
from driftsafe.errors import ConfigError

SUPPORTED = ("s3", "pg", "http", "local")


def adapter_for(
    config: BackendConfig,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    scratch_address: str | None = None,
) -> Adapter:
    """The adapter of ``config``'s type; ConfigError for a type driftsafe cannot read."""
    if config.type == "s3":
        return S3Backend(config, env)
    if config.type == "pg":
        return PgBackend(config, env)
    if config.type == "http":
        return HttpBackend(config, env, scratch_address)
    if config.type == "local":
        return LocalBackend(config, cwd or config.root)
    raise ConfigError(
        f"driftsafe cannot read a {config.type!r} backend yet (it reads {', '.join(SUPPORTED)})"
    )
