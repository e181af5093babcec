"""Turn Terraform's JSON plans into drift findings.

A report reads two parts of plan JSON, both in one normal plan (or, with
``--refresh-only-evidence`` or as a fallback, the first from a refresh-only plan).
``resource_drift`` says what changed outside Terraform: ``change.before`` is the
value in state, ``change.after`` the value read from reality now. ``resource_changes``
says what the configuration asks for (``change.after``) and what a plain apply would
do (``change.actions``), which is the part people miss: an apply silently reverts
every manual change the configuration does not already agree with.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from driftsafe.drift.model import (
    ABSENT,
    SENSITIVE,
    UNKNOWN,
    DriftFinding,
    PlannedChange,
    fingerprint,
)

UNPLANNED = "the normal plan failed, so what apply would do is unknown"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_MISSING = object()


def join_path(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    part = key if _IDENT.match(key) else '["' + key.replace('"', '\\"') + '"]'
    if not prefix:
        return part
    return prefix + part if part.startswith("[") else f"{prefix}.{part}"


def split_path(path: str) -> list[str | int]:
    """``values.max_connections`` / ``tags["a.b"]`` / ``list[0]`` -> path segments."""
    parts: list[str | int] = []
    for match in re.finditer(
        r'\["((?:[^"\\]|\\.)*)"\]|\[(\d+)\]|\.?([A-Za-z_][A-Za-z0-9_-]*)', path
    ):
        quoted, index, ident = match.groups()
        if quoted is not None:
            parts.append(quoted.replace('\\"', '"'))
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(ident)
    return parts


def _child(value: Any, key: str | int) -> Any:
    if isinstance(value, Mapping) and isinstance(key, str):
        return value.get(key, _MISSING)
    if isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value):
        return value[key]
    return _MISSING


def _flag(marks: Any, key: str | int) -> Any:
    """Sensitivity/unknown marks mirror the value; a ``True`` covers everything below."""
    if marks is True:
        return True
    child = _child(marks, key)
    return None if child is _MISSING else child


def _any_true(marks: Any) -> bool:
    if marks is True:
        return True
    if isinstance(marks, Mapping):
        return any(_any_true(v) for v in marks.values())
    if isinstance(marks, list):
        return any(_any_true(v) for v in marks)
    return False


def lookup(value: Any, marks_sensitive: Any, marks_unknown: Any, parts: list[str | int]) -> Any:
    """The value at ``parts``, or SENSITIVE / UNKNOWN / None when absent."""
    for part in parts:
        if marks_sensitive is True:
            return SENSITIVE
        if marks_unknown is True:
            return UNKNOWN
        value = _child(value, part)
        marks_sensitive = _flag(marks_sensitive, part)
        marks_unknown = _flag(marks_unknown, part)
        if value is _MISSING:
            return UNKNOWN if marks_unknown is True else None
    if _any_true(marks_sensitive):
        return SENSITIVE
    if marks_unknown is True:
        return UNKNOWN
    return value


def diff_values(
    before: Any, after: Any, before_sens: Any, after_sens: Any, prefix: str = ""
) -> Iterator[tuple[str, Any, Any, bool]]:
    """(path, before, after, sensitive) for every leaf that differs.

    Maps and objects recurse by key, lists of equal length by index; anything else
    that differs is reported whole. Sensitive leaves compare equal-or-not only.
    """
    sensitive = before_sens is True or after_sens is True
    if sensitive:
        if before != after:
            yield prefix, SENSITIVE, SENSITIVE, True
        return
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in sorted(set(before) | set(after)):
            yield from diff_values(
                before.get(key),
                after.get(key),
                _flag(before_sens, key),
                _flag(after_sens, key),
                join_path(prefix, key),
            )
        return
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            yield from diff_values(
                b, a, _flag(before_sens, i), _flag(after_sens, i), join_path(prefix, i)
            )
        return
    if before != after:
        yield prefix, before, after, False


def short(value: Any, limit: int = 60) -> str:
    """A value as people read it in a sentence: strings bare, the rest as JSON."""
    import json

    if value is None:
        return ABSENT
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_replace(actions: list[str]) -> bool:
    return "delete" in actions and "create" in actions


def _changes_by_address(plan: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    if not plan:
        return {}
    return {rc["address"]: rc for rc in plan.get("resource_changes") or [] if "address" in rc}


def configured_attributes(plan: Mapping[str, Any] | None) -> dict[str, set[str]]:
    """Resource address (without instance keys) -> attributes its configuration sets."""
    found: dict[str, set[str]] = {}

    def walk(module: Mapping[str, Any], prefix: str) -> None:
        for res in module.get("resources") or []:
            found[prefix + res.get("address", "")] = set(res.get("expressions") or {})
        for name, call in (module.get("module_calls") or {}).items():
            walk(call.get("module") or {}, f"{prefix}module.{name}.")

    walk(((plan or {}).get("configuration") or {}).get("root_module") or {}, "")
    return found


def _config_key(address: str) -> str:
    return re.sub(r'\[(?:\d+|"(?:[^"\\]|\\.)*")\]', "", address)


def classify(
    refresh_plan: Mapping[str, Any],
    normal_plan: Mapping[str, Any] | None,
    *,
    root: str,
    ignore: Callable[[DriftFinding], str | None] | None = None,
) -> tuple[list[DriftFinding], list[DriftFinding], list[PlannedChange]]:
    """(findings, ignored findings, planned non-drift changes) for one root.

    ``refresh_plan`` is any plan carrying ``resource_drift`` (a normal plan does);
    ``normal_plan`` None means the normal plan failed: what apply would do is unknown.
    """
    planned = _changes_by_address(normal_plan)
    # Every plan's JSON carries the configuration, a refresh-only one's too.
    configured = configured_attributes(normal_plan or refresh_plan)
    findings: list[DriftFinding] = []
    drifted: set[str] = set()
    for entry in refresh_plan.get("resource_drift") or []:
        if entry.get("mode") == "data":
            continue  # data sources are re-read on every plan: not drift
        address = entry["address"]
        change = entry.get("change") or {}
        actions = list(change.get("actions") or [])
        drifted.add(address)
        normal = planned.get(address)
        n_change = (normal or {}).get("change") or {}
        n_actions = list(n_change.get("actions") or [])
        if actions == ["delete"] or change.get("after") is None:
            findings.append(_deleted(entry, root, n_actions, normal_plan is not None))
            continue
        for path, state, reality, sensitive in diff_values(
            change.get("before"),
            change.get("after"),
            change.get("before_sensitive"),
            change.get("after_sensitive"),
        ):
            parts = split_path(path)
            if normal is None:
                config: Any = UNKNOWN
            else:
                config = lookup(
                    n_change.get("after"),
                    n_change.get("after_sensitive"),
                    n_change.get("after_unknown"),
                    parts,
                )
            if config == SENSITIVE:
                sensitive = True
            if sensitive:
                state = reality = config = SENSITIVE
            if normal_plan is None:
                apply, message = "unknown", UNPLANNED
            else:
                apply, message = _verdict(
                    path, state, reality, config, n_actions, normal is None, sensitive
                )
            top = parts[0] if parts else ""
            is_set = (
                _config_key(address) not in configured or top in configured[_config_key(address)]
            )
            if not is_set:
                message += " (computed by the provider, not set in the configuration)"
            findings.append(
                DriftFinding(
                    address=address,
                    kind="changed",
                    path=path,
                    state=state,
                    reality=reality,
                    config=config,
                    apply=apply,
                    message=message,
                    sensitive=sensitive,
                    configured=is_set,
                    resource_type=entry.get("type", ""),
                    root=root,
                    # The value is part of the print so that a further manual change to the
                    # same attribute alerts again; a sensitive value never enters the hash.
                    fingerprint=fingerprint(root, address, path, "changed", state, reality),
                )
            )
    kept: list[DriftFinding] = []
    ignored: list[DriftFinding] = []
    for finding in fold_computed(findings):
        reason = ignore(finding) if ignore else None
        if reason is None:
            kept.append(finding)
        else:
            finding.ignored_reason = reason
            ignored.append(finding)
    others = [
        PlannedChange(address, list(rc["change"]["actions"]))
        for address, rc in planned.items()
        if address not in drifted
        and rc.get("mode") != "data"
        and list(rc.get("change", {}).get("actions") or []) not in (["no-op"], ["read"])
    ]
    return kept, ignored, others


def fold_computed(findings: list[DriftFinding]) -> list[DriftFinding]:
    """Fold each computed attribute's change under a configured change of the same
    resource, which explains it: one edit to ``max_connections`` in a config file is one
    manual change, though the file's computed ``content`` changed with it. A computed
    change with no configured change beside it stays a finding of its own."""
    explaining: dict[str, list[DriftFinding]] = {}
    for f in findings:
        if f.kind == "changed" and f.configured:
            explaining.setdefault(f.address, []).append(f)
    kept = []
    for f in findings:
        hosts = explaining.get(f.address)
        if f.kind == "changed" and not f.configured and hosts:
            f.explained_by = [h.target for h in hosts]
            hosts[0].computed.append(f)
        else:
            kept.append(f)
    return kept


def _deleted(
    entry: Mapping[str, Any], root: str, n_actions: list[str], planned: bool = True
) -> DriftFinding:
    address = entry["address"]
    if not planned:
        apply, message = "unknown", f"deleted outside Terraform; {UNPLANNED}"
    elif "create" in n_actions:
        apply, message = "recreate", "deleted outside Terraform; apply would recreate it"
    elif not n_actions:
        apply = "forget"
        message = "deleted outside Terraform; no longer in the configuration, apply forgets it"
    else:
        apply, message = "unknown", f"deleted outside Terraform; apply would {'+'.join(n_actions)}"
    return DriftFinding(
        address=address,
        kind="deleted",
        path="",
        state="(exists)",
        reality="(deleted)",
        config=("(exists)" if "create" in n_actions else ABSENT) if planned else UNKNOWN,
        apply=apply,
        message=message,
        resource_type=entry.get("type", ""),
        root=root,
        fingerprint=fingerprint(root, address, "", "deleted"),
    )


def _verdict(
    path: str,
    state: Any,
    reality: Any,
    config: Any,
    actions: list[str],
    gone: bool,
    sensitive: bool,
) -> tuple[str, str]:
    if gone or not actions:
        return "unknown", "not in the normal plan; the configuration may no longer manage it"
    if actions == ["delete"]:
        return "destroy", "no longer in the configuration: apply would destroy the resource"
    if sensitive:
        if actions == ["no-op"]:
            return "ignore", "sensitive value changed outside Terraform; apply leaves it"
        return "revert", f"apply would silently overwrite the sensitive {path}"
    if config == UNKNOWN:
        return "unknown", f"{path} is known only after apply; apply may change it"
    if config == reality:
        return "keep", (
            f"configuration already asks for {short(reality)}; apply keeps it "
            "(only the state is stale)"
        )
    if _is_replace(actions):
        return "replace", (
            f"apply would replace the resource, setting {path} back "
            f"{short(reality)} -> {short(config)}"
        )
    if actions == ["no-op"]:
        return "ignore", f"apply leaves {path} at {short(reality)} (the configuration ignores it)"
    return "revert", f"apply would silently revert {path} {short(reality)} -> {short(config)}"
