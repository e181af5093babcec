"""What every drill step shares: the directory, the running state server, the tokens,
and helpers that run a command and keep its transcript as evidence in one call."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from driftsafe.engine import Engine, Process, RunResult
from driftsafe.errors import ConfigError
from driftsafe.lab.drill.backends import DriftsafeServer, DrillBackend

# Re-exported: the steps import them from here.
from driftsafe.lab.drill.records import ApiCall as ApiCall
from driftsafe.lab.drill.records import DrillError as DrillError
from driftsafe.lab.evidence import Evidence, Transcript
from driftsafe.settings import Settings

MARKER = ".driftsafe-drill"
STACK_NAME = "lab"
ENVS = ("staging", "prod")


def prepare_dir(root: Path) -> bool:
    """Make ``root`` ready for a new run. A previous drill's directory (it carries our
    marker) is wiped so the run starts clean; any other non-empty directory is refused,
    since deleting a user's files is never acceptable. Returns True if it wiped one."""
    root = root.expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} exists and is not a directory")
    wiped = False
    if root.is_dir() and any(root.iterdir()):
        if not (root / MARKER).is_file():
            raise ConfigError(
                f"{root} is not empty and was not made by `driftsafe lab run`; "
                "choose an empty or new directory with --dir"
            )
        for child in root.iterdir():
            if child.is_dir() and not child.is_symlink():
                _rmtree(child)
            else:
                child.unlink()
        wiped = True
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text(
        "This directory belongs to `driftsafe lab run`; a new run wipes it.\n"
    )
    return wiped


def _rmtree(path: Path) -> None:
    # Releases are read-only directories by design; deleting their files needs their
    # directories writable again (symlinks are left alone: chmod would follow them).
    for dirpath, dirnames, _files in os.walk(path):
        for d in dirnames:
            full = os.path.join(dirpath, d)
            if not os.path.islink(full):
                os.chmod(full, 0o755)
    shutil.rmtree(path)


@dataclass
class Drill:
    root: Path
    ev: Evidence
    engine: Engine
    settings: Settings
    lock_disabled: bool = False
    server_url: str = ""
    admin_token: str = ""
    write_token: str = ""
    secret: str = field(default_factory=lambda: "s3cret-" + secrets.token_hex(12))
    server: Process | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    # Where the stack's state lives: driftsafe's server (default) or an S3 bucket.
    backend: DrillBackend = field(default_factory=DriftsafeServer)

    @property
    def stack(self) -> Path:
        return self.root / "stack"

    def env_dir(self, env: str) -> Path:
        return self.stack / "envs" / env

    def runtime(self, env: str) -> Path:
        return self.stack / "runtime" / env

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.root / 'server' / 'state.db'}"

    def workspace(self, env: str) -> str:
        return f"{STACK_NAME}/{env}"

    # -- environments ----------------------------------------------------------------

    def ds_env(self) -> dict[str, str]:
        """Environment for driftsafe's own commands run by the drill (those that run
        Terraform need the backend credentials and the secret variable too)."""
        return {
            **self.tf_env(),
            "DRIFTSAFE_HOME": str(self.root / "server"),
            **self.backend.ds_env(self),
            "DRIFTSAFE_ENGINE": self.engine.name,
            "TF_CLI_CONFIG_FILE": str(self.engine.cli_config),
        }

    def tf_env(self, token: str | None = None, **extra: str) -> dict[str, str]:
        env = {
            **self.backend.tf_env(self, token),
            "TF_VAR_app_secret": self.secret,
            "TF_INPUT": "0",
            "TF_IN_AUTOMATION": "1",
        }
        env.update(extra)
        return env

    # -- commands --------------------------------------------------------------------

    def tf(
        self,
        step: str,
        env: str,
        args: Sequence[str],
        title: str,
        *,
        token: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = 180,
    ) -> tuple[RunResult, Transcript]:
        result = self.engine.run(
            [*args],
            cwd=self.env_dir(env),
            env=self.tf_env(token, **dict(extra_env or {})),
            timeout=timeout,
        )
        return result, self.ev.record(step, result, title=title)

    def tf_start(
        self, env: str, args: Sequence[str], *, extra_env: Mapping[str, str] | None = None
    ) -> Process:
        return self.engine.start(
            [*args], cwd=self.env_dir(env), env=self.tf_env(**dict(extra_env or {}))
        )

    def ds(
        self,
        step: str,
        args: Sequence[str],
        title: str,
        *,
        cwd: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = 300,
    ) -> tuple[RunResult, Transcript]:
        """Run a driftsafe command exactly as a user would (``python -m driftsafe``)."""
        env = dict(os.environ)
        ours = self.ds_env()
        ours.update(extra_env or {})
        env.update(ours)
        proc = Process(
            [sys.executable, "-m", "driftsafe", *args],
            cwd=cwd or self.stack,
            env=env,
            shown_env=ours,
            # A signal to the drill reaches this command (and so its Terraform) too.
            tracker=self.engine.processes,
        )
        result = proc.wait(timeout=timeout)
        # Show the command as a user types it, not as `python -m`.
        result.argv = ["driftsafe", *args]
        return result, self.ev.record(step, result, title=title)

    def api(
        self,
        step: str,
        method: str,
        path: str,
        title: str,
        *,
        token: str | None = None,
        body: Any = None,
    ) -> ApiCall:
        started = time.time()
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        try:
            response = httpx.request(
                method, self.server_url + path, headers=headers, json=body, timeout=30
            )
        except httpx.HTTPError as exc:
            raise DrillError(f"{method} {path}: cannot reach the state server: {exc}") from exc
        try:
            data: Any = response.json()
            text = json.dumps(data, indent=2, sort_keys=True)
        except ValueError:
            data, text = response.text, response.text
        tr = self.ev.capture(
            step,
            title,
            argv=[method, path],
            cwd=self.server_url,
            returncode=response.status_code,
            stdout=text + "\n",
            started_at=started,
            ended_at=time.time(),
        )
        return ApiCall(response.status_code, data, tr)

    def show_file(self, step: str, path: Path, title: str) -> Transcript:
        """Evidence of a file's content and mode, as `ls -l` and `cat` would show it."""
        started = time.time()
        if path.is_file():
            mode = oct(path.stat().st_mode & 0o777)[2:].zfill(4)
            out = f"# mode {mode}\n" + path.read_text()
            rc = 0
        else:
            out, rc = f"{path}: No such file or directory\n", 1
        return self.ev.capture(
            step,
            title,
            argv=["cat", str(path)],
            cwd=str(path.parent),
            returncode=rc,
            stdout=out,
            started_at=started,
            ended_at=time.time(),
        )
