"""Classifier details on Terraform's JSON plan format: redaction, verdicts, ignore files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from driftsafe.drift.classify import classify, split_path
from driftsafe.drift.ignore import DEFAULT_NAME, IgnoreRules, load_ignore, rules_for_root
from driftsafe.errors import ConfigError


def _drift(
    address: str, before: dict, after: dict | None, bs: dict | None = None, as_: dict | None = None
) -> dict:
    return {
        "address": address,
        "mode": "managed",
        "type": address.split(".")[-2],
        "change": {
            "actions": ["delete"] if after is None else ["update"],
            "before": before,
            "after": after,
            "before_sensitive": bs or {},
            "after_sensitive": as_ or {},
        },
    }


def _change(
    address: str,
    actions: list[str],
    before: dict,
    after: dict | None,
    unknown: dict | None = None,
    sens: dict | None = None,
) -> dict:
    return {
        "address": address,
        "mode": "managed",
        "change": {
            "actions": actions,
            "before": before,
            "after": after,
            "after_unknown": unknown or {},
            "after_sensitive": sens or {},
        },
    }


def test_sensitive_values_never_appear() -> None:
    before = {"password": "old-Secret-1", "size": 1}
    after = {"password": "new-Secret-2", "size": 1}
    refresh = {
        "resource_drift": [_drift("db_x.a", before, after, {"password": True}, {"password": True})]
    }
    normal = {
        "resource_changes": [_change("db_x.a", ["update"], after, before, sens={"password": True})]
    }
    (finding,), _, _ = classify(refresh, normal, root="r")
    assert finding.sensitive and finding.path == "password"
    blob = json.dumps(finding.to_json())
    assert "Secret" not in blob and finding.apply == "revert"


def test_verdicts_keep_replace_ignore_unknown() -> None:
    refresh = {
        "resource_drift": [
            _drift("x_a.keep", {"v": "1"}, {"v": "2"}),
            _drift("x_a.repl", {"v": "1"}, {"v": "2"}),
            _drift("x_a.ign", {"v": "1"}, {"v": "2"}),
            _drift("x_a.unk", {"v": "1", "w": 1}, {"v": "2", "w": 1}),
            _drift("x_a.gone", {"v": "1"}, None),
        ]
    }
    normal = {
        "resource_changes": [
            _change("x_a.keep", ["no-op"], {"v": "2"}, {"v": "2"}),
            _change("x_a.repl", ["create", "delete"], {"v": "2"}, {"v": "1"}),
            _change("x_a.ign", ["no-op"], {"v": "2"}, {"v": "2-but-ignored"}),
            _change("x_a.unk", ["update"], {"v": "2"}, {}, unknown={"v": True}),
            _change("x_a.gone", ["create"], None, {"v": "1"}),
            _change("x_a.new", ["create"], None, {"v": "9"}),
        ]
    }
    found, _, planned = classify(refresh, normal, root="r")
    verdict = {f.address: f.apply for f in found}
    assert verdict == {
        "x_a.keep": "keep",
        "x_a.repl": "replace",
        "x_a.ign": "ignore",
        "x_a.unk": "unknown",
        "x_a.gone": "recreate",
    }
    assert [p.address for p in planned] == ["x_a.new"]


def test_paths_round_trip() -> None:
    assert split_path("values.max_connections") == ["values", "max_connections"]
    assert split_path('tags["a.b"].x[3]') == ["tags", "a.b", "x", 3]


def test_ignore_file_errors_and_root_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    for text, message in [
        ("[[ignore]]\nreason = 'x'\n", "address"),
        ("[[ignore]]\naddress = 'a'\n", "reason"),
        ("[[ignore]]\naddress = 'a'\nreason = 'x'\nfoo = 1\n", "unknown"),
        ("ignore = [", "TOML"),
    ]:
        bad.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_ignore(bad)
    (tmp_path / DEFAULT_NAME).write_text("[[ignore]]\naddress = 'a.*'\nreason = 'why'\n")
    rules = rules_for_root(tmp_path, None)
    assert isinstance(rules, IgnoreRules) and rules.rules[0].reason == "why"
