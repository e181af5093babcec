"""A small, span-preserving HCL scanner: enough to find and rewrite one literal.

Codify must change one value in a user's ``.tf`` or ``.tfvars`` file and leave every
other byte (formatting, comments, ordering) alone. A full HCL parser that re-renders
the file cannot promise that, so this scanner only finds *where* things are:
attributes and blocks of a body, items of an object literal, and the exact span of
an expression, skipping strings, template interpolations, heredocs and comments.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from driftsafe.errors import ConfigError

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")
_HEREDOC = re.compile(r"<<-?([A-Za-z_][A-Za-z0-9_]*)[ \t]*\n")
_OPEN = {"(": ")", "[": "]", "{": "}"}


@dataclass
class Attr:
    name: str
    start: int  # where the name starts
    expr_start: int
    expr_end: int


@dataclass
class Block:
    type: str
    labels: list[str]
    start: int
    body_start: int  # just after "{"
    body_end: int  # at the closing "}"
    items: list[Attr | Block] = field(default_factory=list)


@dataclass
class Item:
    """One ``key = value`` of an object literal."""

    key: str
    expr_start: int
    expr_end: int


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _skip_string(text: str, pos: int) -> int:
    """``pos`` at an opening quote; return the index after the closing quote."""
    i = pos + 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        if c in "$%" and text.startswith("{", i + 1) and not text.startswith(c, i - 1):
            i = _skip_group(text, i + 1)
            continue
        if c == "\n":
            break
        i += 1
    raise ConfigError(f"unterminated string at line {line_of(text, pos)}")


def _skip_heredoc(text: str, pos: int, match: re.Match[str]) -> int:
    tag = match.group(1)
    end = re.compile(rf"^[ \t]*{re.escape(tag)}[ \t]*$", re.M)
    found = end.search(text, match.end())
    if not found:
        raise ConfigError(f"unterminated heredoc <<{tag} at line {line_of(text, pos)}")
    return found.end()


def _skip_comment(text: str, pos: int) -> int | None:
    """Index after a comment starting at ``pos`` (line comments stop before the newline)."""
    if text.startswith("#", pos) or text.startswith("//", pos):
        nl = text.find("\n", pos)
        return len(text) if nl < 0 else nl
    if text.startswith("/*", pos):
        close = text.find("*/", pos + 2)
        if close < 0:
            raise ConfigError(f"unterminated comment at line {line_of(text, pos)}")
        return close + 2
    return None


def _skip_group(text: str, pos: int) -> int:
    """``pos`` at an opening bracket; return the index after its matching closer."""
    closer = _OPEN[text[pos]]
    i = pos + 1
    while i < len(text):
        i = _skip_atom(text, i)
        if i >= len(text):
            break
        if text[i] == closer:
            return i + 1
        if text[i] in ")]}":
            raise ConfigError(f"unbalanced {text[i]!r} at line {line_of(text, i)}")
        if text[i] in _OPEN:
            i = _skip_group(text, i)
        else:
            i += 1
    raise ConfigError(f"unclosed {text[pos]!r} from line {line_of(text, pos)}")


def _skip_atom(text: str, i: int) -> int:
    """Skip any strings, heredocs and comments starting at ``i``."""
    while i < len(text):
        if text[i] == '"':
            i = _skip_string(text, i)
            continue
        if text.startswith("<<", i):
            match = _HEREDOC.match(text, i)
            if match:
                i = _skip_heredoc(text, i, match)
                continue
        after = _skip_comment(text, i)
        if after is not None:
            i = after
            continue
        return i
    return i


def expr_end(text: str, pos: int, stops: str = "") -> int:
    """End of the expression starting at ``pos``: a newline (or a char of ``stops``)
    at bracket depth 0, or a comment; trailing blanks are not part of it."""
    i = pos
    while i < len(text):
        c = text[i]
        if c == "\n" or c in stops:
            break
        if _skip_comment(text, i) is not None:
            break
        if c == '"':
            i = _skip_string(text, i)
        elif text.startswith("<<", i) and _HEREDOC.match(text, i):
            i = _skip_heredoc(text, i, _HEREDOC.match(text, i))  # type: ignore[arg-type]
        elif c in _OPEN:
            i = _skip_group(text, i)
        else:
            i += 1
    while i > pos and text[i - 1] in " \t\r":
        i -= 1
    return i


def _skip_blank(text: str, i: int, end: int, commas: bool = False) -> int:
    while i < end:
        if text[i] in " \t\r\n" or (commas and text[i] == ","):
            i += 1
            continue
        after = _skip_comment(text, i)
        if after is None:
            return i
        i = after
    return i


def parse_body(text: str, start: int = 0, end: int | None = None) -> list[Attr | Block]:
    end = len(text) if end is None else end
    items: list[Attr | Block] = []
    i = _skip_blank(text, start, end)
    while i < end:
        match = _IDENT.match(text, i)
        if not match:
            raise ConfigError(f"unexpected {text[i]!r} at line {line_of(text, i)}")
        name, j = match.group(), match.end()
        while j < end and text[j] in " \t":
            j += 1
        if j < end and text[j] == "=" and not text.startswith("==", j):
            k = j + 1
            while k < end and text[k] in " \t":
                k += 1
            stop = expr_end(text, k)
            items.append(Attr(name, i, k, stop))
            i = _skip_blank(text, stop, end)
            continue
        labels = []
        while j < end and text[j] != "{":
            if text[j] == '"':
                close = _skip_string(text, j)
                labels.append(json.loads(text[j:close]))
                j = close
            elif text[j] in " \t":
                j += 1
            else:
                label = _IDENT.match(text, j)
                if not label:
                    raise ConfigError(f"unexpected {text[j]!r} at line {line_of(text, j)}")
                labels.append(label.group())
                j = label.end()
        if j >= end:
            raise ConfigError(f"block {name} at line {line_of(text, i)} has no body")
        close = _skip_group(text, j)
        block = Block(name, labels, i, j + 1, close - 1)
        block.items = parse_body(text, j + 1, close - 1)
        items.append(block)
        i = _skip_blank(text, close, end)
    return items


def parse_object(text: str, start: int, end: int) -> list[Item] | None:
    """The items of an object literal spanning ``[start, end)``; None if it is not one."""
    if start >= end or text[start] != "{" or _skip_group(text, start) != end:
        return None
    items = []
    i = _skip_blank(text, start + 1, end - 1, commas=True)
    while i < end - 1:
        if text[i] == '"':
            close = _skip_string(text, i)
            key = json.loads(text[i:close])
        else:
            match = _IDENT.match(text, i)
            if not match:
                return None  # computed keys: not a literal we can edit
            key, close = match.group(), match.end()
        j = close
        while text[j] in " \t":
            j += 1
        if text[j] not in "=:":
            return None
        k = j + 1
        while text[k] in " \t":
            k += 1
        stop = expr_end(text, k, stops=",}")
        items.append(Item(key, k, stop))
        i = _skip_blank(text, stop, end - 1, commas=True)
    return items


def find_block(items: list[Attr | Block], type_: str, *labels: str) -> Block | None:
    for item in items:
        if (
            isinstance(item, Block)
            and item.type == type_
            and item.labels[: len(labels)] == list(labels)
        ):
            return item
    return None


def find_attr(items: list[Attr | Block], name: str) -> Attr | None:
    for item in items:
        if isinstance(item, Attr) and item.name == name:
            return item
    return None


_NO_LITERAL = object()


def literal_value(expr: str) -> Any:
    """The value of a literal expression (string without templates, number, bool, null),
    or ``_NO_LITERAL``."""
    expr = expr.strip()
    if expr in ("true", "false"):
        return expr == "true"
    if expr == "null":
        return None
    if _NUMBER.match(expr):
        return json.loads(expr)
    if (
        expr.startswith('"')
        and expr.endswith('"')
        and "${" not in expr.replace("$${", "")
        and "%{" not in expr.replace("%%{", "")
    ):
        try:
            value = json.loads(expr)
        except ValueError:
            return _NO_LITERAL
        return value.replace("$${", "${").replace("%%{", "%{") if isinstance(value, str) else value
    return _NO_LITERAL


def is_literal(expr: str) -> bool:
    return literal_value(expr) is not _NO_LITERAL


def render_literal(value: Any, like: str) -> str:
    """HCL text for ``value``, keeping the kind of the literal it replaces.

    Terraform often hands back strings for values the config wrote as numbers (a
    map(string) of config values): "200" replacing ``100`` stays a bare number.
    """
    old = literal_value(like)
    if isinstance(value, str) and not isinstance(old, str) and old is not _NO_LITERAL:
        if isinstance(old, bool) and value in ("true", "false"):
            return value
        if isinstance(old, int | float) and _NUMBER.match(value):
            return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(old, str):
            return json.dumps(str(value))
        return json.dumps(value)
    if value is None:
        return "null"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text.replace("${", "$${").replace("%{", "%%{")
    raise ConfigError(f"cannot write {type(value).__name__} value {value!r} as an HCL literal")
