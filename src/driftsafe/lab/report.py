"""Render a drill's :class:`~driftsafe.lab.evidence.Evidence` as HTML, Markdown and raw files.

``index.html`` is self-contained (inline CSS and SVG, no external fetch), opens with the
acceptance checklist, and HTML-escapes everything that was captured. ``report.md``
carries the same content. ``transcripts/`` keeps each command raw, as JSON and text.
"""

from __future__ import annotations

import json
import re
import signal as _signal
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from driftsafe.lab.evidence import (
    Artifact,
    Check,
    Evidence,
    Step,
    Transcript,
    strip_ansi,
)
from driftsafe.lab.markdown import inline, markdown_to_html
from driftsafe.timestamps import rfc3339

_CSS_PATH = Path(__file__).parent / "assets" / "report.css"
_COLLAPSE_LINES = 40  # longer streams fold into <details>, with their tail shown
_TAIL_LINES = 15
_SAFE_URL = re.compile(r"^(https?://|#|[A-Za-z0-9_./-]+$)")
_EMBEDDED = re.compile(
    r"^\S*python[0-9.]*"
    r"(?: -I -S \S*driftsafe/engine/embedded\.py| -m driftsafe\.engine\.embedded)( .*)?$",
    re.S,
)
_SVG_ACTIVE = re.compile(r"<script|<foreignObject|\son[a-z]+\s*=|javascript:", re.I)


def _esc(text: str) -> str:
    return escape(text, quote=True)


def _mark(passed: bool) -> str:
    return "✓" if passed else "✗"


# A check's state as a CSS class and a mark: passed, failed, or a backend limitation
# that the drill reproduced (neither a pass nor a failure of the drill).
_STATE = {"passed": "pass", "failed": "fail", "limitation": "limit"}
_MARK = {"passed": "✓", "failed": "✗", "limitation": "⚠"}
LIMITATION = "backend limitation, reproduced"


def _cstate(c: Check) -> str:
    return _STATE[c.status]


def _cmark(c: Check) -> str:
    return _MARK[c.status]


def _cdetail(c: Check) -> str:
    if c.status != "limitation":
        return c.detail
    return f"{LIMITATION}: {c.detail}" if c.detail else LIMITATION


def _signal_name(num: int) -> str:
    try:
        return _signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _status(tr: Transcript) -> str:
    if tr.signal:
        return f"killed by {_signal_name(tr.signal)}"
    return f"HTTP {tr.returncode}" if tr.is_http else f"exit {tr.returncode}"


def _secs(value: float) -> str:
    return f"{value:.2f} s" if value < 60 else f"{int(value // 60)} min {value % 60:.1f} s"


def _ev_links(ev: Evidence, refs: list[str]) -> str:
    titles = _titles(ev)
    return " ".join(
        f'<a href="#{_esc(r)}" title="{_esc(titles.get(r, r))}">{_esc(_short(r))}</a>' for r in refs
    )


def _short(ref: str) -> str:
    # "t-004-apply-staging" -> "t-004": the anchor's prefix is enough on a chip.
    m = re.match(r"([ta]-\d{3})", ref)
    return m.group(1) if m else ref


def _titles(ev: Evidence) -> dict[str, str]:
    titles = {}
    for step in ev.steps:
        titles[step.anchor] = f"{step.index}. {step.title}"
        for item in step.items:
            if not isinstance(item, str):
                titles[item.id] = item.title
    return titles


def _stream_html(name: str, text: str, css: str) -> str:
    text = strip_ansi(text).rstrip("\n")
    if not text.strip():
        return f'<div class="stream-label">{name}: <em>empty</em></div>'
    label = f'<div class="stream-label">{name}</div>'
    lines = text.split("\n")
    if len(lines) <= _COLLAPSE_LINES:
        return f'{label}<pre class="{css}">{_esc(text)}</pre>'
    tail = "\n".join(lines[-_TAIL_LINES:])
    return (
        f"{label}<details><summary>{name}: {len(lines)} lines, show all</summary>"
        f'<pre class="{css}">{_esc(text)}</pre></details>'
        f'<pre class="{css} tail">… last {_TAIL_LINES} lines\n{_esc(tail)}</pre>'
    )


