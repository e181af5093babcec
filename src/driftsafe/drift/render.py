"""Human renderings of drift reports: a terminal table and a Markdown document."""

from __future__ import annotations

from typing import Any

from driftsafe.drift.classify import short
from driftsafe.drift.model import SCHEMA_VERSION, DriftFinding, RootReport, overall_exit_code

_HEADERS = ("ADDRESS", "ATTRIBUTE", "STATE", "REALITY", "CONFIG", "PLAIN APPLY WOULD")
# Values are cut to this many characters in the table (the JSON keeps them whole).
VALUE_WIDTH = 24
MESSAGE_WIDTH = 100


def _rows(f: DriftFinding) -> list[tuple[str, ...]]:
    """The finding's row, then one indented row per computed attribute folded under it."""
    rows: list[tuple[str, ...]] = [
        (
            f.address,
            f.path or "(resource)",
            short(f.state, VALUE_WIDTH),
            short(f.reality, VALUE_WIDTH),
            short(f.config, VALUE_WIDTH),
            _cut(f.message, MESSAGE_WIDTH),
        )
    ]
    for c in f.computed:
        rows.append(
            (
                "",
                f"↳ {c.path}",
                short(c.state, VALUE_WIDTH),
                short(c.reality, VALUE_WIDTH),
                short(c.config, VALUE_WIDTH),
                _cut(f"computed: follows {', '.join(_paths(c))}", MESSAGE_WIDTH),
            )
        )
    return rows


def _paths(computed: DriftFinding) -> list[str]:
    prefix = computed.address + "."
    return [t[len(prefix) :] if t.startswith(prefix) else t for t in computed.explained_by]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def changes_line(r: RootReport) -> str:
    """``2 manual change(s) on 1 resource(s)``: computed attributes that changed with a
    configured one are not counted again."""
    return (
        f"{len(r.findings)} manual change(s) on {len({f.address for f in r.findings})} resource(s)"
    )


def _unprefixed(r: RootReport) -> str:
    """The error message without the root it starts with (the header names it)."""
    message = str((r.error or {}).get("message"))
    return message.removeprefix(f"{r.root}: ")


def _heading(r: RootReport) -> str:
    return f"== {r.name}" if r.name == r.root else f"== {r.name} ({r.root})"


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
        head = _heading(r) + ": "
        if r.status == "error":
            out.append(head + "ERROR")
            out.append(f"   {_unprefixed(r)}")
        elif r.status == "clean":
            out.append(head + "no drift" + (f" ({len(r.ignored)} ignored)" if r.ignored else ""))
        else:
            out.append(head + f"DRIFT: {changes_line(r)}")
            if r.normal_plan_error:
                out.append(
                    "!! the normal plan failed, so this drift comes from a refresh-only plan "
                    f"and what apply would do is unknown: {r.normal_plan_error.get('message')}"
                )
            out.append(_table([_HEADERS, *(row for f in r.findings for row in _rows(f))]))
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
    return short(value, 40).replace("|", "\\|")


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
            out += [f"**Error:** {_unprefixed(r)}", ""]
            continue
        if r.normal_plan_error:
            out += [
                "**The normal plan failed**, so this drift comes from a refresh-only plan "
                f"and what apply would do is unknown: {r.normal_plan_error.get('message')}",
                "",
            ]
        if r.findings:
            out.append("| Address | Attribute | State | Reality | Config | Plain apply would |")
            out.append("| --- | --- | --- | --- | --- | --- |")
            for f in r.findings:
                out.append(
                    f"| `{f.address}` | `{f.path or '(resource)'}` | {_md_cell(f.state)} | "
                    f"{_md_cell(f.reality)} | {_md_cell(f.config)} | "
                    f"{f.message.replace('|', '/')} |"
                )
                for c in f.computed:
                    out.append(
                        f"| | ↳ `{c.path}` | {_md_cell(c.state)} | {_md_cell(c.reality)} | "
                        f"{_md_cell(c.config)} | computed: follows "
                        f"{', '.join(f'`{p}`' for p in _paths(c))} |"
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
            lines.append(f"*Drift in {r.name}*: {changes_line(r)}")
            lines += [f"• `{f.target}`: {f.message}" for f in r.findings[:10]]
            if len(r.findings) > 10:
                lines.append(f"• … and {len(r.findings) - 10} more")
        elif r.status == "error":
            lines.append(f"*Drift check failed in {r.name}*: {(r.error or {}).get('message')}")
        else:
            lines.append(f"No drift in {r.name}.")
    return "\n".join(lines)
