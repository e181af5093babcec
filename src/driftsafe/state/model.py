"""Parse a Terraform state body into the few facts the server reasons about."""

from __future__ import annotations

import base64
import binascii
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


# OpenTofu's state encryption writes this envelope instead of a state; its only format
# version so far is "v0" (OpenTofu calls it both a sigil and a compatibility field).
ENVELOPE_VERSIONS = ("v0",)


@dataclass(frozen=True)
class EncryptedState:
    """An OpenTofu client-side encrypted state envelope:
    ``{"meta": {...}, "encrypted_data": "<base64>", "encryption_version": "v0"}``.

    Opaque to the server: no serial, lineage or resources can be read from it, so the
    server numbers its versions itself and cannot apply the serial/lineage rules or
    scan it for secrets. ``key_providers`` are the meta keys (e.g.
    ``key_provider.pbkdf2.main``): which key providers a reader needs, never a key."""

    encryption_version: str
    key_providers: tuple[str, ...]
    encrypted_bytes: int

    @property
    def format(self) -> str:
        return f"opentofu-encrypted-{self.encryption_version}"


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
    # An OpenTofu envelope's fields: Raw, so a big envelope's data is not decoded here.
    encryption_version: Any = None
    encrypted_data: msgspec.Raw = msgspec.Raw(b"")
    meta: msgspec.Raw = msgspec.Raw(b"")


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


def _envelope(version: object, data: object, meta: object) -> EncryptedState:
    """Validate an envelope's three fields (``data`` the base64 text)."""
    if not isinstance(version, str) or version not in ENVELOPE_VERSIONS:
        raise BadRequest(
            f"unsupported OpenTofu encryption_version {version!r}: this server knows "
            + ", ".join(ENVELOPE_VERSIONS)
        )
    if not isinstance(meta, dict):
        raise BadRequest("not an OpenTofu encrypted state: 'meta' is not an object")
    if not isinstance(data, str) or not data:
        raise BadRequest("not an OpenTofu encrypted state: 'encrypted_data' is not a string")
    try:
        size = len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        raise BadRequest(
            "not an OpenTofu encrypted state: 'encrypted_data' is not base64"
        ) from None
    return EncryptedState(version, tuple(sorted(str(k) for k in meta)), size)


def _lean_envelope(lean: _LeanState) -> EncryptedState:
    def raw_json(raw: msgspec.Raw) -> object:
        return msgspec.json.decode(raw) if bytes(memoryview(raw)[:1]) else None

    try:
        data = raw_json(lean.encrypted_data)
        meta = raw_json(lean.meta)
    except msgspec.DecodeError as exc:  # already checked as JSON; defensive and precise
        raise BadRequest(f"invalid JSON: {exc}") from None
    return _envelope(lean.encryption_version, data, meta)


def _parse_lean(body: bytes) -> TfState | EncryptedState:
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
    if lean.encryption_version is not None:
        return _lean_envelope(lean)
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
    found = parse_body(body, keep_tree=keep_tree)
    if isinstance(found, EncryptedState):
        raise BadRequest(
            "this is an OpenTofu encrypted state envelope, not a plain state: it can "
            "only be read with the key it was encrypted with"
        )
    return found


def parse_body(body: bytes, *, keep_tree: bool = True) -> TfState | EncryptedState:
    """What a backend write may carry: a Terraform state, or OpenTofu's encrypted
    envelope (told apart by its ``encryption_version``). Anything else is refused
    with BadRequest, as by :func:`parse_state`."""
    # isspace(), not strip(): no copy of a large body (and bytearray works too).
    if not body or body.isspace():
        raise BadRequest("empty body: not a Terraform state")
    if not keep_tree:
        return _parse_lean(body)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"invalid JSON: {exc}") from None
    if isinstance(data, dict) and "encryption_version" in data:
        return _envelope(data["encryption_version"], data.get("encrypted_data"), data.get("meta"))
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
