"""The import graph of ``src/driftsafe``: no cycles, layers point down, one public surface.

Runtime imports only (module level and inside functions); imports under
``if TYPE_CHECKING:`` are for the type checker and never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = SRC / "driftsafe"

# Packages with a public surface: siblings import only ``from driftsafe.P import name``
# with ``name`` in ``P.__all__``.
SURFACES = ("state", "store", "server", "drift", "lab", "engine", "backends")

# DESIGN.md's layers, top to bottom: a package imports only packages below it.
# Top-level modules (errors, settings, durations, timestamps, client) are shared.
LAYERS = ("cli", "server", "lab", "drift", "backends", "engine", "store", "state")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def runtime_imports(module: str) -> Iterator[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for each runtime import."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, [a.name for a in node.names], node.lineno


def edges(module: str) -> set[str]:
    """The driftsafe modules that ``module`` runs at import or call time."""
    out: set[str] = set()
    for target, names, _ in runtime_imports(module):
        if target != "driftsafe" and not target.startswith("driftsafe."):
            continue
        subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
        out.update(subs)
        if len(subs) < len(names) or not names:
            out.add(target)
    out.discard(module)
    return out


def cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    graph = {m: sorted(edges(m) & MODULES.keys()) for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_graph_sees_every_module() -> None:
    assert "driftsafe.cli.main" in MODULES
    assert "driftsafe.store.sql" in edges("driftsafe.store.opener")
    # a from-import of a submodule is an edge to that submodule, not the package
    assert "driftsafe.store.schema" in edges("driftsafe.store.database")


def test_no_import_cycles() -> None:
    assert cycles() == []


def test_cycle_detection_finds_a_planted_cycle(tmp_path: Path) -> None:
    # The checker itself must be able to fail: plant a two-module cycle.
    planted = {
        "driftsafe.a": tmp_path / "a.py",
        "driftsafe.b": tmp_path / "b.py",
    }
    planted["driftsafe.a"].write_text("from driftsafe.b import x\n")
    planted["driftsafe.b"].write_text("def f():\n    from driftsafe.a import y\n")
    saved = dict(MODULES)
    MODULES.clear()
    MODULES.update(planted)
    try:
        assert cycles() == [["driftsafe.a", "driftsafe.b"]]
    finally:
        MODULES.clear()
        MODULES.update(saved)


def _imports_by_package(package: str) -> Iterator[tuple[str, str, int]]:
    for module in MODULES:
        if package_of(module) == package:
            for target, _, line in runtime_imports(module):
                if target.startswith("driftsafe"):
                    yield module, target, line


def test_provider_is_an_island() -> None:
    outside = [
        f"{m}:{line} imports {t}"
        for m, t, line in _imports_by_package("provider")
        if not t.startswith("driftsafe.provider")
    ]
    assert outside == []
    into = [
        f"{m}:{line} imports {t}"
        for m in MODULES
        if package_of(m) != "provider"
        for t, _, line in runtime_imports(m)
        if t.startswith("driftsafe.provider")
    ]
    assert into == []


@pytest.mark.parametrize("package", LAYERS)
def test_layers_point_down(package: str) -> None:
    below = set(LAYERS[LAYERS.index(package) + 1 :])
    upward = [
        f"{m}:{line} imports {t}"
        for m, t, line in _imports_by_package(package)
        if package_of(t) in LAYERS and package_of(t) != package and package_of(t) not in below
    ]
    assert upward == []


def test_state_does_no_io_imports() -> None:
    forbidden = {"server", "store", "drift", "lab", "cli", "engine", "backends"}
    bad = [
        f"{m}:{line} imports {t}"
        for m, t, line in _imports_by_package("state")
        if package_of(t) in forbidden
    ]
    assert bad == []


def _public_names(package: str) -> set[str]:
    tree = ast.parse((ROOT / package / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    raise AssertionError(f"driftsafe.{package} declares no __all__")


@pytest.mark.parametrize("package", [p for p in SURFACES if (ROOT / p).is_dir()])
def test_siblings_import_only_the_public_surface(package: str) -> None:
    public = _public_names(package)
    bad = []
    for module in MODULES:
        if package_of(module) == package:
            continue
        for target, names, line in runtime_imports(module):
            where = f"{module}:{line}"
            if target.startswith(f"driftsafe.{package}."):
                bad.append(f"{where} reaches into {target}")
            elif target == f"driftsafe.{package}":
                bad += [f"{where} imports private {target}.{n}" for n in names if n not in public]
    assert bad == []
