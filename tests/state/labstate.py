"""A realistic state of the lab stack (module.app), written by hand for unit tests."""

from __future__ import annotations

import copy
from typing import Any

RUNTIME = "/home/ci/work/lab-run/runtime/staging"
RELEASE_ID = "3f9a1c0b7d2e"


def _resource(rtype: str, name: str, attributes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    instance: dict[str, Any] = {
        "schema_version": 0,
        "attributes": attributes,
        "sensitive_attributes": [],
        "identity_schema_version": 0,
    }
    instance.update(extra)
    return {
        "module": "module.app",
        "mode": "managed",
        "type": rtype,
        "name": name,
        "provider": 'provider["registry.driftsafe.local/driftsafe/lab"]',
        "instances": [instance],
    }


def lab_state(
    serial: int = 4, lineage: str = "5b0f3a52-9d7e-2c41-8a60-1f2e3d4c5b6a"
) -> dict[str, Any]:
    values = {"env": "staging", "max_connections": "100", "port": "8080"}
    content = "".join(f"{k} = {v}\n" for k, v in sorted(values.items()))
    release_content = "release 1.4.2\nbuild 2026-11-27T07:00:00Z\n"
    state = {
        "version": 4,
        "terraform_version": "1.15.5",
        "serial": serial,
        "lineage": lineage,
        "outputs": {
            "config_path": {"value": f"{RUNTIME}/app.conf", "type": "string"},
            "release_id": {"value": RELEASE_ID, "type": "string"},
        },
        "resources": [
            _resource(
                "lab_config_file",
                "app",
                {
                    "path": f"{RUNTIME}/app.conf",
                    "values": values,
                    "content": content,
                    "mode": "0644",
                },
            ),
            _resource(
                "lab_config_file",
                "features",
                {
                    "path": f"{RUNTIME}/features.conf",
                    "values": {"beta_checkout": "false", "dark_mode": "true"},
                    "content": "beta_checkout = false\ndark_mode = true\n",
                    "mode": "0644",
                },
            ),
            # The secret is write-only: Terraform keeps null in state, and marks it.
            _resource(
                "lab_secret_file",
                "app",
                {
                    "path": f"{RUNTIME}/app.secret",
                    "mode": "0600",
                    "secret": None,
                    "secret_version": 1,
                },
                sensitive_attributes=[[{"type": "get_attr", "value": "secret"}]],
            ),
            _resource(
                "lab_release",
                "app",
                {
                    "base_dir": RUNTIME,
                    "content": release_content,
                    "release_id": RELEASE_ID,
                    "path": f"{RUNTIME}/releases/{RELEASE_ID}",
                },
                create_before_destroy=True,
            ),
            _resource(
                "lab_symlink",
                "current",
                {"path": f"{RUNTIME}/current", "target": f"{RUNTIME}/releases/{RELEASE_ID}"},
            ),
            _resource("lab_delay", "rollout", {"seconds": 0, "triggers": {"release": RELEASE_ID}}),
        ],
        "check_results": None,
    }
    return copy.deepcopy(state)


def instance(state: dict[str, Any], rtype: str, name: str) -> dict[str, Any]:
    for resource in state["resources"]:
        if resource["type"] == rtype and resource["name"] == name:
            inst: dict[str, Any] = resource["instances"][0]
            return inst
    raise KeyError(f"{rtype}.{name}")
