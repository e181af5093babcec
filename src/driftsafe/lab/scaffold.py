"""``driftsafe lab init``: write the lab stack (modules/app, envs/staging, envs/prod).

The templates live in ``driftsafe/lab/stack/``. Both roots share main.tf,
variables.tf and outputs.tf; they differ in terraform.tfvars and backend.tf,
which is what makes "one module, two environments" visible in the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from driftsafe.errors import ConfigError

ENVS = ("staging", "prod")
MODULE_FILES = ("main.tf", "variables.tf", "outputs.tf")
ROOT_FILES = ("main.tf", "variables.tf", "outputs.tf")


@dataclass(frozen=True)
class Stack:
    """Where ``init_stack`` put things."""

    root: Path
    module_dir: Path
    envs: dict[str, Path]
    files: list[Path] = field(default_factory=list)
    server: str | None = None
    name: str = "lab"

    def state_address(self, env: str) -> str | None:
        return state_address(self.server, self.name, env) if self.server else None


def state_address(server: str, name: str, env: str) -> str:
    return f"{server.rstrip('/')}/v1/states/{name}/{env}"


def lock_address(server: str, name: str, env: str) -> str:
    return f"{server.rstrip('/')}/v1/locks/{name}/{env}"


def backend_tf(server: str | None, name: str, env: str) -> str:
    """backend.tf for one env: local, or driftsafe's state server over the http backend."""
    if server is None:
        return (
            "# Local state (terraform.tfstate here). `driftsafe lab init --server URL`\n"
            "# writes an http backend pointing at a driftsafe state server instead.\n"
            "terraform {\n"
            '  backend "local" {}\n'
            "}\n"
        )
    return (
        "# State lives on a driftsafe state server. Credentials are not written here:\n"
        "# set TF_HTTP_USERNAME and TF_HTTP_PASSWORD (the token) in the environment.\n"
        "terraform {\n"
        '  backend "http" {\n'
        f"    address        = {_hcl(state_address(server, name, env))}\n"
        f"    lock_address   = {_hcl(lock_address(server, name, env))}\n"
        f"    unlock_address = {_hcl(lock_address(server, name, env))}\n"
        '    lock_method    = "LOCK"\n'
        '    unlock_method  = "UNLOCK"\n'
        "  }\n"
        "}\n"
    )


def _hcl(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "$${") + '"'


def _validate(server: str | None, name: str) -> None:
    if server is not None and not server.startswith(("http://", "https://")):
        raise ConfigError(f"--server must be an http:// or https:// URL, got {server!r}")
    segments = name.split("/")
    if not name or any(
        s in ("", ".", "..") or not all(c.isalnum() or c in "._-" for c in s) for s in segments
    ):
        raise ConfigError(
            f"--name {name!r} is not a valid workspace name: use /-separated segments of "
            "letters, digits, '.', '_' or '-'"
        )


def init_stack(
    dir: str | Path, *, server: str | None = None, name: str = "lab", force: bool = False
) -> Stack:
    """Write the lab stack into ``dir`` and return where everything went.

    Refuses a non-empty ``dir`` unless ``force`` (then the stack's own files are
    overwritten; other files, state and runtime/ are left alone).
    """
    _validate(server, name)
    root = Path(dir).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} exists and is not a directory")
    if root.is_dir() and any(root.iterdir()) and not force:
        raise ConfigError(
            f"{root} is not empty; choose an empty directory or pass --force to "
            "overwrite the stack files in it"
        )
    templates = resources.files("driftsafe.lab") / "stack"
    written: list[Path] = []

    def put(target: Path, text: str) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        written.append(target)

    module_dir = root / "modules" / "app"
    for fname in MODULE_FILES:
        put(module_dir / fname, (templates / "modules" / "app" / fname).read_text())
    envs: dict[str, Path] = {}
    for env in ENVS:
        env_dir = root / "envs" / env
        envs[env] = env_dir
        for fname in ROOT_FILES:
            put(env_dir / fname, (templates / "envs" / "root" / fname).read_text())
        put(env_dir / "terraform.tfvars", (templates / "envs" / f"{env}.tfvars").read_text())
        put(env_dir / "backend.tf", backend_tf(server, name, env))
    (root / "runtime").mkdir(exist_ok=True)
    return Stack(root, module_dir, envs, written, server, name)


__all__ = ["ENVS", "Stack", "backend_tf", "init_stack", "lock_address", "state_address"]
