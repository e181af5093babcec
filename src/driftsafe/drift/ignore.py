"""The ignore file: drift someone decided to live with, each entry with its reason.

TOML, one ``[[ignore]]`` table per rule::

    [[ignore]]
    address = "module.app.lab_config_file.features"   # glob over resource addresses
    attribute = "values.*"                            # glob over attribute paths (default *)
    root = "envs/*"                                   # optional glob over root names
    reason = "feature flags are toggled by the ops dashboard"

A rule without a reason is an error: an unexplained ignore is how real drift hides.
Ignored findings stay in the report (under ``ignored``, with the reason); they only
stop counting as drift.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from driftsafe.drift.model import DriftFinding
from driftsafe.errors import ConfigError

DEFAULT_NAME = ".driftsafe-ignore.toml"


@dataclass(frozen=True)
class IgnoreRule:
    address: str
    attribute: str
    reason: str
    root: str = "*"
    source: str = ""

    def matches(self, finding: DriftFinding) -> bool:
        return (
            fnmatchcase(finding.address, self.address)
            and fnmatchcase(finding.path, self.attribute)
            and fnmatchcase(finding.root, self.root)
        )


@dataclass(frozen=True)
class IgnoreRules:
    rules: tuple[IgnoreRule, ...] = ()

    def __call__(self, finding: DriftFinding) -> str | None:
        """The reason ``finding`` is ignored, or None."""
        for rule in self.rules:
            if rule.matches(finding):
                return rule.reason
        return None

    def __add__(self, other: IgnoreRules) -> IgnoreRules:
        return IgnoreRules(self.rules + other.rules)


def parse_ignore(text: str, *, source: str = "<ignore>") -> IgnoreRules:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(data) - {"ignore"}
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key(s) {sorted(unknown)}; use [[ignore]]")
    entries = data.get("ignore", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'ignore' must be an array of tables ([[ignore]])")
    rules = []
    for i, entry in enumerate(entries, 1):
        where = f"{source}: rule {i}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a table")
        extra = set(entry) - {"address", "attribute", "reason", "root"}
        if extra:
            raise ConfigError(f"{where}: unknown key(s) {sorted(extra)}")
        values = {}
        for key in ("address", "attribute", "reason", "root"):
            value = entry.get(key)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{where}: {key} must be a string")
            values[key] = value
        if not values["address"]:
            raise ConfigError(f"{where}: 'address' (a glob) is required")
        reason = (values["reason"] or "").strip()
        if not reason:
            raise ConfigError(f"{where}: 'reason' is required: say why this drift is accepted")
        rules.append(
            IgnoreRule(
                address=values["address"],
                attribute=values["attribute"] or "*",
                reason=reason,
                root=values["root"] or "*",
                source=source,
            )
        )
    return IgnoreRules(tuple(rules))


def load_ignore(path: str | Path) -> IgnoreRules:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read ignore file {path}: {exc.strerror}") from None
    return parse_ignore(text, source=str(path))


def rules_for_root(root: Path, extra: IgnoreRules | None) -> IgnoreRules:
    """The root's own ``.driftsafe-ignore.toml`` (if any) plus rules given explicitly."""
    own = root / DEFAULT_NAME
    rules = load_ignore(own) if own.is_file() else IgnoreRules()
    return rules + extra if extra else rules
