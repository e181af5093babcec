"""Human renderings of drift reports: a terminal table and a Markdown document."""

from __future__ import annotations

from typing import Any

from driftsafe.drift.classify import short
from driftsafe.drift.model import SCHEMA_VERSION, DriftFinding, RootReport, overall_exit_code

_HEADERS = ("ADDRESS", "ATTRIBUTE", "STATE", "REALITY", "CONFIG", "PLAIN APPLY WOULD")


def _row(f: DriftFinding, width: int = 24) -> tuple[str, ...]:
    attr = f.path or "(resource)"
    return (
        f.address,
        attr,
        short(f.state, width),
        short(f.reality, width),
        short(f.config, width),
        f.message,
    )


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def render_drift_table(reports: list[RootReport]) -> str:
    out: list[str] = []
    for r in reports:
        head = f"== {r.name} ({r.root}): "
        if r.status == "error":
            out.append(head + "ERROR")
            out.append(f"   {(r.error or {}).get('message')}")
        elif r.status == "clean":
            out.append(head + "no drift" + (f" ({len(r.ignored)} ignored)" if r.ignored else ""))
        else:
            out.append(
                head + f"DRIFT: {len(r.findings)} finding(s) "
                f"on {len({f.address for f in r.findings})} resource(s)"
            )
            out.append(_table([_HEADERS, *(_row(f) for f in r.findings)]))
            reverts = [f for f in r.findings if f.apply in ("revert", "replace", "recreate")]
            if reverts:
                out.append(
                    f"!! a plain `terraform apply` would silently undo {len(reverts)} "
                    "manual change(s); codify or revert first: driftsafe drift resolve"
                )
        for f in r.ignored:
            out.append(f"   ignored {f.target}: {f.ignored_reason}")
        if r.planned_changes and r.status != "error":
            names = ", ".join(f"{c.address} ({'+'.join(c.actions)})" for c in r.planned_changes)
            out.append(f"   also pending from configuration (not drift): {names}")
        out.append("")
    code = overall_exit_code(reports)
    out.append({0: "No drift.", 2: "Drift detected.", 1: "Drift check failed."}[code])
    return "\n".join(out)


def _md_cell(value: Any) -> str:
    return short(value, 80).replace("|", "\\|")


def render_drift_markdown(reports: list[RootReport], *, generated_at: str) -> str:
    code = overall_exit_code(reports)
    verdict = {0: "no drift", 2: "drift detected", 1: "check failed"}[code]
    out = [
        f"# Drift report: {verdict}",
        "",
        f"Generated {generated_at} by driftsafe (report schema v{SCHEMA_VERSION}).",
        "",
    ]
    for r in reports:
        out.append(f"## `{r.name}`: {r.status}")
        out.append("")
        if r.status == "error":
            out += [f"**Error:** {(r.error or {}).get('message')}", ""]
            continue
        if r.findings:
            out.append("| Address | Attribute | State | Reality | Config | Plain apply would |")
            out.append("| --- | --- | --- | --- | --- | --- |")
            for f in r.findings:
                out.append(
                    f"| `{f.address}` | `{f.path or '(resource)'}` | {_md_cell(f.state)} | "
                    f"{_md_cell(f.reality)} | {_md_cell(f.config)} | "
                    f"{f.message.replace('|', '/')} |"
                )
            out.append("")
            out.append(
                f"Fingerprint: `{r.fingerprint}`. Resolve with `driftsafe drift resolve "
                f"{r.root} --codify ADDR.ATTR` (keep reality) or `--revert ADDR.ATTR`."
            )
            out.append("")
        else:
            out += ["No drift.", ""]
        if r.ignored:
            out.append("Ignored:")
            out += [f"- `{f.target}`: {f.ignored_reason}" for f in r.ignored]
            out.append("")
    return "\n".join(out)


def slack_text(reports: list[RootReport]) -> str:
    """The one-paragraph summary a chat channel shows."""
    lines = []
    for r in reports:
        if r.status == "drift":
            lines.append(f"*Drift in {r.name}*: {len(r.findings)} finding(s)")
            lines += [f"• `{f.target}`: {f.message}" for f in r.findings[:10]]
            if len(r.findings) > 10:
                lines.append(f"• … and {len(r.findings) - 10} more")
        elif r.status == "error":
            lines.append(f"*Drift check failed in {r.name}*: {(r.error or {}).get('message')}")
        else:
            lines.append(f"No drift in {r.name}.")
    return "\n".join(lines)
