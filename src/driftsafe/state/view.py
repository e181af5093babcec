"""What a person browsing a state may see: its resources, their attributes and its
outputs, with every value Terraform marks sensitive or the secret scan flags replaced
by ``(sensitive)``. The web console renders these; nothing here reveals a secret."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from driftsafe.state.diff import SENSITIVE, is_typed_value, shown_value
from driftsafe.state.lean import iter_raw_instances
from driftsafe.state.paths import Path, covering, format_path
from driftsafe.state.secrets import SecretPaths


@dataclass(frozen=True)
class ResourceRow:
    """One instance of a state, its JSON kept unparsed until its attributes are asked for."""

    address: str
    module: str
    mode: str
    type: str
    name: str
    raw: msgspec.Raw

    def instance(self) -> Mapping[str, Any]:
        value = json.loads(bytes(self.raw))
        return value if isinstance(value, dict) else {}


def resource_rows(body: bytes | bytearray) -> tuple[list[ResourceRow], dict[str, Any]]:
    """Every instance of a state body in state order, and the outputs (decoded). The
    instances are not parsed: a 20 MiB state costs its bytes and a row per instance."""
    found, raw_outputs = iter_raw_instances(body)
    rows = [
        ResourceRow(
            address=item.address,
            module=str(item.head.get("module") or ""),
            mode=str(item.head.get("mode") or "managed"),
            type=str(item.head.get("type")),
            name=str(item.head.get("name")),
            raw=item.raw,
        )
        for item in found
    ]
    outputs = json.loads(bytes(raw_outputs))
    return rows, outputs if isinstance(outputs, dict) else {}


def _rows(
    value: Any, raw: Path, shown: Path, secret: list[Path]
) -> Iterator[tuple[Path, Any, bool]]:
    if covering(raw, secret) is not None:
        yield shown, SENSITIVE, True
        return
    while is_typed_value(value):
        value, raw = value["value"], (*raw, "value")
        if covering(raw, secret) is not None:
            yield shown, SENSITIVE, True
            return
    if type(value) is dict and value:
        for key in sorted(value):
            yield from _rows(value[key], (*raw, str(key)), (*shown, str(key)), secret)
    elif type(value) is list and value:
        for i, child in enumerate(value):
            yield from _rows(child, (*raw, i), (*shown, i), secret)
    else:
        yield shown, value, False


def attribute_rows(
    instance: Mapping[str, Any], scanner: SecretPaths
) -> list[tuple[str, Any, bool]]:
    """(path, value, hidden) for every leaf attribute of an instance, dynamic-type
    wrappers shown as their values; a hidden subtree is one row reading (sensitive)."""
    attrs = instance.get("attributes")
    if attrs is None:
        attrs = instance.get("attributes_flat")
    secret = scanner.instance(instance)
    return [(format_path(p), v, hidden) for p, v, hidden in _rows(attrs, (), (), secret)]


def output_rows(outputs: Mapping[str, Any], scanner: SecretPaths) -> list[tuple[str, Any, bool]]:
    """(name, value, hidden) per output; a sensitive or flagged output reads (sensitive)."""
    rows = []
    for name in sorted(outputs):
        output = outputs[name]
        if not isinstance(output, Mapping):
            continue
        if scanner.output(str(name), output):
            rows.append((str(name), SENSITIVE, True))
        else:
            rows.append((str(name), shown_value(output.get("value")), False))
    return rows
