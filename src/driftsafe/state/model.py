"""Parse a Terraform state body into the few facts the server reasons about."""

from __future__ import annotations

import codecs
import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

import msgspec

from driftsafe.errors import BadRequest

# Terraform 0.12 and later write format version 4; older formats nest resources in
# modules and would make every count and diff here wrong, so they are refused.
SUPPORTED_FORMAT_VERSION = 4


@dataclass(frozen=True)
class TfState:
    """A validated state. ``resource_count`` counts resource instances, as
    ``terraform state list`` would list them (managed and data)."""

    version: int
    terraform_version: str
    serial: int
    lineage: str
    resource_count: int
    raw: dict[str, Any]


def _is_int(value: object) -> TypeGuard[int]:
    # bool is an int subclass; a state with "serial": true is not a state.
    return isinstance(value, int) and not isinstance(value, bool)


class _LeanResource(msgspec.Struct):
    instances: list[msgspec.Raw] = []


class _LeanState(msgspec.Struct):
    """Only what the checks below read. msgspec decodes it straight from the bytes and
    skips every other value (still checking the JSON syntax) without building it: no
    str of the body, no tree. Duplicate keys: the last wins, as with a plain dict."""

    version: Any = None
    serial: Any = None
    lineage: Any = None
    terraform_version: Any = ""
    resources: list[_LeanResource] = []
    outputs: msgspec.Raw = msgspec.Raw(b"{}")


_ITEM = re.compile(r"\$\.resources\[(\d+)\](\.instances)?")
_UTF8_SLICE = 1024 * 1024


def _check_utf8(body: bytes) -> None:
    # msgspec does not look inside the strings it skips; a state must be UTF-8 all
    # through (the server decodes it whole later). In slices: no copy of the body.
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(body)
    for start in range(0, len(view), _UTF8_SLICE):
        decoder.decode(view[start : start + _UTF8_SLICE])
    decoder.decode(b"", final=True)


def _parse_lean(body: bytes) -> TfState:
    try:
        _check_utf8(body)
        lean = msgspec.json.decode(body, type=_LeanState)
    except msgspec.ValidationError as exc:  # valid JSON, not a state (before DecodeError,
        # which it subclasses)
        where = str(exc).rpartition(" - at `")[2].rstrip("`")
        item = _ITEM.fullmatch(where)
        if where == "$" or " - at `" not in str(exc):
            raise BadRequest("not a Terraform state: the JSON is not an object") from None
        if where == "$.resources":
            raise BadRequest("not a Terraform state: 'resources' is not a list") from None
        if item is not None and item.group(2):
            raise BadRequest(
                f"not a Terraform state: resources[{item.group(1)}].instances is not a list"
            ) from None
        if item is not None:
            raise BadRequest(
                f"not a Terraform state: resources[{item.group(1)}] is not an object"
            ) from None
        raise BadRequest(f"not a Terraform state: {exc}") from None
    except (UnicodeDecodeError, msgspec.DecodeError) as exc:
        raise BadRequest(f"invalid JSON: {exc}") from None
    if bytes(memoryview(lean.outputs)[:1]) != b"{":  # a Raw value starts at its first byte
        raise BadRequest("not a Terraform state: 'outputs' is not an object")
    summary = {
        "version": lean.version,
        "serial": lean.serial,
        "lineage": lean.lineage,
        "terraform_version": lean.terraform_version,
        "resources": [{"instances": r.instances} for r in lean.resources],
    }
    return dataclasses.replace(state_from_json(summary), raw={})


def parse_state(body: bytes, *, keep_tree: bool = True) -> TfState:
    """Validate ``body`` as a Terraform state; raise BadRequest saying what is wrong.

    ``keep_tree=False`` validates the same way but does not keep the parsed tree
    (``raw`` is then empty), nor ever build it: a large state is not held again as a
    str or as Python objects."""
    # isspace(), not strip(): no copy of a large body (and bytearray works too).
    if not body or body.isspace():
        raise BadRequest("empty body: not a Terraform state")
    if not keep_tree:
        return _parse_lean(body)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"invalid JSON: {exc}") from None
    return state_from_json(data)


def state_from_json(data: object) -> TfState:
    """Like :func:`parse_state` for JSON that is already decoded."""
    if not isinstance(data, dict):
        raise BadRequest("not a Terraform state: the JSON is not an object")
    version = data.get("version")
    if not _is_int(version):
        raise BadRequest("not a Terraform state: missing integer 'version'")
    if version != SUPPORTED_FORMAT_VERSION:
        raise BadRequest(
            f"unsupported state format version {version}; "
            f"expected {SUPPORTED_FORMAT_VERSION} (Terraform 0.12 or later)"
        )
    serial = data.get("serial")
    if not _is_int(serial):
        raise BadRequest("not a Terraform state: missing integer 'serial'")
    if serial < 0:
        raise BadRequest(f"not a Terraform state: negative serial {serial}")
    lineage = data.get("lineage")
    if not isinstance(lineage, str) or not lineage:
        raise BadRequest("not a Terraform state: missing string 'lineage'")
    tf_version = data.get("terraform_version", "")
    if not isinstance(tf_version, str):
        raise BadRequest("not a Terraform state: 'terraform_version' is not a string")
    resources = data.get("resources", [])
    if not isinstance(resources, list):
        raise BadRequest("not a Terraform state: 'resources' is not a list")
    count = 0
    for i, resource in enumerate(resources):
        if not isinstance(resource, dict):
            raise BadRequest(f"not a Terraform state: resources[{i}] is not an object")
        instances = resource.get("instances", [])
        if not isinstance(instances, list):
            raise BadRequest(f"not a Terraform state: resources[{i}].instances is not a list")
        count += len(instances)
    outputs = data.get("outputs", {})
    if not isinstance(outputs, dict):
        raise BadRequest("not a Terraform state: 'outputs' is not an object")
    return TfState(
        version=version,
        terraform_version=tf_version,
        serial=serial,
        lineage=lineage,
        resource_count=count,
        raw=data,
    )
