"""The difference between two states, by meaning, with old -> new values.

Resource level: instances added, removed, changed, and replaced (same address, a new
``id``: Terraform destroyed and created it again). Attribute level: each changed path
with its old and new value. Values are compared as Terraform means them: an attribute
of dynamic type (``terraform_data.input``) is stored as ``{"value", "type"}`` and only
its value counts, so its type encoding is neither a change nor part of a path
(``input.n``, never ``input.type[1].n``); 1 equals 1.0; true never equals 1.

A value Terraform marks sensitive, or that the secret scan flags, is never in the
result: it reads ``(sensitive)``, on both sides of the change.

:func:`diff_bodies` works on the stored bytes: an instance whose bytes did not change is
recognised without being parsed, so diffing two 20 MiB states holds little more than
the two bodies. :func:`diff_states` does the same on states already decoded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from driftsafe.state.lean import iter_raw_instances
from driftsafe.state.paths import (
    Path,
    covering,
    format_path,
    instance_attributes,
    iter_instances,
    sensitive_paths,
)
from driftsafe.state.secrets import SecretPaths

SENSITIVE = "(sensitive)"

_MISSING: Any = object()
_PRIMITIVE_TYPES = frozenset({"string", "number", "bool", "dynamic"})
_COMPLEX_TYPES = frozenset({"object", "list", "map", "set", "tuple"})


@dataclass(frozen=True)
class ValueChange:
    """One attribute path: ``action`` is ``add``, ``remove`` or ``change``; a missing
    side is None. ``sensitive``: both values read ``(sensitive)``."""

    path: str
    action: str
    old: Any = None
    new: Any = None
    sensitive: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "action": self.action,
            "old": self.old,
            "new": self.new,
            "sensitive": self.sensitive,
        }


@dataclass(frozen=True)
class ResourceChange:
    """A changed instance: ``update`` in place, or ``replace`` (its ``id`` changed)."""

    address: str
    action: str
    old_id: str | None
    new_id: str | None
    attributes: tuple[ValueChange, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "action": self.action,
            "old_id": self.old_id,
            "new_id": self.new_id,
            "attributes": [c.to_json() for c in self.attributes],
        }


@dataclass(frozen=True)
class OutputChange:
    name: str
    action: str
    old: Any = None
    new: Any = None
    sensitive: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "action": self.action,
            "old": self.old,
            "new": self.new,
            "sensitive": self.sensitive,
        }


@dataclass(frozen=True)
class StateDiff:
    """``changed`` maps each changed address (replaced ones included) to its changed
    attribute paths; ``resources`` has the same addresses with old -> new values."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    resources: tuple[ResourceChange, ...] = ()
    outputs: tuple[OutputChange, ...] = ()

    @property
    def replaced(self) -> tuple[ResourceChange, ...]:
        return tuple(r for r in self.resources if r.action == "replace")

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.outputs)

    def summary(self) -> dict[str, int]:
        replaced = len(self.replaced)
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "updated": len(self.changed) - replaced,
            "replaced": replaced,
            "outputs": len(self.outputs),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": {addr: list(paths) for addr, paths in self.changed.items()},
            "replaced": [
                {"address": r.address, "old_id": r.old_id, "new_id": r.new_id}
                for r in self.replaced
            ],
            "resources": [r.to_json() for r in self.resources],
            "outputs": [o.to_json() for o in self.outputs],
            "summary": self.summary(),
        }


# -- comparing values by meaning ---------------------------------------------------------


def is_typed_value(node: object) -> bool:
    """A dynamic-type attribute as Terraform stores it: ``{"value": V, "type": T}``
    with T a type expression (``"string"``, ``["object", {...}]``, ...)."""
    if type(node) is not dict or len(node) != 2 or "value" not in node or "type" not in node:
        return False
    kind = node["type"]
    if isinstance(kind, str):
        return kind in _PRIMITIVE_TYPES
    return type(kind) is list and len(kind) >= 2 and kind[0] in _COMPLEX_TYPES


def _leaf_key(value: Any) -> tuple[str, Any]:
    # JSON equality, not Python's: true must differ from 1, while 1 equals 1.0.
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, dict):
        return ("object", len(value))
    if isinstance(value, list):
        return ("array", len(value))
    return (type(value).__name__, value)


