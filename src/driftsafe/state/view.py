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
from driftsafe.state.paths import Path, covering, format_path, instance_address
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


class _Resource(msgspec.Struct):
    module: Any = None
    mode: Any = "managed"
    type: Any = "?"
    name: Any = "?"
    instances: list[msgspec.Raw] = []


class _Body(msgspec.Struct):
    resources: list[_Resource] = []
    outputs: msgspec.Raw = msgspec.Raw(b"{}")


class _Key(msgspec.Struct):
    index_key: Any = None


def resource_rows(body: bytes | bytearray) -> tuple[list[ResourceRow], dict[str, Any]]:
    """Every instance of a state body in state order, and the outputs (decoded). The
    instances are not parsed: a 20 MiB state costs its bytes and a row per instance."""
    try:
        lean = msgspec.json.decode(body, type=_Body)
    except msgspec.ValidationError:
        return _tolerant(body)
    rows: list[ResourceRow] = []
    for res in lean.resources:
        head = {"module": res.module, "mode": res.mode, "type": res.type, "name": res.name}
        for raw in res.instances:
            try:
                key = msgspec.json.decode(raw, type=_Key)
            except msgspec.ValidationError:
                continue  # not an object
            rows.append(_row(head, {"index_key": key.index_key}, raw))
    outputs = json.loads(bytes(lean.outputs))
    return rows, outputs if isinstance(outputs, dict) else {}


def _row(head: Mapping[str, Any], instance: Mapping[str, Any], raw: msgspec.Raw) -> ResourceRow:
    return ResourceRow(
        address=instance_address(head, instance),
        module=str(head.get("module") or ""),
        mode=str(head.get("mode") or "managed"),
        type=str(head.get("type")),
        name=str(head.get("name")),
        raw=raw,
    )


def _tolerant(body: bytes | bytearray) -> tuple[list[ResourceRow], dict[str, Any]]:
    # Odd shapes (a resource that is not an object...), as iter_instances tolerates them.
    data = json.loads(body)
    data = data if isinstance(data, dict) else {}
    rows = []
    for res in data.get("resources") or []:
        if not isinstance(res, dict) or not isinstance(res.get("instances"), list):
            continue
        for instance in res["instances"]:
            if isinstance(instance, dict):
                rows.append(_row(res, instance, msgspec.Raw(msgspec.json.encode(instance))))
    outputs = data.get("outputs")
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
