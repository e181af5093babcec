"""Reading a state body without parsing it: each instance's address and bytes, one
resource decoded at a time, so a 40,000-resource state costs its bytes and a small
object per instance, never a Python tree of the whole state."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import msgspec

from driftsafe.state.paths import instance_address


class RawInstance(NamedTuple):
    address: str
    head: Mapping[str, Any]  # the resource's module, mode, type and name
    raw: msgspec.Raw  # the instance's JSON, referenced in the body (not copied)


class _Resource(msgspec.Struct):
    module: Any = None
    mode: Any = None
    type: Any = "?"
    name: Any = "?"
    instances: list[msgspec.Raw] = []


class _Shallow(msgspec.Struct):
    resources: list[msgspec.Raw] = []
    outputs: msgspec.Raw = msgspec.Raw(b"{}")


class _InstanceKey(msgspec.Struct):
    index_key: Any = None


def _each(resources: list[msgspec.Raw]) -> Iterator[RawInstance]:
    # Odd shapes (a resource or instance that is not an object, instances that are not
    # a list) are skipped, as iter_instances skips them.
    for item in resources:
        try:
            res = msgspec.json.decode(item, type=_Resource)
        except msgspec.ValidationError:
            continue
        head = {"module": res.module, "mode": res.mode, "type": res.type, "name": res.name}
        for raw in res.instances:
            try:
                key = msgspec.json.decode(raw, type=_InstanceKey)
            except msgspec.ValidationError:
                continue
            yield RawInstance(instance_address(head, {"index_key": key.index_key}), head, raw)


def _tolerant(data: Any) -> Iterator[RawInstance]:
    resources = data.get("resources") if isinstance(data, dict) else None
    for res in resources if isinstance(resources, list) else []:
        if not isinstance(res, dict) or not isinstance(res.get("instances"), list):
            continue
        head = {k: res.get(k) for k in ("module", "mode", "type", "name")}
        for instance in res["instances"]:
            if isinstance(instance, dict):
                raw = msgspec.Raw(msgspec.json.encode(instance))
                yield RawInstance(instance_address(head, instance), head, raw)


def iter_raw_instances(body: bytes | bytearray) -> tuple[Iterator[RawInstance], msgspec.Raw]:
    """The instances of a state body, lazily, and the outputs' bytes."""
    try:
        lean = msgspec.json.decode(body, type=_Shallow)
    except msgspec.ValidationError:
        # 'resources' that is not a list and the like: the slow path, still tolerant.
        data = json.loads(body)
        outputs = data.get("outputs", {}) if isinstance(data, dict) else {}
        return _tolerant(data), msgspec.Raw(msgspec.json.encode(outputs))
    return _each(lean.resources), lean.outputs


def raw_instances(body: bytes | bytearray) -> tuple[dict[str, msgspec.Raw], msgspec.Raw]:
    """Address -> instance bytes (the last instance wins a repeated address), outputs."""
    found, outputs = iter_raw_instances(body)
    return {item.address: item.raw for item in found}, outputs