def _transcript_html(ev: Evidence, tr: Transcript) -> str:
    badge = f'<span class="badge {"ok" if tr.ok else "err"}">{_esc(_status(tr))}</span>'
    if tr.timed_out:
        badge += ' <span class="badge err">timed out</span>'
    if tr.kind == "capture":
        badge += ' <span class="badge info">captured</span>'
    start = tr.started_at - ev.started_at
    meta = (
        f"<dt>cwd</dt><dd>{_esc(tr.cwd)}</dd>"
        f"<dt>started</dt><dd>{rfc3339(tr.started_at)} (+{start:.2f} s into the run)</dd>"
        f"<dt>ended</dt><dd>{rfc3339(tr.ended_at)}</dd>"
    )
    env = ""
    if tr.env:
        rows = "".join(
            f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in sorted(tr.env.items())
        )
        env = (
            f"<details><summary>environment ({len(tr.env)} variables set by driftsafe)"
            f'</summary><table class="env">{rows}</table></details>'
        )
    shown = _as_typed(tr)
    if shown != tr.command_line:
        meta += f"<dt>engine</dt><dd>{_esc(tr.command_line)}</dd>"
    stem = _esc(tr.file_stem)
    return (
        f'<article class="transcript" id="{_esc(tr.id)}"><header>'
        f'<span class="ttitle">{_esc(tr.title)}</span>{badge}'
        f'<span class="dur">{_secs(tr.duration)}</span>'
        f'<span class="rawlinks"><a href="transcripts/{stem}.json">json</a> · '
        f'<a href="transcripts/{stem}.txt">txt</a> · <a href="#{_esc(tr.id)}">#</a></span>'
        f'</header><div class="tbody"><pre class="cmd">$ {_esc(shown)}</pre>'
        f'<dl class="tmeta">{meta}</dl>{env}'
        f"{_stream_html('stdout', tr.stdout, 'stdout')}"
        f"{_stream_html('stderr', tr.stderr, 'stderr')}</div></article>"
    )


def _artifact_body_html(art: Artifact) -> str:
    if art.kind == "svg":
        if _SVG_ACTIVE.search(art.text):
            # Only our own figures are inlined; anything active is shown as source.
            return f"<pre>{_esc(art.text)}</pre>"
        return re.sub(r"^\s*<\?xml[^>]*\?>", "", art.text)
    if art.kind == "table-md":
        return markdown_to_html(art.text)
    if art.kind == "json":
        return f"<pre>{_esc(_pretty_json(art.text))}</pre>"
    return f"<pre>{_esc(strip_ansi(art.text))}</pre>"


def _pretty_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def _artifact_html(art: Artifact) -> str:
    return (
        f'<figure class="artifact" id="{_esc(art.id)}"><figcaption>'
        f'<span class="ttitle">{_esc(art.title)}</span>'
        f'<span class="badge info">{_esc(art.kind)}</span>'
        f'<span class="rawlinks"><a href="#{_esc(art.id)}">#</a></span></figcaption>'
        f'<div class="abody">{_artifact_body_html(art)}</div></figure>'
    )


def _check_target(ev: Evidence, c: Check) -> str:
    if c.reached:
        return c.anchor
    started = any(st.id == c.step_id for st in ev.steps)
    return f"step-{c.step_id}" if started else "checklist"


def _checks_html(ev: Evidence, checks: list[Check]) -> str:
    if not checks:
        return ""
    items = []
    for c in checks:
        state = _cstate(c)
        text = _cdetail(c)
        detail = f'<span class="detail">{inline(text)}</span>' if text else ""
        links = f' <span class="evlinks">{_ev_links(ev, c.evidence)}</span>' if c.evidence else ""
        items.append(
            f'<li class="{state}" id="{_esc(c.anchor)}"><span class="mark {state}">'
            f"{_cmark(c)}</span>{inline(c.criterion)}{links}{detail}</li>"
        )
    return f'<ul class="checks">{"".join(items)}</ul>'


def _step_html(ev: Evidence, step: Step) -> str:
    took = (step.ended_at or step.started_at) - step.started_at
    parts = [
        f'<section class="step" id="{_esc(step.anchor)}">',
        f"<h2>{step.index}. {_esc(step.title)}</h2>",
        f'<p class="step-meta">started +{step.started_at - ev.started_at:.1f} s · '
        f"took {_secs(took)}</p>",
        _checks_html(ev, step.checks),
    ]
    for item in step.items:
        if isinstance(item, str):
            parts.append(f'<div class="narrative">{markdown_to_html(item)}</div>')
        elif isinstance(item, Transcript):
            parts.append(_transcript_html(ev, item))
        else:
            parts.append(_artifact_html(item))
    parts.append("</section>")
    return "\n".join(parts)


