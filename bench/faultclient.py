"""The clients of bench/faults.py: Terraform's protocol cycle (LOCK, GET, POST
serial+1 with the lock ID, UNLOCK), each request sent again until it gets an answer
below 500, as Terraform's http client does; every logical request recorded as an Op."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from faultcheck import Op

# A logical request is retried (a lost answer, a 5xx, a refused connection) until this.
OP_DEADLINE = 60.0
# A client that cannot get a lock for this long gives up the cycle (Terraform's
# -lock-timeout): nothing is held, nothing written.
LOCK_TIMEOUT = 20.0
WAIT = "5s"


def state_body(ws: str, serial: int, client: str, lock_id: str, rng: random.Random) -> bytes:
    body = {
        "version": 4,
        "terraform_version": "1.15.5",
        "serial": serial,
        "lineage": f"lineage-{ws}",
        "outputs": {"writer": {"value": f"{client}/{lock_id}", "type": "string"}},
        "resources": [
            {
                "mode": "managed",
                "type": "terraform_data",
                "name": f"r{n}",
                "provider": 'provider["terraform.io/builtin/terraform"]',
                "instances": [
                    {"schema_version": 0, "attributes": {"id": f"{serial}-{n}", "pad": pad}}
                ],
            }
            for n, pad in enumerate(
                f"{rng.getrandbits(rng.choice((64, 512, 4096))):x}" for _ in range(3)
            )
        ],
    }
    return json.dumps(body, indent=2).encode()


@dataclass
class Client:
    name: str
    server: int  # which server (through its proxy) this client talks to
    base: str
    token: str
    workspaces: list[str]
    rng: random.Random
    wait: bool
    ops: list[Op]
    waiting_since: float | None = None  # a LOCK ?wait= in flight since
    cycles: int = 0
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(
            base_url=self.base,
            auth=("terraform", self.token),
            timeout=httpx.Timeout(20.0, connect=3.0),
        )

    async def _send(self, op: Op, method: str, path: str, **kw: Any) -> httpx.Response | None:
        """Send until an answer below 500 comes, as Terraform's client retries; None
        when none came before the deadline."""
        deadline = op.call + OP_DEADLINE
        pause = 0.05
        while True:
            op.attempts += 1
            try:
                response: httpx.Response | None = await self.http.request(method, path, **kw)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code < 500:
                return response
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(pause * self.rng.uniform(0.5, 1.5))
            pause = min(pause * 2, 1.0)

    def _op(self, kind: str, ws: str, lock_id: str) -> Op:
        op = Op(self.name, kind, ws, lock_id, time.monotonic())
        self.ops.append(op)
        return op

    async def lock(self, ws: str, info: dict[str, str]) -> bool | None:
        """True: held; False: not held (given up on a busy lock); None: unknown."""
        give_up = time.monotonic() + LOCK_TIMEOUT
        while True:
            op = self._op("lock", ws, info["ID"])
            params = {"wait": WAIT} if self.wait else {}
            self.waiting_since = op.call if self.wait else None
            try:
                response = await self._send(
                    op,
                    "LOCK",
                    f"/v1/locks/{ws}",
                    json=info,
                    params=params,
                    timeout=httpx.Timeout(40.0, connect=3.0),
                )
            finally:
                self.waiting_since = None
            op.ret = time.monotonic()
            if response is None:
                return None
            op.status = response.status_code
            if response.status_code == 200:
                return True
            if response.status_code in (409, 423):
                op.holder_id = response.json().get("ID")
                if op.holder_id == info["ID"]:
                    return None  # refused its own lock: the checker reports it
                if time.monotonic() > give_up:
                    return False
                await asyncio.sleep(self.rng.uniform(0.05, 0.5))
                continue
            return None

    async def get(self, ws: str, lock_id: str) -> int | None:
        op = self._op("get", ws, lock_id)
        response = await self._send(op, "GET", f"/v1/states/{ws}")
        op.ret = time.monotonic()
        if response is None:
            return None
        op.status = response.status_code
        if response.status_code == 204:
            op.serial = 0
        elif response.status_code == 200:
            md5 = base64.b64encode(hashlib.md5(response.content).digest()).decode()
            if response.headers.get("content-md5") not in (None, md5):
                op.status = 599  # a corrupt answer: never write on top of it
                return None
            op.serial = int(response.json()["serial"])
        return op.serial

    async def post(self, ws: str, lock_id: str, serial: int) -> None:
        body = state_body(ws, serial, self.name, lock_id, self.rng)
        op = self._op("post", ws, lock_id)
        op.serial = serial
        op.sha256 = hashlib.sha256(body).hexdigest()
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        response = await self._send(
            op,
            "POST",
            f"/v1/states/{ws}",
            params={"ID": lock_id},
            content=body,
            headers={"Content-Type": "application/json", "Content-MD5": md5},
        )
        op.ret = time.monotonic()
        if response is not None:
            op.status = response.status_code
            if response.status_code == 200:
                op.created = bool(response.json()["created"])

    async def unlock(self, ws: str, info: dict[str, str], *, held: bool) -> None:
        # An unlock after an unknown LOCK outcome is clean-up: its 404 is no violation.
        op = self._op("unlock" if held else "cleanup", ws, info["ID"])
        response = await self._send(op, "UNLOCK", f"/v1/locks/{ws}", json=info)
        op.ret = time.monotonic()
        if response is not None:
            op.status = response.status_code

    async def cycle(self) -> None:
        ws = self.rng.choice(self.workspaces)
        lock_id = str(uuid.UUID(int=self.rng.getrandbits(128)))
        info = {
            "ID": lock_id,
            "Operation": "OperationTypeApply",
            "Info": "",
            "Who": f"{self.name}@faults",
            "Version": "1.15.5",
            "Created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "Path": "",
        }
        held = await self.lock(ws, info)
        if held is False:
            return
        try:
            if held:
                serial = await self.get(ws, lock_id)
                if serial is not None:
                    await self.post(ws, lock_id, serial + 1)
        finally:
            await self.unlock(ws, info, held=bool(held))
        self.cycles += 1

    async def run(self, until: float) -> None:
        try:
            while time.monotonic() < until:
                await self.cycle()
        finally:
            await self.http.aclose()
