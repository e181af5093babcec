"""``/api/v1/openapi.json`` describes the JSON API, and the live server keeps to it:
schemathesis sends every operation valid and invalid input with an admin token, and
every answer must be a documented 2xx/4xx (never a 5xx) that matches its schema."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from driftsafe.server.openapi import openapi_document
from driftsafe.server.serving import RunningServer, start_server
from driftsafe.settings import Settings
from driftsafe.store import Actor


@pytest.fixture
def live(server_settings: Settings, tmp_path) -> Iterator[tuple[RunningServer, str]]:  # type: ignore[no-untyped-def]
    running = start_server(server_settings, db=f"sqlite:///{tmp_path / 'api.db'}")
    try:
        store = running.store
        admin = store.create_token("fuzz-admin", "admin")[1]
        # Data for the documented examples (workspace team/app, serial 1) to find.
        for serial in (1, 2, 3):
            body = {
                "version": 4,
                "terraform_version": "1.15.5",
                "serial": serial,
                "lineage": "fuzz",
                "outputs": {"n": {"value": serial, "type": "number"}},
                "resources": [],
            }
            with httpx.Client(base_url=running.url, auth=("tf", admin)) as c:
                c.post("/v1/states/team/app", content=json.dumps(body)).raise_for_status()
        store.add_drift_report("team/app", {"schema": 1, "drifted": []}, Actor("fuzz-admin"))
        yield running, admin
    finally:
        running.stop()


# Loaded from the code, not over HTTP: schemathesis builds one test per operation at
# collection, before any server runs (its fixture-loaded schemas need pytest < 9).
# The first test checks the live server serves exactly this document.
schema = schemathesis.openapi.from_dict(openapi_document())


def test_the_description_is_openapi_3_1_of_every_api_route(
    live: tuple[RunningServer, str],
) -> None:
    running, _ = live
    document = httpx.get(f"{running.url}/api/v1/openapi.json").json()  # no token needed
    assert document == openapi_document()
    assert document["openapi"] == "3.1.0"
    described = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    ws = "/api/v1/workspaces/{workspace}"
    assert described == {
        ("GET", "/api/v1/server"),
        ("GET", "/api/v1/workspaces"),
        ("DELETE", ws),
        ("GET", f"{ws}/versions"),
        ("GET", f"{ws}/versions/{{serial}}"),
        ("GET", f"{ws}/diff"),
        ("POST", f"{ws}/restore"),
        ("GET", f"{ws}/lock"),
        ("DELETE", f"{ws}/lock"),
        ("GET", f"{ws}/drift"),
        ("POST", f"{ws}/drift"),
        ("GET", "/api/v1/audit"),
    }


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_documented_and_never_a_server_error(
    case,  # type: ignore[no-untyped-def]
    live: tuple[RunningServer, str],
) -> None:
    running, admin = live
    case.call_and_validate(base_url=running.url, headers={"Authorization": f"Bearer {admin}"})
