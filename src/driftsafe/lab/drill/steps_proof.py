"""Drill steps that prove properties of the stored state and the resources:
secrets stay out of state, one version per write, immutable replacement."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from driftsafe.client import Client
from driftsafe.lab.drill.context import Drill
from driftsafe.lab.drill.steps_drift import CONFIG_ADDR, RELEASE_ADDR
from driftsafe.lab.evidence import Transcript


def check_secret_not_stored(
    d: Drill,
    s: str,
    found: dict[str, bool],
    *,
    where: str,
    kind: str,
    scan_ok: bool,
    evidence: list[Transcript],
) -> None:
    """The raw search for the secret in every stored ``kind`` (``found``: label -> the
    secret is in it, searched in memory, never printed), then the check that neither
    those nor the stack's files hold it."""
    t_grep = d.ev.capture(
        s,
        f"Raw search for the secret in every {kind}",
        argv=["grep", "-c", "<secret>"],
        cwd=where,
        returncode=0 if any(found.values()) else 1,
        stdout="".join(f"{label}: {'FOUND' if hit else '0'}\n" for label, hit in found.items()),
        started_at=time.time(),
        ended_at=time.time(),
    )
    hits = local_hits(d)
    d.ev.check(
        "secret-not-in-state",
        s,
        "No stored state version (nor any file of the stack "
        "besides the secret file itself) holds the secret",
        scan_ok and bool(found) and not any(found.values()) and not hits,
        evidence=[*evidence, t_grep],
        detail=f"{len(found)} {kind}s scanned" + (f"; found in {hits}" if hits else ""),
    )


def step_secrets(d: Drill) -> None:
    s = "secrets"
    d.ev.step(s, "Secrets stay out of state")
    secret_in_file(d, s)
    scan, t_scan = d.ds(
        s,
        ["secrets", "scan", "--workspace", d.workspace("staging"), "--all-versions", "--json"],
        "driftsafe secrets scan: every stored version of staging",
    )
    versions = d.api(
        s,
        "GET",
        f"/api/v1/workspaces/{d.workspace('staging')}/versions",
        "Stored versions of staging",
    )
    serials = [v["serial"] for v in (versions.body or {}).get("versions", [])]
    # The raw bodies are searched in memory, never printed.
    with Client(d.server_url, d.admin_token) as client:
        states = {n: client.version(d.workspace("staging"), n)["state"] for n in serials}
    check_secret_not_stored(
        d,
        s,
        {f"serial {n}": d.secret in json.dumps(state) for n, state in states.items()},
        where=d.server_url,
        kind="stored version",
        scan_ok=scan.returncode == 0,
        evidence=[t_scan],
    )
    scanner_can_fail(d, s, dict(states[serials[0]]) if serials else {})


def secret_in_file(d: Drill, s: str) -> None:
    """Check that the secret reached its file (compared by hash, never printed)."""
    secret_file = d.runtime("staging") / "secret.txt"
    actual = secret_file.read_bytes() if secret_file.is_file() else b""
    digest_file = hashlib.sha256(actual).hexdigest()
    digest_var = hashlib.sha256(d.secret.encode()).hexdigest()
    t_file = d.ev.capture(
        s,
        "The secret reached its file (compared by hash, never printed)",
        argv=["sha256sum", str(secret_file)],
        cwd=str(secret_file.parent),
        returncode=0,
        stdout=f"{digest_file}  secret.txt\n{digest_var}  (TF_VAR_app_secret)\n",
        started_at=time.time(),
        ended_at=time.time(),
    )
    d.ev.check(
        "secret-in-file",
        s,
        "The secret reached its file",
        actual.decode(errors="replace") == d.secret,
        evidence=[t_file],
    )


def local_hits(d: Drill) -> list[Path]:
    """Files of the stack, other than the secret file itself, that hold the secret."""
    return [
        p
        for p in d.stack.rglob("*")
        if p.is_file() and p.name != "secret.txt" and _contains(p, d.secret)
    ]


