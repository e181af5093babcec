"""Drill steps about reality versus state: drift made by hand, and its resolution."""

from __future__ import annotations

import re
from pathlib import Path

from driftsafe.lab.drill.context import Drill, DrillError

CONFIG_ADDR = "module.app.lab_config_file.app"
FEATURES_ADDR = "module.app.lab_config_file.features"
RELEASE_ADDR = "module.app.lab_release.app"


def set_conf_value(path: Path, key: str, value: str) -> str:
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
    old = set_conf_value(
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
    d.backend.mark_before_resolution(d, s)
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
