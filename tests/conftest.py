"""Fixtures shared by the whole suite. Everything is real: Terraform, files, servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftsafe.engine import Engine, get_engine
from driftsafe.settings import Settings


@pytest.fixture(scope="session")
def ds_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One driftsafe home (mirror, CLI config) per test worker."""
    return tmp_path_factory.mktemp("driftsafe-home")


@pytest.fixture(scope="session")
def settings(ds_home: Path) -> Settings:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTSAFE_")}
    env["DRIFTSAFE_HOME"] = str(ds_home)
    return Settings.from_env(env)


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Engine:
    return get_engine(settings, "embedded")


@pytest.fixture(autouse=True)
def _isolated_env(ds_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the developer's DRIFTSAFE_* or a broken TF_CLI_CONFIG_FILE."""
    for key in list(os.environ):
        if key.startswith("DRIFTSAFE_") and key != "DRIFTSAFE_TEST_PG_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("DRIFTSAFE_HOME", str(ds_home))
    yield


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The real PostgreSQL of CI (DRIFTSAFE_TEST_PG_URL); skip with a reason without it."""
    url = os.environ.get("DRIFTSAFE_TEST_PG_URL")
    if not url:
        pytest.skip("PostgreSQL tests need DRIFTSAFE_TEST_PG_URL (set by .ci/run)")
    return url
