"""One timestamp format out (RFC 3339, UTC, milliseconds); any RFC 3339 time in."""

from __future__ import annotations

import pytest

from driftsafe.timestamps import parse_timestamp, rfc3339, rfc3339_or_none


def test_rfc3339_is_utc_with_milliseconds() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1764599675.2205) == "2025-12-01T14:34:35.220Z"
    assert rfc3339_or_none(None) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T14:34:35.220282721Z", "2026-12-01T14:34:35.220Z"),  # Terraform's Created
        ("2026-11-27T09:30:12.345678+02:00", "2026-11-27T07:30:12.345Z"),
        ("2026-11-27T09:30:12-0130", "2026-11-27T11:00:12.000Z"),
        ("2026-11-27 07:30:12", "2026-11-27T07:30:12.000Z"),  # no zone: UTC
        (" 2026-11-27T07:30:12z ", "2026-11-27T07:30:12.000Z"),
    ],
)
def test_parse_timestamp_reads_any_precision_and_zone(text: str, expected: str) -> None:
    seconds = parse_timestamp(text)
    assert seconds is not None and rfc3339(seconds) == expected


@pytest.mark.parametrize("text", ["", "nope", "2026-11-27", "yesterday 10:00"])
def test_parse_timestamp_refuses_what_is_no_timestamp(text: str) -> None:
    assert parse_timestamp(text) is None


def test_round_trip() -> None:
    text = rfc3339(1764599675.25)
    assert parse_timestamp(text) == 1764599675.25
