"""Parse a Terraform state body into the few facts the server reasons about."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, TypeGuard

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


# The only keys whose values the checks below look at. Any other object is reduced to
# an empty dict as soon as it is parsed (see ``_keep_summary``).
_SUMMARY_KEYS = frozenset(
    ("version", "serial", "lineage", "terraform_version", "resources", "outputs", "instances")
)


def _keep_summary(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Called for every JSON object, innermost first: an object keeps only the keys the
    # validation reads (duplicate keys: the last wins, as with a plain dict), so the
    # big attribute values are freed while the rest of the body is still being parsed.
    return {key: value for key, value in pairs if key in _SUMMARY_KEYS}


def parse_state(body: bytes, *, keep_tree: bool = True) -> TfState:
    """Validate ``body`` as a Terraform state; raise BadRequest saying what is wrong.

    ``keep_tree=False`` validates the same way but does not keep the parsed tree
    (``raw`` is then empty): a large state is not held again as Python objects."""
    # isspace(), not strip(): no copy of a large body (and bytearray works too).
    if not body or body.isspace():
        raise BadRequest("empty body: not a Terraform state")
    try:
        data = json.loads(body) if keep_tree else json.loads(body, object_pairs_hook=_keep_summary)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"invalid JSON: {exc}") from None
    state = state_from_json(data)
    return state if keep_tree else dataclasses.replace(state, raw={})


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