def _canon(value: Any) -> Any:
    """A hashable form in which two values are equal exactly when they mean the same."""
    while is_typed_value(value):
        value = value["value"]
    if type(value) is dict:
        return ("object", tuple(sorted((str(k), _canon(v)) for k, v in value.items())))
    if type(value) is list:
        return ("array", tuple(_canon(v) for v in value))
    return _leaf_key(value)


def shown_value(value: Any) -> Any:
    """``value`` with every dynamic-type wrapper replaced by its value."""
    while is_typed_value(value):
        value = value["value"]
    if type(value) is dict:
        return {k: shown_value(v) for k, v in value.items()}
    if type(value) is list:
        return [shown_value(v) for v in value]
    return value


def display_path(attributes: Any, raw: Path) -> Path:
    """``raw`` (a JSON path into ``attributes``) without the wrappers' ``value`` steps."""
    node, out = attributes, []
    for step in raw:
        if step == "value" and is_typed_value(node):
            node = node["value"]
            continue
        out.append(step)
        if type(node) is dict and isinstance(step, str):
            node = node.get(step)
        elif type(node) is list and isinstance(step, int) and 0 <= step < len(node):
            node = node[step]
        else:
            node = None
    return tuple(out)


# (raw path on the old side, raw path on the new side, path shown, old, new)
_Change = tuple[Path, Path, Path, Any, Any]


def _walk(a: Any, b: Any, ra: Path, rb: Path, shown: Path, out: list[_Change]) -> None:
    """Structural differences: both sides are walked together while both are non-empty
    objects, or non-empty arrays; anywhere else a difference is one change."""
    while is_typed_value(a):
        a, ra = a["value"], (*ra, "value")
    while is_typed_value(b):
        b, rb = b["value"], (*rb, "value")
    if type(a) is dict and a and type(b) is dict and b:
        for key in sorted(a.keys() | b.keys()):
            step = str(key)
            _walk(
                a.get(key, _MISSING),
                b.get(key, _MISSING),
                (*ra, step),
                (*rb, step),
                (*shown, step),
                out,
            )
        return
    if type(a) is list and a and type(b) is list and b:
        for i in range(max(len(a), len(b))):
            _walk(
                a[i] if i < len(a) else _MISSING,
                b[i] if i < len(b) else _MISSING,
                (*ra, i),
                (*rb, i),
                (*shown, i),
                out,
            )
        return
    if a is not _MISSING and b is not _MISSING and _same_leaf(a, b):
        return
    out.append((ra, rb, shown, a, b))


def _same_leaf(a: Any, b: Any) -> bool:
    if type(a) in (dict, list) or type(b) in (dict, list):
        return type(a) is type(b) and not a and not b  # non-empty ones were walked
    return _leaf_key(a) == _leaf_key(b)


def _leaf_paths(value: Any, raw: Path, shown: Path) -> Iterable[tuple[Path, Path]]:
    """(raw, shown) path of every leaf of ``value``; empty containers are leaves."""
    while is_typed_value(value):
        value, raw = value["value"], (*raw, "value")
    if type(value) is dict and value:
        for key, child in value.items():
            yield from _leaf_paths(child, (*raw, str(key)), (*shown, str(key)))
    elif type(value) is list and value:
        for i, child in enumerate(value):
            yield from _leaf_paths(child, (*raw, i), (*shown, i))
    else:
        yield raw, shown


def _changed_leaves(changes: list[_Change], sensitive: list[Path], a: Any, b: Any) -> list[str]:
    out: set[str] = set()
    for ra, rb, shown, old, new in changes:
        for side, raw0, attrs in ((old, ra, a), (new, rb, b)):
            if side is _MISSING:
                continue
            for raw, leaf_shown in _leaf_paths(side, raw0, shown):
                cover = covering(raw, sensitive)
                out.add(format_path(display_path(attrs, cover) if cover else leaf_shown))
    return sorted(out)


def changed_paths(old: Any, new: Any, sensitive: tuple[Path, ...] | list[Path] = ()) -> list[str]:
    """Sorted attribute paths whose leaf differs between ``old`` and ``new``; a change
    under a ``sensitive`` path is reported as that path."""
    changes: list[_Change] = []
    _walk(old, new, (), (), (), changes)
    return _changed_leaves(changes, list(sensitive), old, new)


