"""A small Markdown subset rendered to HTML, for the drill's narratives and tables.

Everything is HTML-escaped first; only a few inline forms (code, bold, emphasis, links
to safe URLs) and block forms (paragraphs, headings, lists, tables, fences, quotes)
become markup. No dependency: the report must render from the standard library.
"""

from __future__ import annotations

import re
from html import escape

_SAFE_URL = re.compile(r"^(https?://|#|[A-Za-z0-9_./-]+$)")


def _esc(text: str) -> str:
    return escape(text, quote=True)


def inline(text: str) -> str:
    """Inline Markdown (`code`, **bold**, *em*, [link](url)) over escaped text."""
    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for part in parts:
        if len(part) > 1 and part.startswith("`") and part.endswith("`"):
            out.append(f"<code>{_esc(part[1:-1])}</code>")
            continue
        html = _esc(part)
        html = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html)
        html = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", html)

        def link(m: re.Match[str]) -> str:
            url = m.group(2)
            if not _SAFE_URL.match(url.replace("&amp;", "&")):
                return m.group(0)
            return f'<a href="{url}">{m.group(1)}</a>'

        out.append(re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", link, html))
    return "".join(out)


def _table_cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)]


def markdown_to_html(md: str) -> str:
    """Paragraphs, headings, lists, tables, fenced code and quotes; everything escaped."""
    lines = md.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
            continue
        if stripped.startswith("```"):
            fence = stripped[: len(stripped) - len(stripped.lstrip("`"))]
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(lines[i])
                i += 1
            out.append(f"<pre>{_esc(chr(10).join(body))}</pre>")
            i += 1
            continue
        heading = re.match(r"(#{1,6})\s+(.*)", stripped)
        if heading:
            level = min(len(heading.group(1)) + 2, 6)  # the report's own h1/h2 come first
            out.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
            i += 1
            continue
        if (
            stripped.startswith("|")
            and i + 1 < len(lines)
            and re.fullmatch(r"\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?", lines[i + 1].strip())
        ):
            head = _table_cells(stripped)
            i += 2
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_table_cells(lines[i]))
                i += 1
            th = "".join(f"<th>{inline(c)}</th>" for c in head)
            body_rows = "".join(
                "<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in rows
            )
            out.append(f"<table><thead><tr>{th}</tr></thead><tbody>{body_rows}</tbody></table>")
            continue
        bullet = re.match(r"([-*+]|\d+[.)])\s+", stripped)
        if bullet:
            tag = "ol" if bullet.group(1)[0].isdigit() else "ul"
            items: list[str] = []
            while i < len(lines) and lines[i].strip():
                m = re.match(r"\s*([-*+]|\d+[.)])\s+(.*)", lines[i])
                if m:
                    items.append(m.group(2))
                elif items:
                    items[-1] += " " + lines[i].strip()
                i += 1
            lis = "".join(f"<li>{inline(x)}</li>" for x in items)
            out.append(f"<{tag}>{lis}</{tag}>")
            continue
        if stripped.startswith(">"):
            quote = []
            while i < len(lines) and lines[i].strip().startswith(">"):
                quote.append(lines[i].strip()[1:].strip())
                i += 1
            out.append(f"<blockquote>{markdown_to_html(chr(10).join(quote))}</blockquote>")
            continue
        para = []
        while (
            i < len(lines)
            and lines[i].strip()
            and not re.match(r"\s*(```|#{1,6}\s|[-*+]\s|\d+[.)]\s|\||>)", lines[i])
        ):
            para.append(lines[i].strip())
            i += 1
        if not para:  # a line that looked like a block start but was not one
            para.append(stripped)
            i += 1
        out.append(f"<p>{inline(' '.join(para))}</p>")
    return "\n".join(out)


# -- HTML ---------------------------------------------------------------------------------
