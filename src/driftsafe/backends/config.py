"""A Terraform root's backend: its type and settings, as Terraform itself would see them.

The settings come from ``.terraform/terraform.tfstate`` when the root is initialised
(that file holds the merged configuration, ``-backend-config`` values included), and
otherwise from the ``backend`` block of the root's ``.tf`` files (python-hcl2) or
``.tf.json`` files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

from driftsafe.errors import ConfigError

# Backends that keep one state per workspace; the http backend has a single address.
WORKSPACE_BACKENDS = frozenset(
    {"s3", "pg", "local", "gcs", "azurerm", "consul", "kubernetes", "oss", "cos"}
)


@dataclass(frozen=True)
class BackendConfig:
    """``type`` (``s3``, ``pg``, ``http``, ``local``...) and its non-null settings."""

    type: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    root: Path = Path(".")
    source: str = ""  # the file the settings were read from

    def get(self, name: str, default: Any = None) -> Any:
        value = self.settings.get(name)
        return default if value is None else value

    @property
    def has_workspaces(self) -> bool:
        return self.type in WORKSPACE_BACKENDS

    def with_settings(self, **changes: Any) -> BackendConfig:
        return BackendConfig(self.type, {**self.settings, **changes}, self.root, self.source)


def data_dir(root: Path, env: Mapping[str, str] | None = None) -> Path:
    """Where ``terraform init`` keeps its files for ``root`` (TF_DATA_DIR, else .terraform)."""
    env = os.environ if env is None else env
    return root / (env.get("TF_DATA_DIR") or ".terraform")


def current_workspace(root: Path, env: Mapping[str, str] | None = None) -> str:
    """The workspace Terraform would use in ``root`` (TF_WORKSPACE, else the selected one)."""
    env = os.environ if env is None else env
    if env.get("TF_WORKSPACE"):
        return env["TF_WORKSPACE"]
    selected = data_dir(root, env) / "environment"
    if selected.is_file():
        name = selected.read_text().strip()
        if name:
            return name
    return "default"


def _unquote(value: Any) -> Any:
    """python-hcl2 keeps string literals quoted (``'"my-bucket"'``) and keys too."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except ValueError:
            return value[1:-1]
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    return value


def _blocks_from_hcl(path: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        with path.open(encoding="utf-8") as handle:
            doc = hcl2.load(handle)
    except Exception as exc:  # python-hcl2 raises lark's many error types
        raise ConfigError(f"cannot parse {path}: {exc}") from exc
    found = []
    for terraform in doc.get("terraform", []):
        for backend in terraform.get("backend", []) if isinstance(terraform, dict) else []:
            for name, body in backend.items():
                found.append(
                    (str(_unquote(name)), _unquote(body) if isinstance(body, dict) else {})
                )
        if isinstance(terraform, dict) and terraform.get("cloud"):
            found.append(("cloud", {}))
    return found


def _blocks_from_json(path: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    found = []
    terraforms = doc.get("terraform", []) if isinstance(doc, dict) else []
    for terraform in terraforms if isinstance(terraforms, list) else [terraforms]:
        backend = terraform.get("backend", {}) if isinstance(terraform, dict) else {}
        for name, body in backend.items() if isinstance(backend, dict) else []:
            found.append((name, body if isinstance(body, dict) else {}))
    return found


def _initialised(root: Path, wanted: str) -> dict[str, Any] | None:
    """The merged settings ``terraform init`` recorded, if they are for ``wanted``."""
    path = data_dir(root) / "terraform.tfstate"
    try:
        backend = json.loads(path.read_text(encoding="utf-8")).get("backend") or {}
    except (OSError, ValueError):
        return None
    if backend.get("type") != wanted or not isinstance(backend.get("config"), dict):
        return None
    merged: dict[str, Any] = _drop_nulls(backend["config"])
    return merged


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _drop_nulls(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in out.items() if v != {}}
    return value


def read_backend(root: str | os.PathLike[str]) -> BackendConfig:
    """The backend of the Terraform root ``root``; ConfigError when it has none."""
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(f"{path} is not a directory")
    blocks: list[tuple[str, dict[str, Any], Path]] = []
    for tf in sorted(path.glob("*.tf")):
        blocks += [(name, body, tf) for name, body in _blocks_from_hcl(tf)]
    for tf in sorted(path.glob("*.tf.json")):
        blocks += [(name, body, tf) for name, body in _blocks_from_json(tf)]
    if not blocks:
        if not any(path.glob("*.tf")) and not any(path.glob("*.tf.json")):
            raise ConfigError(f"{path} holds no Terraform files (*.tf)")
        raise ConfigError(
            f"{path} has no backend block: its state is local by default. Add "
            'terraform { backend "..." { ... } } to check a backend'
        )
    if len(blocks) > 1:
        where = ", ".join(f"{b[2].name} ({b[0]})" for b in blocks)
        raise ConfigError(f"{path} declares more than one backend: {where}")
    name, body, source = blocks[0]
    if name == "cloud":
        raise ConfigError(
            f"{path} uses HCP Terraform (a cloud block), which driftsafe cannot check"
        )
    merged = _initialised(path, name)
    if merged is not None:
        return BackendConfig(name, merged, path, str(data_dir(path) / "terraform.tfstate"))
    return BackendConfig(name, _drop_nulls(body), path, str(source))


def backend_json(config: BackendConfig) -> str:
    """The ``backend.tf.json`` of a scratch root with this backend."""
    return json.dumps({"terraform": {"backend": {config.type: dict(config.settings)}}}, indent=2)