# -- instances ---------------------------------------------------------------------------


def _under(path: Path, prefixes: list[Path]) -> bool:
    return any(p[: len(path)] == path for p in prefixes)


def _value_changes(
    changes: list[_Change], secret: list[Path], a: Any, b: Any
) -> tuple[ValueChange, ...]:
    out: dict[str, ValueChange] = {}
    for ra, rb, shown, old, new in changes:
        action = "add" if old is _MISSING else "remove" if new is _MISSING else "change"
        cover_a, cover_b = covering(ra, secret), covering(rb, secret)
        if cover_a is not None:
            path, hidden = format_path(display_path(a, cover_a)), True
        elif cover_b is not None:
            path, hidden = format_path(display_path(b, cover_b)), True
        else:
            path = format_path(shown)
            hidden = _under(ra, secret) or _under(rb, secret)
        if path in out:
            continue
        if hidden:
            out[path] = ValueChange(
                path,
                action,
                None if old is _MISSING else SENSITIVE,
                None if new is _MISSING else SENSITIVE,
                sensitive=True,
            )
        else:
            out[path] = ValueChange(
                path,
                action,
                None if old is _MISSING else shown_value(old),
                None if new is _MISSING else shown_value(new),
            )
    return tuple(out[p] for p in sorted(out))


def _id(attrs: Any) -> str | None:
    value = attrs.get("id") if type(attrs) is dict else None
    return value if isinstance(value, str) and value else None


def compare_instances(
    address: str, old: Mapping[str, Any], new: Mapping[str, Any], scanner: SecretPaths
) -> tuple[tuple[str, ...], ResourceChange] | None:
    """(changed paths, the change) of one instance, or None when nothing changed."""
    a, b = instance_attributes(old), instance_attributes(new)
    changes: list[_Change] = []
    _walk(a, b, (), (), (), changes)
    if not changes:
        return None
    marked = sensitive_paths(old)
    marked += [p for p in sensitive_paths(new) if p not in marked]
    paths = tuple(_changed_leaves(changes, marked, a, b))
    secret = marked + [p for p in scanner.instance(old) + scanner.instance(new) if p not in marked]
    old_id, new_id = _id(a), _id(b)
    action = "replace" if old_id and new_id and old_id != new_id else "update"
    if covering(("id",), secret) is not None:
        old_id = new_id = SENSITIVE if old_id or new_id else None
    return paths, ResourceChange(
        address, action, old_id, new_id, _value_changes(changes, secret, a, b)
    )


def _outputs(old: Any, new: Any, scanner: SecretPaths) -> tuple[OutputChange, ...]:
    old = old if isinstance(old, Mapping) else {}
    new = new if isinstance(new, Mapping) else {}
    out = []
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name), new.get(name)
        a = a if isinstance(a, Mapping) else None
        b = b if isinstance(b, Mapping) else None
        if a is not None and b is not None and _canon(a.get("value")) == _canon(b.get("value")):
            continue
        action = "add" if a is None else "remove" if b is None else "change"
        hidden = any(side is not None and scanner.output(str(name), side) for side in (a, b))

        def value(side: Mapping[str, Any] | None, hidden: bool = hidden) -> Any:
            if side is None:
                return None
            return SENSITIVE if hidden else shown_value(side.get("value"))

        out.append(OutputChange(str(name), action, value(a), value(b), hidden))
    return tuple(out)


def _assemble(
    added: Iterable[str],
    removed: Iterable[str],
    pairs: Iterable[tuple[str, Any, Any]],
    load: Callable[[Any], Mapping[str, Any]],
    old_outputs: Any,
    new_outputs: Any,
) -> StateDiff:
    """The diff from the instances only one side has, and (address, old, new) of those
    both have whose content may differ (``load`` decodes one)."""
    scanner = SecretPaths()
    found: list[tuple[str, tuple[str, ...], ResourceChange]] = []
    for address, old, new in pairs:
        result = compare_instances(address, load(old), load(new), scanner)
        if result is not None:
            found.append((address, *result))
    found.sort(key=lambda item: item[0])
    return StateDiff(
        added=tuple(sorted(added)),
        removed=tuple(sorted(removed)),
        changed={address: paths for address, paths, _ in found},
        resources=tuple(change for _, _, change in found),
        outputs=_outputs(old_outputs, new_outputs, scanner),
    )


