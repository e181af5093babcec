"""Helpers for the console tests: states with hostile and secret content, written into
a real store, and a logged-in client."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from driftsafe.state import parse_state, scan_state
from driftsafe.store import Actor, SqlStore

HOSTILE = "<img src=x onerror=alert(1)>"
SECRET = "hunter2-Sup3r-S3cret-Passw0rd"
MARKED = "marked-value-never-shown-9f8e"


def state(serial: int, n: int = 1, *, lineage: str = "lin-c", tag: str = "a") -> bytes:
    """A state with a hostile output and attribute, a marked-sensitive attribute, a
    secret that only the scan flags, and ``n`` terraform_data resources."""
    resources: list[dict[str, Any]] = [
        {
            "mode": "managed",
            "type": "lab_config_file",
            "name": "app",
            "module": "module.app",
            "instances": [
                {
                    "schema_version": 0,
                    "attributes": {
                        "id": "cfg-1",
                        "label": HOSTILE,
                        "values": {"db_password": SECRET, "tag": tag},
                        "token_value": MARKED,
                    },
                    "sensitive_attributes": [[{"type": "get_attr", "value": "token_value"}]],
                }
            ],
        }
    ]
    for i in range(n):
        resources.append(
            {
                "mode": "managed",
                "type": "terraform_data",
                "name": f"r{i}",
                "instances": [
                    {
                        "attributes": {
                            "id": f"id-{i}-{tag}" if i == 0 else f"id-{i}",
                            "input": {"value": f"{tag}-{i}", "type": "string"},
                        }
                    }
                ],
            }
        )
    return json.dumps(
        {
            "version": 4,
            "terraform_version": "1.15.5",
            "serial": serial,
            "lineage": lineage,
            "outputs": {
                "hostile": {"value": HOSTILE, "type": "string"},
                "db_password": {"value": SECRET, "type": "string", "sensitive": True},
            },
            "resources": resources,
        },
        indent=2,
    ).encode()


def put(store: SqlStore, ws: str, serial: int, **kw: Any) -> None:
    body = state(serial, **kw)
    parsed = parse_state(body)
    findings = [f.to_json() for f in scan_state(parsed.raw)]
    store.write_state(ws, body, parsed, Actor("writer"), lock_id=None, findings=findings)


def lock_info(lock_id: str, who: str = HOSTILE) -> dict[str, str]:
    return {
        "ID": lock_id,
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": who,
        "Version": "1.15.5",
        # As Terraform writes it: nanoseconds and the writer's own zone.
        "Created": "2026-12-01T09:00:00.123456789+01:00",
        "Path": "",
    }


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def login(client: httpx.AsyncClient, token: str) -> httpx.Response:
    answer = await client.post("/ui/login", data={"token": token, "next": "/ui/"})
    assert answer.status_code == 303, answer.text
    return answer


def assert_safe(html: str) -> None:
    """No hostile markup unescaped, no secret value, anywhere in a page."""
    assert HOSTILE not in html
    assert SECRET not in html
    assert MARKED not in html
