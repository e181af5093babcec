"""Resource-level difference between two states: which instances were added or
removed, and which attribute paths changed. Values never appear in the result, and
changes under a sensitive attribute are reported only as that attribute's path."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from driftsafe.state.paths import (
    Path,
    covering,
    flatten,
    format_path,
    instance_attributes,
    iter_instances,
    sensitive_paths,
)


@dataclass(frozen=True)
class StateDiff:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_json(self) -> dict[str, Any]:
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": {addr: list(paths) for addr, paths in self.changed.items()},
        }


def _leaf_key(value: Any) -> tuple[str, Any]:
    # JSON equality, not Python's: true must differ from 1, while 1 equals 1.0.
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, dict):
        return ("object", None)
    if isinstance(value, list):
        return ("array", None)
    return (type(value).__name__, value)


def changed_paths(old: Any, new: Any, sensitive: tuple[Path, ...] | list[Path] = ()) -> list[str]:
    """Sorted attribute paths whose leaf differs between ``old`` and ``new``."""
    old_leaves = {p: _leaf_key(v) for p, v in flatten(old)}
    new_leaves = {p: _leaf_key(v) for p, v in flatten(new)}
    missing = ("missing", None)
    out: set[str] = set()
    for path in old_leaves.keys() | new_leaves.keys():
        if old_leaves.get(path, missing) != new_leaves.get(path, missing):
            cover = covering(path, sensitive)
            out.add(format_path(cover if cover is not None else path))
    return sorted(out)


def _instances(state: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return dict(iter_instances(state))


def diff_states(old: Mapping[str, Any], new: Mapping[str, Any]) -> StateDiff:
    before = _instances(old)
    after = _instances(new)
    changed: dict[str, tuple[str, ...]] = {}
    for address in sorted(before.keys() & after.keys()):
        a, b = before[address], after[address]
        sensitive = sensitive_paths(a)
        sensitive += [p for p in sensitive_paths(b) if p not in sensitive]
        paths = changed_paths(instance_attributes(a), instance_attributes(b), sensitive)
        if paths:
            changed[address] = tuple(paths)
    return StateDiff(
        added=tuple(sorted(after.keys() - before.keys())),
        removed=tuple(sorted(before.keys() - after.keys())),
        changed=changed,
    )