def scanner_can_fail(d: Drill, s: str, state: dict[str, Any]) -> None:
    """The control: the same scanner on ``state`` with a secret planted in it."""
    control = d.root / "control.tfstate"
    planted = "AKIA" + "ZQ3DRIFTSAFEX7Q2"  # AWS access key id format
    state.setdefault("resources", []).append(
        {
            "mode": "managed",
            "type": "lab_config_file",
            "name": "planted",
            "provider": 'provider["registry.driftsafe.local/driftsafe/lab"]',
            "instances": [
                {
                    "schema_version": 0,
                    "attributes": {
                        "path": "/tmp/planted.conf",
                        "db_password": d.secret,
                        "values": {"aws_access_key_id": planted},
                    },
                    "sensitive_attributes": [],
                }
            ],
        }
    )
    control.write_text(json.dumps(state, indent=2))
    ctl, t_ctl = d.ds(
        s,
        ["secrets", "scan", str(control)],
        "Control: the same scanner on a state with a planted secret",
    )
    d.ev.check(
        "secret-scanner-can-fail",
        s,
        "The scanner flags a secret planted in a control state (the check is able to fail)",
        ctl.returncode == 2,
        evidence=[t_ctl],
    )


def _contains(path: Path, needle: str) -> bool:
    try:
        return needle.encode() in path.read_bytes()
    except OSError:
        return False


def step_versions(d: Drill) -> None:
    s = "versions"
    d.ev.step(s, "Versions: one per write, and a diff between two")
    ws = d.workspace("staging")
    lst, t_lst = d.ds(s, ["state", "versions", ws], "driftsafe state versions lab/staging")
    js, _ = d.ds(s, ["state", "versions", ws, "--json"], "driftsafe state versions --json")
    try:
        versions = json.loads(js.stdout).get("versions", [])
    except ValueError:
        versions = []
    audit = d.api(
        s, "GET", f"/api/v1/audit?workspace={ws}&limit=1000", "Audit log: every accepted write"
    )
    writes = [
        e
        for e in (audit.body or {}).get("events", [])
        if e.get("action") == "write" and e.get("outcome") == "ok"
    ]
    serials = [v.get("serial") for v in versions]
    d.ev.check(
        "versions-one-per-write",
        s,
        "Every accepted write is its own version, with serial, time, writer and lock id",
        lst.returncode == 0
        and len(versions) == len(writes) > 0
        and serials == sorted(serials, reverse=True)
        and len(set(serials)) == len(serials)
        and all(v.get("created_at") and v.get("writer") for v in versions),
        evidence=[t_lst, audit.transcript],
        detail=f"{len(versions)} versions, {len(writes)} accepted writes",
    )
    a = d.figures.get("serial_before_resolution") or (serials[-1] if serials else 0)
    b = serials[0] if serials else 0
    diff, t_diff = d.ds(
        s, ["state", "diff", ws, str(a), str(b)], f"driftsafe state diff lab/staging {a} {b}"
    )
    d.ev.check(
        "versions-diff",
        s,
        "A diff between two versions names the changed resources and "
        "attribute paths (exit 2: they differ)",
        diff.returncode == 2
        and CONFIG_ADDR in diff.stdout
        and "values.max_connections" in diff.stdout,
        evidence=[t_diff],
    )
    d.figures["versions"] = len(versions)


