"""Addresses and attribute paths inside a Terraform state (format version 4).

Paths are rendered the way a reader expects from Terraform: ``values.max_connections``
for object keys, ``tags[0]`` for list elements, ``labels["a.b"]`` for keys that are
not plain identifiers (so a key can never be confused with a nested path).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

Step = str | int
Path = tuple[Step, ...]

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_path(path: Sequence[Step]) -> str:
    parts: list[str] = []
    for step in path:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif _PLAIN_KEY.match(step):
            parts.append(f".{step}" if parts else step)
        else:
            parts.append(f"[{json.dumps(step)}]")
    return "".join(parts)


def _index_suffix(key: object) -> str:
    if key is None:
        return ""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"[{key}]"
    return f"[{json.dumps(str(key))}]"


def instance_address(resource: Mapping[str, Any], instance: Mapping[str, Any]) -> str:
    """``module.app.lab_config_file.app``, ``data.x.y``, ``aws_instance.web[0]``."""
    prefix = f"{resource['module']}." if resource.get("module") else ""
    mode = "data." if resource.get("mode") == "data" else ""
    base = f"{prefix}{mode}{resource.get('type', '?')}.{resource.get('name', '?')}"
    return base + _index_suffix(instance.get("index_key"))


def iter_instances(state: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every resource instance as (address, instance object); tolerates odd shapes."""
    resources = state.get("resources")
    if not isinstance(resources, list):
        return
    for resource in resources:
        if not isinstance(resource, Mapping):
            continue
        instances = resource.get("instances")
        if not isinstance(instances, list):
            continue
        for instance in instances:
            if isinstance(instance, Mapping):
                yield instance_address(resource, instance), instance


def instance_attributes(instance: Mapping[str, Any]) -> Any:
    # Providers on the legacy SDK may still leave a flat string map in old states.
    attrs = instance.get("attributes")
    if attrs is None:
        attrs = instance.get("attributes_flat")
    return attrs


def flatten(
    value: Any, prefix: Path = (), *, values_only: bool = False
) -> Iterator[tuple[Path, Any]]:
    """Leaves of a JSON value as (path, leaf). Empty objects and lists are leaves too,
    so ``{}`` versus ``[]`` versus a missing key are all distinguishable.
    ``values_only`` skips the type descriptions of dynamic attributes."""
    # Concrete dict/list checks: decoded JSON is never another Mapping, and the ABC
    # checks cost a third of the time on a state with 100k attributes.
    if type(value) is dict and value:
        if values_only and value.keys() == _WRAPPER_KEYS:
            yield from flatten(value["value"], (*prefix, "value"), values_only=True)
            return
        for key, child in value.items():
            if type(child) is dict or type(child) is list:
                yield from flatten(child, (*prefix, str(key)), values_only=values_only)
            else:
                yield (*prefix, str(key)), child
    elif type(value) is list and value:
        for i, child in enumerate(value):
            if type(child) is dict or type(child) is list:
                yield from flatten(child, (*prefix, i), values_only=values_only)
            else:
                yield (*prefix, i), child
    else:
        yield prefix, value


def get_path(value: Any, path: Path) -> Any:
    """The value at ``path`` or None when any step is missing."""
    node = value
    for step in path:
        in_list = isinstance(step, int) and isinstance(node, list) and 0 <= step < len(node)
        in_map = isinstance(step, str) and isinstance(node, Mapping) and step in node
        if not (in_list or in_map):
            return None
        node = node[step]
    return node


_WRAPPER_KEYS = {"value", "type"}


def _is_dynamic_wrapper(node: object) -> bool:
    # Attributes of dynamic type (e.g. terraform_data.input) are stored as
    # {"value": ..., "type": ...}; Terraform's sensitive paths skip that wrapper.
    return isinstance(node, Mapping) and set(node) == {"value", "type"}


def _step_key(step: object) -> Step | None:
    if not isinstance(step, Mapping):
        return None
    raw = step.get("value")
    if step.get("type") == "index" and isinstance(raw, Mapping):
        raw = raw.get("value")
    if isinstance(raw, bool):
        return None
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, int | str):
        return raw
    return None


def resolve_steps(attributes: Any, steps: Sequence[object]) -> Path | None:
    """Map one of Terraform's ``sensitive_attributes`` paths onto the JSON layout of
    ``attributes``; steps past a missing value are kept literally so the path still
    covers whatever may appear there later."""
    path: list[Step] = []
    node: Any = attributes
    for raw in steps:
        key = _step_key(raw)
        if key is None:
            return None
        while True:
            if isinstance(node, Mapping) and str(key) in node:
                path.append(str(key))
                node = node[str(key)]
            elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
                path.append(key)
                node = node[key]
            elif _is_dynamic_wrapper(node):
                path.append("value")
                node = node["value"]
                continue
            else:
                path.append(key)
                node = None
            break
    return tuple(path)


def sensitive_paths(instance: Mapping[str, Any]) -> list[Path]:
    """JSON paths of the attributes Terraform marked sensitive in this instance."""
    marked = instance.get("sensitive_attributes")
    if not isinstance(marked, list):
        return []
    attrs = instance_attributes(instance)
    found: list[Path] = []
    for steps in marked:
        if isinstance(steps, list) and steps:
            path = resolve_steps(attrs, steps)
            if path and path not in found:
                found.append(path)
    return found


def covering(path: Path, prefixes: Sequence[Path]) -> Path | None:
    """The shortest of ``prefixes`` that ``path`` lies under (or equals), if any."""
    best: Path | None = None
    for prefix in prefixes:
        if path[: len(prefix)] == prefix and (best is None or len(prefix) < len(best)):
            best = prefix
    return best