def _summary(ev: Evidence) -> dict[str, Any]:
    checklist = ev.checklist()
    commands = [t for t in ev.transcripts if t.kind == "command"]
    ended = ev.ended_at or ev.started_at
    return {
        "started": rfc3339(ev.started_at),
        "finished": rfc3339(ended),
        "wall_seconds": round(ended - ev.started_at, 2),
        "steps": len(ev.steps),
        "commands": len(commands),
        "captures": len(ev.transcripts) - len(commands),
        "command_seconds": round(sum(t.duration for t in commands), 2),
        "criteria": len(checklist),
        "passed": sum(c.status == "passed" for c in checklist),
        "limitations": sum(c.status == "limitation" for c in checklist),
        "failed": sum(c.status == "failed" for c in checklist),
    }


def _verdict_text(s: dict[str, Any]) -> str:
    text = f"{s['passed']} of {s['criteria']} criteria passed"
    if s["limitations"]:
        plural = "s" if s["limitations"] > 1 else ""
        text += f" · {s['limitations']} backend limitation{plural}, reproduced"
    if s["failed"]:
        text += f" · {s['failed']} failed"
    return text


def render_report_html(ev: Evidence) -> str:
    s = _summary(ev)
    checklist = ev.checklist()
    ok = ev.all_passed
    verdict = (
        f'<div class="verdict {"pass" if ok else "fail"}">{_mark(ok)} {_verdict_text(s)}</div>'
    )

    rows = []
    step_names = {st.id: f"{st.index}. {st.title}" for st in ev.steps}
    for n, c in enumerate(checklist, 1):
        state = _cstate(c)
        target = _check_target(ev, c)
        where = step_names.get(c.step_id, f"{c.step_id} (not started)")
        rows.append(
            f'<tr class="{state}"><td class="mark">{_cmark(c)}</td><td>{n}</td>'
            f'<td class="crit"><a href="#{_esc(target)}">{inline(c.criterion)}</a>'
            f'<div class="where">{_esc(where)}</div></td>'
            f'<td class="ev">{_ev_links(ev, c.evidence)}</td>'
            f'<td class="detail">{inline(_cdetail(c))}</td></tr>'
        )
    checklist_html = (
        '<section id="checklist"><h2>Acceptance checklist</h2>'
        '<table class="checklist"><thead><tr><th></th><th>#</th><th>Criterion</th>'
        f"<th>Evidence</th><th>Detail</th></tr></thead><tbody>{''.join(rows)}</tbody>"
        "</table></section>"
    )
    step_rows = "".join(
        f'<tr><td><a href="#{_esc(st.anchor)}">{st.index}. {_esc(st.title)}</a></td>'
        f"<td>{_secs((st.ended_at or st.started_at) - st.started_at)}</td>"
        f"<td>{sum(c.status == 'passed' for c in st.checks)}/{len(st.checks)}"
        f"{'' if all(c.passed for c in st.checks) else ' ✗'}"
        f"{' ⚠' if any(c.status == 'limitation' for c in st.checks) else ''}</td></tr>"
        for st in ev.steps
    )
    summary_html = (
        '<section id="summary"><h2>Summary</h2><dl class="summary">'
        f"<dt>started</dt><dd>{s['started']}</dd><dt>finished</dt><dd>{s['finished']}</dd>"
        f"<dt>wall time</dt><dd>{_secs(s['wall_seconds'])}</dd>"
        f"<dt>steps</dt><dd>{s['steps']}</dd>"
        f"<dt>commands run</dt><dd>{s['commands']} ({_secs(s['command_seconds'])} in total)</dd>"
        f"<dt>other captures</dt><dd>{s['captures']}</dd>"
        f"<dt>criteria</dt><dd>{s['passed']} passed, {s['limitations']} {LIMITATION}, "
        f"{s['failed']} failed</dd></dl>"
        "<table><thead><tr><th>Step</th><th>Took</th><th>Checks</th></tr></thead>"
        f"<tbody>{step_rows}</tbody></table></section>"
    )
    subtitle = f'<p class="subtitle">{_esc(ev.subtitle)}</p>' if ev.subtitle else ""
    if ev.aborted is not None:
        verdict += f'<p class="aborted">✗ The drill stopped early: {_esc(ev.aborted)}</p>'
    body = "\n".join(_step_html(ev, st) for st in ev.steps)
    preface = "".join(
        f'<section class="preface">{markdown_to_html(block)}</section>' for block in ev.preface
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(ev.title)}</title><style>{_CSS_PATH.read_text(encoding='utf-8')}"
        f"</style></head><body><main><header><h1>{_esc(ev.title)}</h1>{subtitle}{verdict}"
        f"</header>\n{preface}{checklist_html}\n{summary_html}\n{body}\n"
        f"<footer>Generated by driftsafe from captured output; raw transcripts in "
        f'<a href="transcripts/">transcripts/</a>, checklist in '
        f'<a href="checklist.json">checklist.json</a>.</footer></main></body></html>\n'
    )


