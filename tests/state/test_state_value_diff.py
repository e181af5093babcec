"""The diff by meaning (issue 13 item 11): dynamic-type attributes compared by value,
replaced resources shown as replaced with their new id, old -> new values with secrets
hidden, and the byte-level diff agreeing with the decoded one."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from test_state_diff import make_state, state_bodies

from driftsafe.engine import Engine
from driftsafe.state import diff_bodies, diff_states
from driftsafe.state.diff import SENSITIVE


def _data(name: str, input_value: Any, input_type: Any, trigger: str, rid: str) -> dict[str, Any]:
    """A terraform_data resource as Terraform 1.15 stores it."""
    return {
        "mode": "managed",
        "type": "terraform_data",
        "name": name,
        "provider": 'provider["terraform.io/builtin/terraform"]',
        "instances": [
            {
                "schema_version": 0,
                "attributes": {
                    "id": rid,
                    "input": {"value": input_value, "type": input_type},
                    "output": {"value": input_value, "type": input_type},
                    "triggers_replace": {"value": [trigger], "type": ["tuple", ["string"]]},
                },
                "sensitive_attributes": [],
            }
        ],
    }


def _state(serial: int, *resources: dict[str, Any], **outputs: Any) -> dict[str, Any]:
    return {
        "version": 4,
        "terraform_version": "1.15.5",
        "serial": serial,
        "lineage": "l-1",
        "outputs": outputs,
        "resources": list(resources),
    }


def test_dynamic_type_encoding_is_not_a_change_nor_in_paths() -> None:
    one = ["object", {"n": "number"}]
    two = ["object", {"m": "string", "n": "number"}]
    old = _state(1, _data("app", {"n": 1}, one, "a", "id-1"))
    new = _state(2, _data("app", {"m": "x", "n": 2}, two, "a", "id-1"))
    result = diff_states(old, new).to_json()
    assert result["changed"] == {
        "terraform_data.app": ["input.m", "input.n", "output.m", "output.n"]
    }
    assert all("type" not in p for p in result["changed"]["terraform_data.app"])
    (change,) = result["resources"]
    assert change["action"] == "update"
    values = {a["path"]: (a["action"], a["old"], a["new"]) for a in change["attributes"]}
    assert values["input.n"] == ("change", 1, 2)
    assert values["input.m"] == ("add", None, "x")

    # The same value with another type encoding (a tuple became a list): no change.
    same = copy.deepcopy(old)
    attrs = same["resources"][0]["instances"][0]["attributes"]
    attrs["triggers_replace"]["type"] = ["list", "string"]
    attrs["input"]["value"]["n"] = 1.0
    assert diff_states(old, same).empty


def test_a_replaced_resource_is_replaced_with_its_new_id() -> None:
    kind = ["object", {"n": "number"}]
    old = _state(
        1, _data("app", {"n": 1}, kind, "a", "id-old"), _data("keep", 1, "number", "k", "k")
    )
    new = _state(
        2, _data("app", {"n": 1}, kind, "b", "id-new"), _data("keep", 2, "number", "k", "k")
    )
    result = diff_states(old, new)
    assert [r.address for r in result.replaced] == ["terraform_data.app"]
    assert result.to_json()["replaced"] == [
        {"address": "terraform_data.app", "old_id": "id-old", "new_id": "id-new"}
    ]
    actions = {r.address: r.action for r in result.resources}
    assert actions == {"terraform_data.app": "replace", "terraform_data.keep": "update"}
    assert result.summary() == {
        "added": 0,
        "removed": 0,
        "updated": 1,
        "replaced": 1,
        "outputs": 0,
    }
    # Kept in "changed" too: a client reading only the old fields still sees a change.
    assert result.changed["terraform_data.app"] == ("id", "triggers_replace[0]")


def test_values_hide_what_terraform_marks_and_what_the_scan_flags() -> None:
    secret, token = "hunter2-very-secret", "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2
    res = {
        "mode": "managed",
        "type": "lab_secret_file",
        "name": "db",
        "instances": [
            {
                "attributes": {
                    "id": "db",
                    "password": secret,
                    "note": "plain",
                    "settings": {"api_token": token, "port": 1},
                },
                "sensitive_attributes": [[{"type": "get_attr", "value": "password"}]],
            }
        ],
    }
    old = _state(1, res, pw={"value": secret, "type": "string", "sensitive": True})
    new = copy.deepcopy(old)
    attrs = new["resources"][0]["instances"][0]["attributes"]
    attrs["password"] = secret + "-rotated"
    attrs["note"] = "changed"
    attrs["settings"] = {"api_token": token + "x", "port": 2}
    new["outputs"] = {
        "pw": {"value": secret + "-rotated", "type": "string", "sensitive": True},
        "leak": {"value": token, "type": "string"},
    }
    result = diff_states(old, new).to_json()
    text = json.dumps(result)
    assert secret not in text and token not in text
    values = {a["path"]: a for a in result["resources"][0]["attributes"]}
    assert values["password"]["old"] == values["password"]["new"] == SENSITIVE
    assert values["password"]["sensitive"] is True
    assert values["settings.api_token"]["new"] == SENSITIVE
    assert (values["note"]["old"], values["note"]["new"]) == ("plain", "changed")
    assert (values["settings.port"]["old"], values["settings.port"]["new"]) == (1, 2)
    outputs = {o["name"]: o for o in result["outputs"]}
    assert outputs["pw"]["new"] == SENSITIVE and outputs["leak"]["new"] == SENSITIVE
    assert outputs["leak"]["action"] == "add"


def test_a_whole_object_replaced_by_a_string_hides_the_secret_inside() -> None:
    res = {
        "mode": "managed",
        "type": "t",
        "name": "n",
        "instances": [{"attributes": {"cfg": {"password": "pa55-w0rd-xyz"}}}],
    }
    old = _state(1, res)
    new = copy.deepcopy(old)
    new["resources"][0]["instances"][0]["attributes"]["cfg"] = "none"
    (attr,) = diff_states(old, new).resources[0].attributes
    assert (attr.path, attr.old, attr.new, attr.sensitive) == ("cfg", SENSITIVE, SENSITIVE, True)


@settings(deadline=None)  # timing varies with the load of a shared CI box
@given(state_bodies, state_bodies)
def test_bytes_and_decoded_diffs_agree(a_body: dict[Any, Any], b_body: dict[Any, Any]) -> None:
    a, b = make_state(a_body), make_state(b_body)
    expected = diff_states(a, b).to_json()
    compact = json.dumps(a, separators=(",", ":")).encode()
    indented = json.dumps(b, indent=2).encode()
    assert diff_bodies(compact, indented).to_json() == expected
    # The same state in another layout is the same state.
    assert diff_bodies(compact, json.dumps(a, indent=4).encode()).empty


def test_odd_shapes_take_the_tolerant_path() -> None:
    good = _state(1, _data("app", 1, "number", "a", "x"))
    odd = copy.deepcopy(good)
    odd["resources"].append("not an object")
    assert diff_bodies(json.dumps(good).encode(), json.dumps(odd).encode()).empty


def test_real_terraform_data_replaced_and_changed(engine: Engine, tmp_path: Path) -> None:
    """States written by real Terraform: the noise of issue 13 item 11 is gone."""
    (tmp_path / "main.tf").write_text(
        'variable "n" {\n  type = number\n}\nvariable "t" {\n  type = string\n}\n'
        'resource "terraform_data" "app" {\n'
        '  input            = { n = var.n, name = "app" }\n'
        "  triggers_replace = [var.t]\n}\n"
        'resource "terraform_data" "cfg" {\n  input = { n = var.n }\n}\n'
    )
    assert engine.run(["init", "-no-color"], cwd=tmp_path, timeout=120).returncode == 0
    states = []
    for n, t in ((1, "a"), (2, "b")):
        run = engine.run(
            ["apply", "-auto-approve", "-no-color", f"-var=n={n}", f"-var=t={t}"],
            cwd=tmp_path,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        states.append((tmp_path / "terraform.tfstate").read_bytes())
    result = diff_bodies(*states)
    paths = {addr: list(p) for addr, p in result.changed.items()}
    assert not any("type" in p for ps in paths.values() for p in ps), paths
    assert "input.n" in paths["terraform_data.cfg"]
    assert "triggers_replace[0]" in paths["terraform_data.app"]
    (replaced,) = result.replaced
    new_id = json.loads(states[1])["resources"][0]["instances"][0]["attributes"]["id"]
    assert replaced.address == "terraform_data.app" and replaced.new_id == new_id
    assert replaced.old_id != new_id
    cfg = next(r for r in result.resources if r.address == "terraform_data.cfg")
    assert cfg.action == "update"
    assert {(a.path, a.old, a.new) for a in cfg.attributes} >= {("input.n", 1, 2)}


def test_the_cli_shows_replaced_as_replaced_with_values() -> None:
    from driftsafe.cli.versions import render_diff

    kind = ["object", {"n": "number"}]
    old = _state(
        1, _data("app", {"n": 1}, kind, "a", "id-old"), pw={"value": "x", "type": "string"}
    )
    new = _state(
        2, _data("app", {"n": 2}, kind, "b", "id-new"), pw={"value": "y", "type": "string"}
    )
    result = diff_states(old, new).to_json()
    text = render_diff("ws", 1, 2, result, values=True)
    assert "-/+ terraform_data.app (replaced: id id-old -> id-new)" in text
    assert "      input.n: 1 -> 2" in text
    assert "  ~ output.pw: x -> y" in text
    assert text.endswith("0 added, 0 removed, 0 changed, 1 replaced, 1 output(s) changed.")
    assert "  ~ terraform_data.app" not in render_diff("ws", 1, 2, result)


@settings(deadline=None)  # timing varies with the load of a shared CI box
@given(state_bodies, state_bodies)
def test_change_counts_agree_with_the_diff(a_body: dict[Any, Any], b_body: dict[Any, Any]) -> None:
    from driftsafe.state import change_counts

    a, b = json.dumps(make_state(a_body)).encode(), json.dumps(make_state(b_body)).encode()
    s = diff_bodies(a, b).summary()
    counts = change_counts(lambda: a, lambda: b)
    assert counts == (s["added"], s["updated"] + s["replaced"], s["removed"])
    assert change_counts(None, lambda: b) == (len(diff_bodies(b"{}", b).added), 0, 0)
