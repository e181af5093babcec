"""Helpers for the signal tests: a state server's roots, and the processes left in a root."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from driftsafe.server.serving import RunningServer

BACKEND = """
terraform {{
  backend "http" {{
    address        = "{url}/v1/states/{ws}"
    lock_address   = "{url}/v1/locks/{ws}{query}"
    unlock_address = "{url}/v1/locks/{ws}"
    lock_method    = "LOCK"
    unlock_method  = "UNLOCK"
    retry_max      = 0
  }}
}}
"""

# A resource replaced on every apply whose creation runs `sleep`: a slow apply with no
# provider to install.
SLOW = """
variable "sleep" {
  type    = number
  default = 0
}
resource "terraform_data" "slow" {
  triggers_replace = [timestamp()]
  provisioner "local-exec" {
    command = "sleep ${var.sleep}"
  }
}
"""


@dataclass
class LockServer:
    running: RunningServer
    admin: str
    writer: str

    @property
    def url(self) -> str:
        return self.running.url

    def root(self, path: Path, ws: str, body: str = SLOW, *, wait: str | None = None) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        query = f"?wait={wait}" if wait else ""
        (path / "backend.tf").write_text(BACKEND.format(url=self.url, ws=ws, query=query))
        (path / "main.tf").write_text(body)
        return path

    def env(self) -> dict[str, str]:
        return {"TF_HTTP_USERNAME": "driftsafe", "TF_HTTP_PASSWORD": self.writer}

    def lock(self, ws: str) -> dict | None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            answer = client.get(
                f"/api/v1/workspaces/{ws}/lock", headers={"Authorization": f"Bearer {self.admin}"}
            )
        answer.raise_for_status()
        lock: dict | None = answer.json()["lock"]
        return lock


def processes_in(directory: Path) -> list[str]:
    """Live (not zombie) processes whose working directory is ``directory`` or below:
    Terraform, its provider plugins and its provisioners' commands all are."""
    found = []
    target = str(directory.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # gone, or not ours
        if state != "Z" and (cwd == target or cwd.startswith(target + os.sep)):
            found.append(f"{entry.name} {cmdline.strip()}")
    return found


def wait_until_no_processes_in(directory: Path, timeout: float = 15.0) -> list[str]:
    """Processes just killed may take a moment to be gone from /proc."""
    deadline = time.monotonic() + timeout
    while (left := processes_in(directory)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left