# -- Markdown -----------------------------------------------------------------------------


def _md_esc(text: str) -> str:
    """Markdown text with no HTML in it: `<`, `>` and `&` escaped, quotes left as they
    are (an entity such as `&#x27;` shows as itself in a viewer that does not render
    HTML, and quotes can start no tag)."""
    return escape(text, quote=False)


def _md_text(text: str) -> str:
    """Escape HTML outside `code` spans (GitHub renders inline HTML, but not in code)."""
    parts = re.split(r"(`[^`]+`)", text)
    return "".join(p if p.startswith("`") and len(p) > 1 else _md_esc(p) for p in parts)


def _md_cell(text: str) -> str:
    return _md_text(text).replace("|", "\\|").replace("\n", " ")


def _fence(text: str, lang: str = "") -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}{lang}\n{text.rstrip(chr(10))}\n{fence}"


def _md_links(refs: list[str]) -> str:
    return " ".join(f"[{_short(r)}](#{r})" for r in refs)


def render_report_markdown(ev: Evidence, figures: dict[str, str]) -> str:
    s = _summary(ev)
    ok = ev.all_passed
    out = [f"# {_md_esc(ev.title)}", ""]
    if ev.subtitle:
        out += [_md_esc(ev.subtitle), ""]
    out += [f"**{_mark(ok)} {_verdict_text(s)}**", ""]
    if ev.aborted is not None:
        out += [f"**✗ The drill stopped early:** {_md_esc(ev.aborted)}", ""]
    for block in ev.preface:
        out += [block.strip(), ""]
    out += ['<a id="checklist"></a>', "", "## Acceptance checklist", ""]
    out += ["| | # | Criterion | Evidence | Detail |", "|---|---|---|---|---|"]
    for n, c in enumerate(ev.checklist(), 1):
        target = _check_target(ev, c)
        out.append(
            f"| {_cmark(c)} | {n} | [{_md_cell(c.criterion)}](#{target}) | "
            f"{_md_links(c.evidence)} | {_md_cell(_cdetail(c))} |"
        )
    out += ["", "## Summary", ""]
    out += [
        f"- started {s['started']}, finished {s['finished']}, "
        f"wall time **{_secs(s['wall_seconds'])}**",
        f"- {s['steps']} steps, {s['commands']} commands run "
        f"({_secs(s['command_seconds'])} in total), {s['captures']} other captures",
        f"- criteria: {s['passed']} passed, {s['limitations']} {LIMITATION}, {s['failed']} failed",
        "",
    ]
    for st in ev.steps:
        took = (st.ended_at or st.started_at) - st.started_at
        out += [f'<a id="{st.anchor}"></a>', "", f"## {st.index}. {_md_esc(st.title)}", ""]
        out += [f"*started +{st.started_at - ev.started_at:.1f} s, took {_secs(took)}*", ""]
        for c in st.checks:
            text = _cdetail(c)
            detail = f" — {_md_text(text)}" if text else ""
            out.append(
                f'- <a id="{c.anchor}"></a>**{_cmark(c)}** {_md_text(c.criterion)} '
                f"{_md_links(c.evidence)}{detail}"
            )
        if st.checks:
            out.append("")
        for item in st.items:
            if isinstance(item, str):
                out += [item.strip(), ""]
            elif isinstance(item, Transcript):
                out += _transcript_md(item)
            else:
                out += _artifact_md(item, figures)
    return "\n".join(out).rstrip("\n") + "\n"


