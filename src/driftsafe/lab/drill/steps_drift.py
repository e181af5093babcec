"""Drill steps about reality versus state: drift, resolution, secrets, versions,
immutable replacement, scheduled detection, and the closing reflection."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from driftsafe.lab.drill.context import Drill, DrillError

CONFIG_ADDR = "module.app.lab_config_file.app"
FEATURES_ADDR = "module.app.lab_config_file.features"
RELEASE_ADDR = "module.app.lab_release.app"


def _set_conf_value(path: Path, key: str, value: str) -> str:
    """Edit ``key = value`` in a lab config file by hand; return the old value."""
    text = path.read_text()
    match = re.search(rf"^{re.escape(key)}\s*=\s*(.*)$", text, re.M)
    if not match:
        raise DrillError(f"{path} has no {key} line")
    path.write_text(text[: match.start(1)] + value + text[match.end(1) :])
    return match.group(1).strip()


def step_drift(d: Drill) -> None:
    s = "drift"
    d.ev.step(s, "Drift: two changes made by hand, caught before anyone applies")
    app_conf = d.runtime("staging") / "app.conf"
    features = d.runtime("staging") / "features.conf"
    old = _set_conf_value(
        app_conf, "max_connections", str(int(_conf(app_conf)["max_connections"]) * 4)
    )
    new = _conf(app_conf)["max_connections"]
    features.chmod(0o666)
    d.figures["hotfix"] = {"old": old, "new": new}
    t_app = d.show_file(s, app_conf, "The operator's hotfix: max_connections raised in app.conf")
    t_feat = d.show_file(s, features, "The harmful change: features.conf made world-writable")
    plan, t_plan = d.tf(
        s, "staging", ["plan", "-refresh-only", "-no-color"], "terraform plan -refresh-only"
    )
    d.ev.check(
        "drift-refresh-only",
        s,
        "`plan -refresh-only` reports both changes made outside Terraform",
        plan.returncode == 0
        and "changed outside of Terraform" in plan.stdout
        and CONFIG_ADDR in plan.stdout
        and FEATURES_ADDR in plan.stdout,
        evidence=[t_app, t_feat, t_plan],
    )
    md = d.root / "drift-staging.md"
    chk, t_chk = d.ds(
        s,
        ["drift", "check", "stack/envs/staging", "--json", "--markdown", str(md)],
        "driftsafe drift check envs/staging --json",
        cwd=d.root,
    )
    report_text = chk.stdout
    if md.is_file():
        d.ev.artifact(
            s,
            "Drift report (Markdown, as the scheduled job would post it)",
            md.read_text(),
            kind="table-md",
        )
    d.ev.check(
        "drift-report",
        s,
        "The drift report exits 2 and names the resource, the attribute "
        "and that a blind apply would silently revert the hotfix",
        chk.returncode == 2
        and CONFIG_ADDR in report_text
        and "max_connections" in report_text
        and "revert" in report_text
        and f"{new} -> {old}" in report_text.replace("→", "->"),
        evidence=[t_chk],
        detail=f"hotfix: max_connections {old} -> {new}",
    )
    blind, t_blind = d.tf(
        s, "staging", ["plan", "-no-color"], "what a blind apply would do (plan, not applied)"
    )
    d.ev.check(
        "drift-blind-revert",
        s,
        "A plain plan would put max_connections back: the silent revert the report warned about",
        re.search(rf'"max_connections"\s*=\s*"{new}"\s*->\s*"{old}"', blind.stdout) is not None,
        evidence=[t_blind],
    )


def _conf(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def step_resolution(d: Drill) -> None:
    s = "resolution"
    d.ev.step(s, "Resolution: codify the hotfix, revert the harmful change")
    versions = d.api(
        s,
        "GET",
        f"/api/v1/workspaces/{d.workspace('staging')}/versions",
        "Versions before the resolution",
    )
    d.figures["serial_before_resolution"] = ((versions.body or {}).get("versions") or [{}])[0].get(
        "serial"
    )
    tfvars = d.env_dir("staging") / "terraform.tfvars"
    res, t_res = d.ds(
        s,
        [
            "drift",
            "resolve",
            "stack/envs/staging",
            "--codify",
            f"{CONFIG_ADDR}.values.max_connections",
            "--revert",
            f"{FEATURES_ADDR}.mode",
            "--yes",
        ],
        "driftsafe drift resolve --codify ... --revert ...",
        cwd=d.root,
    )
    new = d.figures["hotfix"]["new"]
    t_vars = d.show_file(s, tfvars, "envs/staging/terraform.tfvars after codify")
    plan, t_plan = d.tf(
        s, "staging", ["plan", "-no-color", "-detailed-exitcode"], "plan after the resolution"
    )
    t_app = d.show_file(s, d.runtime("staging") / "app.conf", "app.conf keeps the hotfix")
    t_feat = d.show_file(s, d.runtime("staging") / "features.conf", "features.conf mode restored")
    mode = (d.runtime("staging") / "features.conf").stat().st_mode & 0o777
    d.ev.check(
        "resolve-codify",
        s,
        "The hotfix is codified: terraform.tfvars now says "
        f"max_connections = {new} and the file keeps it",
        res.returncode == 0
        and re.search(rf"^max_connections\s*=\s*{new}\s*$", tfvars.read_text(), re.M) is not None
        and _conf(d.runtime("staging") / "app.conf").get("max_connections") == new,
        evidence=[t_res, t_vars, t_app],
    )
    d.ev.check(
        "resolve-revert",
        s,
        "The harmful change is reverted: features.conf is 0644 again",
        res.returncode == 0 and mode == 0o644,
        evidence=[t_res, t_feat],
    )
    d.ev.check(
        "resolve-clean",
        s,
        "Afterwards `plan` says `No changes.`",
        plan.returncode == 0 and "No changes." in plan.stdout,
        evidence=[t_plan],
    )
    old = d.figures["hotfix"]["old"]
    d.ev.narrative(
        s,
        (
            f"**What was codified:** `{CONFIG_ADDR}.values.max_connections` — the "
            f"operator raised it from {old} to {new} by hand; the configuration "
            f"(`envs/staging/terraform.tfvars`) now says {new}, and "
            f"`apply -refresh-only` took reality into state.\n\n"
            f"**What was reverted:** `{FEATURES_ADDR}.mode` — someone made features.conf "
            f"world-writable; an apply targeted at exactly that resource put it back "
            f"to 0644.\n\n"
            f"**The silent revert avoided:** a blind `terraform apply` would have reset "
            f"max_connections to {old}, undoing the hotfix without a word, because "
            f"Terraform treats every difference from configuration as something to correct."
        ),
    )


def step_secrets(d: Drill) -> None:
    s = "secrets"
    d.ev.step(s, "Secrets stay out of state")
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
    leaked = []
    for serial in serials:
        body = _get_state(d, d.workspace("staging"), serial)
        if d.secret in body:
            leaked.append(serial)
    t_grep = d.ev.capture(
        s,
        "Raw search for the secret in every stored version",
        argv=["grep", "-c", "<secret>"],
        cwd=d.server_url,
        returncode=1 if not leaked else 0,
        stdout="".join(f"serial {n}: {'FOUND' if n in leaked else '0'}\n" for n in serials),
        started_at=time.time(),
        ended_at=time.time(),
    )
    local_hits = [
        p
        for p in d.stack.rglob("*")
        if p.is_file() and p.name != "secret.txt" and _contains(p, d.secret)
    ]
    d.ev.check(
        "secret-in-file",
        s,
        "The secret reached its file",
        actual.decode(errors="replace") == d.secret,
        evidence=[t_file],
    )
    d.ev.check(
        "secret-not-in-state",
        s,
        "No stored state version (nor any file of the stack "
        "besides the secret file itself) holds the secret",
        scan.returncode == 0 and bool(serials) and not leaked and not local_hits,
        evidence=[t_scan, t_grep],
        detail=f"{len(serials)} versions scanned"
        + (f"; found in {local_hits}" if local_hits else ""),
    )
    control = d.root / "control.tfstate"
    state = json.loads(_get_state(d, d.workspace("staging"), serials[0])) if serials else {}
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


def _get_state(d: Drill, ws: str, serial: int) -> str:
    import httpx

    r = httpx.get(
        f"{d.server_url}/api/v1/workspaces/{ws}/versions/{serial}",
        headers={"Authorization": f"Bearer {d.admin_token}"},
        timeout=30,
    )
    r.raise_for_status()
    return json.dumps(r.json().get("state", {}))


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


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append({"path": self.path, "body": body.decode()})  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        return


def step_scheduled(d: Drill) -> None:
    s = "scheduled"
    d.ev.step(s, "Scheduled drift detection with an alert")
    ci, t_ci = d.ds(s, ["ci", "init", "stack"], "driftsafe ci init", cwd=d.root)
    wf_dir = d.stack / ".github" / "workflows"
    texts = (
        {p.name: p.read_text() for p in sorted(wf_dir.glob("*.y*ml"))} if wf_dir.is_dir() else {}
    )
    arts = [d.ev.artifact(s, f".github/workflows/{n}", t, kind="text") for n, t in texts.items()]
    allt = "\n".join(texts.values())
    d.ev.check(
        "ci-workflows",
        s,
        "The generated workflows have a concurrency group, `-lock-timeout` and a schedule",
        ci.returncode == 0
        and "concurrency" in allt
        and "terraform-" in allt
        and "-lock-timeout" in allt
        and "schedule" in allt
        and "cron" in allt,
        evidence=[t_ci, *arts],
    )
    # Someone changes prod by hand overnight.
    prod_conf = d.runtime("prod") / "app.conf"
    old = _set_conf_value(prod_conf, "port", "9999")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hooks/drift"
        job, t_job = d.ds(
            s,
            ["drift", "check", "stack/envs/staging", "stack/envs/prod", "--notify", url],
            "the cron job: driftsafe drift check --notify",
            cwd=d.root,
            extra_env={"CI": "true", "GITHUB_EVENT_NAME": "schedule"},
        )
    finally:
        server.shutdown()
        server.server_close()
    received = list(server.received)  # type: ignore[attr-defined]
    payload = received[0]["body"] if received else ""
    t_hook = d.ev.capture(
        s,
        "What the webhook receiver got",
        argv=["POST", "/hooks/drift"],
        cwd=url,
        returncode=200 if received else 0,
        stdout=_pretty(payload) or "(nothing received)\n",
        started_at=time.time(),
        ended_at=time.time(),
    )
    d.ev.check(
        "scheduled-alert",
        s,
        "The scheduled check exits 2 and its alert, naming prod's "
        "drift, reaches the webhook before anyone applies",
        job.returncode == 2 and len(received) >= 1 and "prod" in payload and '"text"' in payload,
        evidence=[t_job, t_hook],
    )
    _set_conf_value(prod_conf, "port", old)


def _pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2) + "\n"
    except ValueError:
        return text


def step_reflection(d: Drill) -> None:
    s = "reflection"
    d.ev.step(s, "Reflection")
    audit = d.api(s, "GET", "/api/v1/audit?limit=5000", "The whole audit log")
    events: list[dict[str, Any]] = (audit.body or {}).get("events", [])

    def count(action: str, outcome: str) -> int:
        return sum(1 for e in events if e.get("action") == action and e.get("outcome") == outcome)

    writes = count("write", "ok")
    rejected = count("write", "rejected")
    contended = sum(
        1 for e in events if e.get("action") == "lock" and e.get("outcome") not in ("ok", None)
    )
    forced = count("force-unlock", "ok")
    h = d.figures.get("handover", {})
    wait_ms = h.get("server_wait")
    d_versions = d.figures.get("versions", "?")
    d_old = d.figures.get("hotfix", {}).get("old", "?")
    d.ev.narrative(
        s,
        (
            f"In this run the state server accepted {writes} writes, each kept as its "
            f"own version ({d_versions} for staging alone), turned away {contended} lock "
            f"requests while another run held the lock, broke {forced} locks by hand "
            f"after checking their holders, and fenced {rejected} write(s) from a holder "
            f"that had lost its lock. The state file was the source of truth for every "
            f"plan — it is how Terraform knew that max_connections had been {d_old} — "
            f"and at the same time the hazard: a blind apply would have trusted it over "
            f"reality and reverted a live hotfix, a crashed run left it locked, and a "
            f"paused run would have overwritten a newer version had the server not "
            f"checked its lock. Versions, named locks, fencing and a drift report read "
            f"before applying turn each of those hazards into a visible, "
            f"recoverable event"
            + (
                f"; the server-side wait handed the lock over in {wait_ms * 1000:.0f} ms."
                if wait_ms
                else "."
            )
        ),
    )
    d.ev.check(
        "reflection",
        s,
        "The reflection is computed from this run's own audit log",
        audit.status == 200 and writes > 0,
        evidence=[audit.transcript],
    )
