"""Generate the filesystem mirror and CLI config through which Terraform finds the
lab provider offline.

The mirror holds, in Terraform's *unpacked* layout, an executable launcher named
``terraform-provider-lab_v<version>`` that starts the pyvider provider with this
Python. No ``dev_overrides``: ``init`` installs from the mirror and writes a lock file.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from pathlib import Path

PROVIDER_HOST = "registry.driftsafe.local"
PROVIDER_NAMESPACE = "driftsafe"
PROVIDER_TYPE = "lab"
PROVIDER_VERSION = "0.1.0"
PROVIDER_SOURCE = f"{PROVIDER_HOST}/{PROVIDER_NAMESPACE}/{PROVIDER_TYPE}"
# The module the launcher runs; named as a string so engine/ never imports provider/.
PROVIDER_MODULE = "driftsafe.provider"


def platform_dir() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )
    return f"{sys.platform if sys.platform != 'linux' else 'linux'}_{arch}"


def canonical_python() -> str:
    """One stable interpreter path per environment. The launcher's bytes are checksummed
    into each root's lock file, so `python` and `python3` (the same venv, two names)
    must not produce two different launchers. Symlinks are not resolved: that would
    leave the virtual environment and lose its site-packages."""
    candidate = Path(sys.prefix) / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def launcher_text(python: str) -> str:
    # Terraform starts the plugin with its own environment; the launcher pins the
    # interpreter so the provider runs in driftsafe's environment, not whatever
    # `python3` is on PATH.
    return f'#!/bin/sh\nexec {shlex.quote(python)} -m {PROVIDER_MODULE} "$@"\n'


def _write_if_changed(path: Path, text: str, mode: int) -> None:
    if path.exists() and path.read_text() == text:
        if (path.stat().st_mode & 0o777) != mode:
            path.chmod(mode)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)


def ensure_cli_config(home: Path, python: str | None = None) -> Path:
    """Write (idempotently) the mirror and CLI config under ``home``; return the config path."""
    home = home.expanduser().resolve()
    mirror = home / "provider-mirror"
    launcher = (
        mirror
        / PROVIDER_HOST
        / PROVIDER_NAMESPACE
        / PROVIDER_TYPE
        / PROVIDER_VERSION
        / platform_dir()
        / f"terraform-provider-{PROVIDER_TYPE}_v{PROVIDER_VERSION}"
    )
    _write_if_changed(launcher, launcher_text(python or canonical_python()), 0o755)
    config = home / "terraform.rc"
    text = (
        "# Written by driftsafe: the lab provider comes from a local mirror, offline.\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {_hcl_string(str(mirror))}\n"
        f"    include = [{_hcl_string(PROVIDER_SOURCE)}]\n"
        "  }\n"
        "  direct {\n"
        f"    exclude = [{_hcl_string(PROVIDER_SOURCE)}]\n"
        "  }\n"
        "}\n"
        "disable_checkpoint = true\n"
    )
    _write_if_changed(config, text, 0o644)
    return config


def _hcl_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