def _as_typed(tr: Transcript) -> str:
    """The command as a user would type it: the embedded engine is Terraform run
    through Python, so it is shown as ``terraform ...`` (the raw argv stays in the
    metadata and the transcript files)."""
    embedded = _EMBEDDED.match(tr.command_line)
    return "terraform" + (embedded.group(1) or "") if embedded else tr.command_line


def _transcript_md(tr: Transcript) -> list[str]:
    status = _status(tr)
    if tr.timed_out:
        status += ", timed out"
    out = [f'<a id="{tr.id}"></a>', "", f"### {_md_esc(tr.title)}", ""]
    out += [_fence(f"$ {_as_typed(tr)}", "console"), ""]
    out += [
        f"{status} · {_secs(tr.duration)} · started {rfc3339(tr.started_at)} · "
        f"cwd `{tr.cwd}` · raw: [json](transcripts/{tr.file_stem}.json), "
        f"[txt](transcripts/{tr.file_stem}.txt)",
        "",
    ]
    if tr.env:
        out.append("env: " + ", ".join(f"`{k}={v}`" for k, v in sorted(tr.env.items())))
        out.append("")
    for name, text in (("stdout", tr.stdout), ("stderr", tr.stderr)):
        clean = strip_ansi(text).rstrip("\n")
        if clean.strip():
            out += [f"{name}:", "", _fence(clean, "text"), ""]
    return out


def _artifact_md(art: Artifact, figures: dict[str, str]) -> list[str]:
    out = [f'<a id="{art.id}"></a>', "", f"### {_md_esc(art.title)}", ""]
    if art.kind == "svg":
        out.append(f"![{_md_esc(art.title)}]({figures[art.id]})")
    elif art.kind == "table-md":
        out.append(art.text.strip())
    else:
        lang = {"json": "json", "hcl": "hcl"}.get(art.kind, "text")
        body = _pretty_json(art.text) if art.kind == "json" else strip_ansi(art.text)
        out.append(_fence(body, lang))
    return [*out, ""]


# -- files --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportPaths:
    """Where :func:`write_report` put the report's files."""

    out_dir: Path
    index_html: Path
    report_md: Path
    transcripts_dir: Path
    checklist_json: Path


def write_report(ev: Evidence) -> ReportPaths:
    """Close ``ev`` and write index.html, report.md, checklist.json and transcripts/."""
    ev.close()
    out = ev.out_dir
    tdir = out / "transcripts"
    fdir = out / "figures"
    for d in (tdir, fdir):
        d.mkdir(parents=True, exist_ok=True)
        # A previous run's files would be mistaken for this run's evidence.
        for old in d.iterdir():
            if old.is_file() and old.suffix in (".json", ".txt", ".svg"):
                old.unlink()

    def write(path: Path, text: str) -> None:
        path.write_text(ev.scrub(text), encoding="utf-8")

    for tr in ev.transcripts:
        write(tdir / f"{tr.file_stem}.json", json.dumps(tr.to_json(), indent=2) + "\n")
        write(tdir / f"{tr.file_stem}.txt", tr.to_text())
    figures: dict[str, str] = {}
    for step in ev.steps:
        for item in step.items:
            if isinstance(item, Artifact) and item.kind == "svg":
                write(fdir / f"{item.id}.svg", item.text)
                figures[item.id] = f"figures/{item.id}.svg"
    checklist = ev.checklist()
    doc = {
        "title": ev.title,
        "all_passed": ev.all_passed,
        "aborted": ev.aborted,
        "passed": sum(c.status == "passed" for c in checklist),
        "limitations": sum(c.status == "limitation" for c in checklist),
        "failed": sum(c.status == "failed" for c in checklist),
        "total": len(checklist),
        "summary": _summary(ev),
        "checks": [c.to_json() for c in checklist],
    }
    write(out / "checklist.json", json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    write(out / "report.md", render_report_markdown(ev, figures))
    write(out / "index.html", render_report_html(ev))
    return ReportPaths(
        out_dir=out,
        index_html=out / "index.html",
        report_md=out / "report.md",
        transcripts_dir=tdir,
        checklist_json=out / "checklist.json",
    )
