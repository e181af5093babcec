"""docs/architecture.md is the map: every package under src/driftsafe is on it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def packages() -> list[str]:
    base = ROOT / "src" / "driftsafe"
    return sorted(
        str(p.parent.relative_to(base)) for p in base.rglob("__init__.py") if p.parent != base
    )


def test_every_package_is_on_the_map() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    found = packages()
    assert "lab/drill" in found  # the walk reaches nested packages too
    missing = [p for p in found if f"`{p}`" not in doc and f"{p}/" not in doc]
    assert missing == []


def test_every_top_level_module_is_on_the_map() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    base = ROOT / "src" / "driftsafe"
    modules = [p.name for p in base.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert [m for m in modules if f"`{m}`" not in doc] == []
