from __future__ import annotations

from pathlib import Path

import pytest

from driftsafe.durations import format_duration, parse_duration
from driftsafe.errors import ConfigError
from driftsafe.settings import SETTINGS_DOC, Settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text()
    for field, (env, _doc) in SETTINGS_DOC.items():
        assert f"`{env}`" in text, f"{env} ({field}) missing from docs/settings.md"


def test_every_field_has_a_doc_entry() -> None:
    fields = set(Settings.__dataclass_fields__)
    assert fields == set(SETTINGS_DOC), fields ^ set(SETTINGS_DOC)


def test_from_env_reads_prefix(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "DRIFTSAFE_HOME": str(tmp_path),
            "DRIFTSAFE_ENGINE": "tofu",
            "DRIFTSAFE_LOCK_STALE_AFTER": "90s",
            "DRIFTSAFE_MAX_STATE_BYTES": "1024",
            "DRIFTSAFE_SERVER": "http://127.0.0.1:9/",
        }
    )
    assert s.home == tmp_path and s.engine == "tofu"
    assert s.lock_stale_after == 90 and s.max_state_bytes == 1024
    assert s.server == "http://127.0.0.1:9"
    assert s.db_url == f"sqlite:///{tmp_path / 'driftsafe.db'}"


@pytest.mark.parametrize(
    "env",
    [
        {"DRIFTSAFE_MAX_STATE_BYTES": "lots"},
        {"DRIFTSAFE_RETENTION": "-1"},
        {"DRIFTSAFE_LOCK_STALE_AFTER": "soon"},
        {"DRIFTSAFE_LOG_LEVEL": "loud"},
    ],
)
def test_bad_settings_are_clear_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("2", 2), ("1d", 86400)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5x", "m5", "-3", "5m garbage"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(0.25) == "250ms"
    assert format_duration(42) == "42s"
    assert format_duration(185) == "3m05s"
    assert format_duration(7800) == "2h10m"