def step_immutable(d: Drill) -> None:
    s = "immutable"
    d.ev.step(s, "Immutable replacement beside a mutable resource")
    rt = d.runtime("staging")
    current = rt / "current"
    old_target = os.readlink(current) if current.is_symlink() else ""
    tfvars = d.env_dir("staging") / "terraform.tfvars"
    text = tfvars.read_text()
    tfvars.write_text(
        re.sub(r'^(release_content\s*=\s*)".*"', r'\1"app 1.1.0\\n"', text, flags=re.M)
    )
    ap, t_ap = d.tf(
        s,
        "staging",
        ["apply", "-auto-approve", "-no-color"],
        "apply a new release (create_before_destroy)",
    )
    new_target = os.readlink(current) if current.is_symlink() else ""
    out = ap.stdout
    created = out.find(f"{RELEASE_ADDR}: Creation complete")
    destroyed = out.find(f"{RELEASE_ADDR} (deposed object")
    t_link = d.ev.capture(
        s,
        "The current pointer and the releases on disk",
        argv=["ls", "-l", str(rt)],
        cwd=str(rt),
        returncode=0,
        stdout=_listing(rt),
        started_at=time.time(),
        ended_at=time.time(),
    )
    d.ev.check(
        "immutable-cbd",
        s,
        "A release change is `create replacement and then destroy`: the "
        "new release exists before the old goes, the pointer moved, the old release is gone",
        ap.returncode == 0
        and "create replacement and then destroy" in out
        and 0 <= created < destroyed
        and new_target != old_target
        and Path(new_target).is_dir()
        and not Path(old_target).exists(),
        evidence=[t_ap, t_link],
    )
    # Tamper with the release by hand.
    files = [p for p in Path(new_target).rglob("*") if p.is_file()] if new_target else []
    tampered = False
    if files:
        target = files[0]
        os.chmod(target.parent, 0o755)
        os.chmod(target, 0o644)
        target.write_text(target.read_text() + "patched by hand\n")
        tampered = True
    plan, t_plan = d.tf(
        s,
        "staging",
        ["plan", "-no-color", "-detailed-exitcode"],
        "plan after tampering with the release",
    )
    d.ev.check(
        "immutable-tamper",
        s,
        "Tampering with a release is detected and answered by a replacement, not an in-place edit",
        tampered
        and plan.returncode == 2
        and RELEASE_ADDR in plan.stdout
        and "must be replaced" in plan.stdout,
        evidence=[t_plan],
    )
    fix, t_fix = d.tf(
        s,
        "staging",
        ["apply", "-auto-approve", "-no-color"],
        "apply: a fresh copy of the release replaces the tampered one",
    )
    schema, t_schema = d.tf(
        s, "staging", ["providers", "schema", "-json"], "the lab provider's schema"
    )
    table, surface = _surface_table(schema.stdout)
    art = d.ev.artifact(s, "Drift surface: what can change in place", table, kind="table-md")
    d.ev.check(
        "immutable-surface",
        s,
        "The immutable release has a smaller drift surface than the mutable config file",
        fix.returncode == 0 and "| lab_release |" in table and surface[0] > surface[1],
        evidence=[art, t_schema],
    )


def _listing(directory: Path) -> str:
    lines = []
    for p in sorted(directory.iterdir()):
        if p.is_symlink():
            lines.append(f"{p.name} -> {os.readlink(p)}")
        elif p.is_dir():
            lines.append(f"{p.name}/")
            lines += [f"  {c.name}/" for c in sorted(p.iterdir())]
        else:
            lines.append(f"{p.name} ({oct(p.stat().st_mode & 0o777)[2:]})")
    return "\n".join(lines) + "\n"


def _surface_table(schema_json: str) -> tuple[str, tuple[int, int]]:
    """Drift surface from the provider's own schema: configurable attributes that the
    provider updates in place. The release forces replacement on every configurable
    attribute (shown by the tamper plan above), so its in-place surface is empty."""
    try:
        schemas = json.loads(schema_json)["provider_schemas"]
        lab = next(iter(schemas.values()))["resource_schemas"]
    except (ValueError, KeyError, StopIteration):
        return "schema unavailable\n", (0, 0)

    def configurable(name: str) -> list[str]:
        attrs = lab.get(name, {}).get("block", {}).get("attributes", {})
        return sorted(k for k, v in attrs.items() if v.get("optional") or v.get("required"))

    # path forces replacement for the config file; everything else is updated in place.
    cfg = [a for a in configurable("lab_config_file") if a != "path"]
    rel: list[str] = []
    rows = [
        "| resource | configurable attributes | changeable in place (drift surface) | on drift |",
        "| --- | --- | --- | --- |",
        f"| lab_config_file | {', '.join(configurable('lab_config_file'))} | {', '.join(cfg)} "
        "| silently reverted by the next apply |",
        f"| lab_release | {', '.join(configurable('lab_release'))} | (none) "
        "| replaced whole: create a fresh copy, then destroy |",
    ]
    return "\n".join(rows) + "\n", (len(cfg), len(rel))
