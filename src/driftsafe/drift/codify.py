"""Codify: change the configuration so that it asks for what reality already is.

The value of ``module.app.lab_config_file.app.values.max_connections`` is traced
from the resource block to where it is written down: through object literals,
through ``var.X`` to the calling ``module`` block's argument, and at the root to a
``.tfvars`` assignment (or a literal in a ``.tf`` file). Only that literal's bytes
change; the diff is returned for the user to read.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftsafe.drift import hcl
from driftsafe.drift.classify import split_path
from driftsafe.errors import ConfigError


@dataclass(frozen=True)
class Target:
    """``ADDR.ATTR`` split: module path, resource type and name, attribute path."""

    modules: tuple[str, ...]
    type: str
    name: str
    address: str  # the resource address (with instance keys), e.g. module.app.lab_x.y
    path: str  # attribute path, "" for the whole resource

    @property
    def text(self) -> str:
        return f"{self.address}.{self.path}" if self.path else self.address


def parse_target(text: str) -> Target:
    """Split ``module.app.lab_config_file.app.values.max_connections``."""
    tokens = re.findall(r'[^.\[]+(?:\[(?:\d+|"[^"]*")\])*', text)
    modules: list[str] = []
    address_parts: list[str] = []
    i = 0
    while i + 1 < len(tokens) and tokens[i] == "module":
        name = tokens[i + 1]
        modules.append(name.split("[", 1)[0])
        address_parts += ["module", name]
        i += 2
    if i + 1 >= len(tokens) or tokens[i] == "data":
        raise ConfigError(
            f"{text!r} is not a managed resource address (TYPE.NAME[.ATTRIBUTE], "
            "optionally after module.NAME.)"
        )
    type_, name = tokens[i], tokens[i + 1]
    address_parts += [type_, name]
    address = ".".join(address_parts)
    rest = text[len(address) :].lstrip(".")
    if not text.startswith(address):
        raise ConfigError(f"{text!r} is not a resource address")
    return Target(tuple(modules), type_, name.split("[", 1)[0], address, rest)


@dataclass
class Edit:
    file: Path
    start: int
    end: int
    new: str
    old: str
    line: int
    what: str  # human description: "terraform.tfvars: max_connections"


def _tf_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.tf") if p.is_file())


def _parsed(path: Path, cache: dict[Path, tuple[str, list[Any]]]) -> tuple[str, list[Any]]:
    if path not in cache:
        text = path.read_text()
        try:
            cache[path] = (text, hcl.parse_body(text))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc.message}") from None
    return cache[path]


def _find_in_dir(
    directory: Path, type_: str, labels: tuple[str, ...], cache: dict[Path, tuple[str, list[Any]]]
) -> tuple[Path, str, hcl.Block]:
    for path in _tf_files(directory):
        text, items = _parsed(path, cache)
        block = hcl.find_block(items, type_, *labels)
        if block is not None:
            return path, text, block
    raise ConfigError(f"no {type_} {' '.join(repr(x) for x in labels)} block in {directory}/*.tf")


def plan_codify(root: Path, target: Target, value: Any) -> Edit:
    """Find the literal that decides ``target`` and the edit that makes it ``value``."""
    root = root.resolve()
    cache: dict[Path, tuple[str, list[Any]]] = {}
    # (directory, file, text, module block) for each module call from root down
    chain: list[tuple[Path, Path, str, hcl.Block]] = []
    directory = root
    for module in target.modules:
        path, text, block = _find_in_dir(directory, "module", (module,), cache)
        source = hcl.find_attr(block.items, "source")
        src = hcl.literal_value(text[source.expr_start : source.expr_end]) if source else None
        if not isinstance(src, str) or not src.startswith(("./", "../")):
            raise ConfigError(
                f"module {module!r} in {path}: only local module sources can be codified"
            )
        chain.append((directory, path, text, block))
        directory = (directory / src).resolve()
    path, text, block = _find_in_dir(directory, "resource", (target.type, target.name), cache)
    parts = split_path(target.path)
    if not parts or not isinstance(parts[0], str):
        raise ConfigError(f"{target.text}: name an attribute to codify (ADDR.ATTRIBUTE)")
    attr = hcl.find_attr(block.items, parts[0])
    if attr is None:
        raise ConfigError(
            f"{target.address}: attribute {parts[0]!r} is not set in {path}; "
            "add it to the configuration by hand"
        )
    span = (path, text, attr.expr_start, attr.expr_end, parts[0])
    remaining = parts[1:]
    while True:
        path, text, start, end, what = span
        expr = text[start:end]
        # descend into object literals
        while remaining:
            items = hcl.parse_object(text, start, end)
            key = remaining[0]
            item = next((it for it in items or [] if it.key == key), None)
            if item is None:
                break
            start, end, what = item.expr_start, item.expr_end, f"{what}.{key}"
            expr = text[start:end]
            remaining = remaining[1:]
        # Type conversions are transparent: the literal keeps its own type.
        conv = re.fullmatch(r"(tostring|tonumber|tobool)\(\s*(.*?)\s*\)", expr, re.S)
        if conv:
            inner = start + conv.start(2)
            span = (path, text, inner, inner + len(conv.group(2)), what)
            continue
        var = re.fullmatch(r"var\.([A-Za-z_][A-Za-z0-9_-]*)", expr.strip())
        if var:
            name = var.group(1)
            if chain:
                directory, path, text, mblock = chain.pop()
                arg = hcl.find_attr(mblock.items, name)
                if arg is None:
                    raise ConfigError(
                        f"module call in {path} does not set {name!r} (it uses the "
                        "module's default); set it there by hand"
                    )
                span = (path, text, arg.expr_start, arg.expr_end, f"module argument {name}")
                continue
            return _root_variable(root, name, remaining, value, cache)
        if remaining:
            raise ConfigError(
                f"{target.text}: the value comes from `{expr.strip()}` in {path} "
                f"line {hcl.line_of(text, start)}; cannot codify that, edit by hand"
            )
        if not hcl.is_literal(expr):
            raise ConfigError(
                f"{target.text}: the value comes from the expression `{expr.strip()}` in {path} "
                f"line {hcl.line_of(text, start)}; codify edits literals and variables only"
            )
        return Edit(
            path,
            start,
            end,
            hcl.render_literal(value, expr),
            expr,
            hcl.line_of(text, start),
            f"{path.name}: {what}",
        )


def _root_variable(
    root: Path,
    name: str,
    remaining: list[str | int],
    value: Any,
    cache: dict[Path, tuple[str, list[Any]]],
) -> Edit:
    # Terraform loads terraform.tfvars, then *.auto.tfvars in name order: the last wins.
    files = [root / "terraform.tfvars"] + sorted(root.glob("*.auto.tfvars"))
    for path in reversed([f for f in files if f.is_file()]):
        text, items = _parsed(path, cache)
        attr = hcl.find_attr(items, name)
        if attr is None:
            continue
        start, end, what = attr.expr_start, attr.expr_end, name
        for key in remaining:
            found = next(
                (it for it in hcl.parse_object(text, start, end) or [] if it.key == key), None
            )
            if found is None:
                raise ConfigError(f"{path}: {what} has no literal key {key!r}; edit by hand")
            start, end, what = found.expr_start, found.expr_end, f"{what}.{key}"
        expr = text[start:end]
        if not hcl.is_literal(expr):
            raise ConfigError(f"{path}: {what} is `{expr}`, not a literal; edit by hand")
        return Edit(
            path,
            start,
            end,
            hcl.render_literal(value, expr),
            expr,
            hcl.line_of(text, start),
            f"{path.name}: {what}",
        )
    if remaining:
        raise ConfigError(f"variable {name!r} is not set in a .tfvars file; set it by hand")
    # Not set anywhere: the default applies. Setting it in terraform.tfvars overrides the
    # default without touching variables.tf, which other roots may share.
    path = root / "terraform.tfvars"
    text = path.read_text() if path.is_file() else ""
    line = f"{name} = {hcl.render_literal(value, '')}\n"
    prefix = "" if not text or text.endswith("\n") else "\n"
    return Edit(
        path,
        len(text),
        len(text),
        prefix + line,
        "",
        hcl.line_of(text, len(text)),
        f"{path.name}: {name} (added)",
    )


def apply_edits(edits: list[Edit], *, base: Path | None = None) -> tuple[dict[Path, str], str]:
    """Write the edits; return (original texts for rollback, unified diff)."""
    by_file: dict[Path, list[Edit]] = {}
    for edit in edits:
        by_file.setdefault(edit.file, []).append(edit)
    originals: dict[Path, str] = {}
    diff: list[str] = []
    for path, file_edits in by_file.items():
        original = path.read_text() if path.exists() else ""
        text = original
        seen: set[tuple[int, int]] = set()
        for edit in sorted(file_edits, key=lambda e: e.start, reverse=True):
            if (edit.start, edit.end) in seen:
                continue  # two targets traced to the same literal
            seen.add((edit.start, edit.end))
            text = text[: edit.start] + edit.new + text[edit.end :]
        originals[path] = original
        name = str(path.relative_to(base)) if base and path.is_relative_to(base) else str(path)
        diff += difflib.unified_diff(
            original.splitlines(keepends=True),
            text.splitlines(keepends=True),
            f"a/{name}",
            f"b/{name}",
        )
        path.write_text(text)
    return originals, "".join(diff)


def restore(originals: dict[Path, str]) -> None:
    for path, text in originals.items():
        path.write_text(text)
