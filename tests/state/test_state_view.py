"""What the console may show of a state: rows without secrets, instances parsed lazily."""

from __future__ import annotations

import json

from labstate import instance, lab_state

from driftsafe.state import SENSITIVE, SecretPaths, attribute_rows, output_rows, resource_rows


def test_rows_hide_marked_and_flagged_values_and_unwrap_dynamic_types() -> None:
    state = lab_state()
    app = instance(state, "lab_config_file", "app")
    app["attributes"]["values"]["db_password"] = "correct-horse-battery"
    app["attributes"]["marked"] = {"value": {"inner": "s3cr3t-value"}, "type": ["object", {}]}
    app["sensitive_attributes"] = [
        [{"type": "get_attr", "value": "marked"}, {"type": "get_attr", "value": "inner"}]
    ]
    state["outputs"]["token"] = {"value": "x", "type": "string", "sensitive": True}
    rows, outputs = resource_rows(json.dumps(state, indent=2).encode())
    assert [r.address for r in rows][:1] == ["module.app.lab_config_file.app"]
    first = rows[0]
    assert (first.module, first.mode, first.type, first.name) == (
        "module.app",
        "managed",
        "lab_config_file",
        "app",
    )
    scanner = SecretPaths()
    shown = {
        path: (value, hidden) for path, value, hidden in attribute_rows(first.instance(), scanner)
    }
    assert shown["values.db_password"] == (SENSITIVE, True)
    assert shown["marked.inner"] == (SENSITIVE, True)  # no "value" step of the wrapper
    assert shown["values.max_connections"] == ("100", False)
    text = json.dumps(list(shown.items()))
    assert "correct-horse" not in text and "s3cr3t" not in text
    outs = {name: (value, hidden) for name, value, hidden in output_rows(outputs, scanner)}
    assert outs["token"] == (SENSITIVE, True)
    assert outs["release_id"][1] is False


def test_odd_shapes_are_tolerated() -> None:
    body = json.dumps(
        {"resources": ["nope", {"type": "t", "name": "n", "instances": [{"index_key": 2}, 5]}]}
    ).encode()
    rows, outputs = resource_rows(body)
    assert [r.address for r in rows] == ["t.n[2]"] and outputs == {}