def diff_states(old: Mapping[str, Any], new: Mapping[str, Any]) -> StateDiff:
    """The difference between two decoded states."""

    before, after = dict(iter_instances(old)), dict(iter_instances(new))

    def itself(instance: Any) -> Mapping[str, Any]:
        return instance  # type: ignore[no-any-return]

    return _assemble(
        after.keys() - before.keys(),
        before.keys() - after.keys(),
        ((a, before[a], after[a]) for a in before.keys() & after.keys()),
        itself,
        old.get("outputs"),
        new.get("outputs"),
    )


def diff_bodies(old: bytes | bytearray, new: bytes | bytearray) -> StateDiff:
    """The difference between two state bodies (JSON bytes), parsing only the instances
    whose bytes differ."""
    return diff_loaded(lambda: old, lambda: new)


def _digest(raw: msgspec.Raw) -> bytes:
    return hashlib.blake2b(raw, digest_size=16).digest()


def diff_loaded(
    load_old: Callable[[], bytes | bytearray], load_new: Callable[[], bytes | bytearray]
) -> StateDiff:
    """:func:`diff_bodies` for bodies read on demand (e.g. from a store), holding at
    most one whole body at a time (see :func:`_differing`)."""
    added, removed, pairs, outputs = _differing(load_old, load_new)

    def load(raw: bytes) -> Mapping[str, Any]:
        value = json.loads(raw)
        return value if isinstance(value, dict) else {}

    return _assemble(added, removed, pairs, load, *outputs)


def _differing(
    load_old: Callable[[], bytes | bytearray], load_new: Callable[[], bytes | bytearray]
) -> tuple[list[str], list[str], list[tuple[str, bytes, bytes]], tuple[Any, Any]]:
    """(added, removed, (address, old bytes, new bytes) of the instances both have whose
    bytes differ, (old outputs, new outputs)). The old body is read once for the
    digests of its instances, the new one is compared against them, and the old one is
    read again only when some instance both have differs, for those instances' bytes."""
    body = load_old()
    found, raw_outputs = iter_raw_instances(body)
    digests = {address: _digest(raw) for address, _, raw in found}
    old_outputs = json.loads(bytes(raw_outputs))
    del body, found, raw_outputs
    body = load_new()
    found, raw_outputs = iter_raw_instances(body)
    seen: set[str] = set()
    differ: dict[str, bytes] = {}
    for address, _, raw in found:
        seen.add(address)
        if digests.get(address) == _digest(raw):
            differ.pop(address, None)  # a duplicate address: the last one counts
        else:
            differ[address] = bytes(raw)
    new_outputs = json.loads(bytes(raw_outputs))
    del body, found, raw_outputs
    added = [a for a in differ if a not in digests]
    for address in added:
        del differ[address]
    removed = [a for a in digests if a not in seen]
    del seen, digests
    before: dict[str, bytes] = {}
    if differ:
        body = load_old()
        found, _ = iter_raw_instances(body)
        before = {address: bytes(raw) for address, _, raw in found if address in differ}
        del body, found
    pairs = [(a, before[a], raw) for a, raw in differ.items()]
    return added, removed, pairs, (old_outputs, new_outputs)


def change_counts(
    load_old: Callable[[], bytes | bytearray] | None, load_new: Callable[[], bytes | bytearray]
) -> tuple[int, int, int]:
    """(added, changed, removed) instances from the old body (None: nothing before) to
    the new one, by meaning, as :func:`diff_bodies` counts them, without the values;
    one whole body in memory at a time."""
    if load_old is None:
        body = load_new()
        found, _ = iter_raw_instances(body)
        return len({item.address for item in found}), 0, 0
    added, removed, pairs, _ = _differing(load_old, load_new)
    changed = 0
    for _, old, new in pairs:
        changes: list[_Change] = []
        _walk(_attributes_of(json.loads(old)), _attributes_of(json.loads(new)), (), (), (), changes)
        changed += bool(changes)
    return len(added), changed, len(removed)


def _attributes_of(instance: Any) -> Any:
    return instance_attributes(instance) if isinstance(instance, dict) else None
