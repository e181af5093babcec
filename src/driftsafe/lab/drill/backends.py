"""Where the drill keeps its state: a strategy object per backend.

``DriftsafeServer`` (the default) starts driftsafe's own state server; ``S3Bucket``
(lab/drill/s3.py) makes a versioned, encrypted bucket on moto or a real S3 endpoint.
A strategy sets the backend up and tears it down, gives Terraform and driftsafe their
credentials, reads the lock entry while an apply holds it, and names the step functions
it runs: the same 13 steps, with its own versions of those that read the backend.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from driftsafe.engine import Process
from driftsafe.lab.drill.records import ApiCall, DrillError

if TYPE_CHECKING:
    from driftsafe.lab.drill.context import Drill

StepFunc = Callable[["Drill"], None]
Steps = Sequence[tuple[str, StepFunc]]


class DrillBackend:
    """The strategy interface, and what every backend shares."""

    name = ""
    description = ""

    def setup(self, d: Drill, say: Callable[[str], None]) -> None:
        raise NotImplementedError

    def stop(self, d: Drill) -> None:
        raise NotImplementedError

    def tf_env(self, d: Drill, token: str | None) -> dict[str, str]:
        """Credentials Terraform needs for this backend."""
        raise NotImplementedError

    def ds_env(self, d: Drill) -> dict[str, str]:
        """What driftsafe's own commands need to reach this backend."""
        raise NotImplementedError

    def lock_entry(self, d: Drill, step: str, env: str) -> ApiCall:
        """The lock as the backend stores it, captured while an apply holds it:
        ``body["lock"]`` has at least ``id`` and ``who``."""
        raise NotImplementedError

    def mark_before_resolution(self, d: Drill, step: str) -> None:
        """Remember staging's latest version, for the versions step's diff."""
        raise NotImplementedError

    def steps(self, default: Steps) -> list[tuple[str, StepFunc]]:
        """The drill's steps on this backend: ``default`` with this backend's own
        versions of the steps that read the backend."""
        overrides = self.step_overrides()
        return [(name, overrides.get(name, func)) for name, func in default]

    def step_overrides(self) -> dict[str, StepFunc]:
        return {}

    def finish(self, d: Drill) -> None:
        """After the last step, before the report is written."""


class DriftsafeServer(DrillBackend):
    """driftsafe's state server on SQLite, on a free loopback port, with its own admin
    and write tokens; the stack reaches it through Terraform's http backend."""

    name = "driftsafe"
    description = "driftsafe state server (SQLite, http backend)"

    def setup(self, d: Drill, say: Callable[[str], None]) -> None:
        s = "backend"
        say(f"driftsafe lab run: drill in {d.root}")
        d.ev.step(s, "Backend evidence: remote, versioned, locked, encrypted")
        (d.root / "server").mkdir()
        tokens = {}
        for name, scope in (("drill-admin", "admin"), ("drill-ci", "write")):
            r, _t = d.ds(
                s,
                [
                    *("token", "create", name, "--scope", scope),
                    *("--workspace", "lab/*", "--json", "--db", d.db_url),
                ],
                f"create the {scope} token",
                cwd=d.root,
            )
            if r.returncode != 0:
                raise DrillError(f"could not create the {scope} token: {r.stderr.strip()}")
            tokens[scope] = json.loads(r.stdout)["token"]
            d.ev.redact(tokens[scope])
        d.admin_token, d.write_token = tokens["admin"], tokens["write"]
        env = dict(os.environ)
        env.update(d.ds_env())
        env.pop("DRIFTSAFE_SERVER", None)
        env.pop("DRIFTSAFE_TOKEN", None)
        d.server = Process(
            [sys.executable, "-m", "driftsafe", "serve", "--db", d.db_url, "--port", "0"],
            cwd=d.root,
            env=env,
            shown_env={"DRIFTSAFE_HOME": str(d.root / "server")},
        )
        if not d.server.wait_for_output(r"listening on https?://", timeout=60):
            result = d.server.wait(timeout=10)
            d.ev.record(s, result, title="driftsafe serve (failed to start)")
            raise DrillError("the state server did not start")
        line = next(x.text for x in d.server.lines() if "listening on" in x.text)
        match = re.search(r"listening on (\S+)", line)
        assert match is not None
        d.server_url = match.group(1).rstrip("/")
        r, _t = d.ds(
            s,
            ["lab", "init", "stack", "--server", d.server_url, "--name", "lab"],
            "driftsafe lab init --server",
            cwd=d.root,
        )
        if r.returncode != 0:
            raise DrillError("driftsafe lab init failed")
        if d.lock_disabled:
            # The deliberately broken setting: an http backend without lock addresses
            # does no locking at all. The report must then show ✗ on the lock clash.
            for env_name in ("staging", "prod"):
                backend = d.env_dir(env_name) / "backend.tf"
                backend.write_text(
                    "".join(
                        line
                        for line in backend.read_text().splitlines(keepends=True)
                        if not re.search(r"^\s*(lock|unlock)_(address|method)\s*=", line)
                    )
                )

    def stop(self, d: Drill) -> None:
        if d.server is None:
            return
        d.server.send_signal(signal.SIGTERM)
        result = d.server.wait(timeout=20)
        if d.ev.steps:
            d.ev.record(d.ev.steps[-1].id, result, title="driftsafe serve (the state server's log)")

    def tf_env(self, d: Drill, token: str | None) -> dict[str, str]:
        return {"TF_HTTP_USERNAME": "drill", "TF_HTTP_PASSWORD": token or d.write_token}

    def ds_env(self, d: Drill) -> dict[str, str]:
        return {"DRIFTSAFE_SERVER": d.server_url, "DRIFTSAFE_TOKEN": d.admin_token}

    def lock_entry(self, d: Drill, step: str, env: str) -> ApiCall:
        return d.api(
            step,
            "GET",
            f"/api/v1/workspaces/{d.workspace(env)}/lock",
            "Lock entry on the server while the holder applies",
        )

    def mark_before_resolution(self, d: Drill, step: str) -> None:
        versions = d.api(
            step,
            "GET",
            f"/api/v1/workspaces/{d.workspace('staging')}/versions",
            "Versions before the resolution",
        )
        listed = (versions.body or {}).get("versions") or [{}]
        d.figures["serial_before_resolution"] = listed[0].get("serial")
