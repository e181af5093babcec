from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from labstate import instance, lab_state

from driftsafe.state.diff import diff_states
from driftsafe.state.paths import flatten, format_path, instance_address

MISSING = object()

keys = st.sampled_from(["a", "b", "max_connections", "a.b", "0", "with space", "x-y"])
scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["", "s", "t", "1"])
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=12,
)
attributes = st.dictionaries(keys, json_values, max_size=4)
addresses = st.sampled_from(
    [
        ("module.app", "managed", "lab_config_file", "app", None),
        ("module.app", "managed", "lab_config_file", "features", None),
        (None, "managed", "lab_release", "app", None),
        (None, "data", "lab_file", "seed", None),
        (None, "managed", "lab_delay", "d", 0),
        (None, "managed", "lab_delay", "d", 1),
        ("module.app[0]", "managed", "lab_symlink", "x", "k.1"),
    ]
)
state_bodies = st.dictionaries(addresses, attributes, max_size=5)


def make_state(body: dict[tuple[Any, ...], dict[str, Any]]) -> dict[str, Any]:
    resources = []
    for (module, mode, rtype, name, key), attrs in body.items():
        inst: dict[str, Any] = {"schema_version": 0, "attributes": attrs}
        if key is not None:
            inst["index_key"] = key
        res: dict[str, Any] = {"mode": mode, "type": rtype, "name": name, "instances": [inst]}
        if module:
            res["module"] = module
        resources.append(res)
    return {"version": 4, "serial": 1, "lineage": "l", "resources": resources}


def _eq(a: Any, b: Any) -> bool:
    return a is not MISSING and b is not MISSING and json.dumps(a) == json.dumps(b)


def oracle(a: Any, b: Any, path: tuple[Any, ...] = ()) -> set[str]:
    """Leaf paths that differ, computed by walking both values side by side."""
    if isinstance(a, dict) and a and isinstance(b, dict) and b:
        out: set[str] = set()
        for k in a.keys() | b.keys():
            out |= oracle(a.get(k, MISSING), b.get(k, MISSING), (*path, k))
        return out
    if isinstance(a, list) and a and isinstance(b, list) and b:
        out = set()
        for i in range(max(len(a), len(b))):
            out |= oracle(
                a[i] if i < len(a) else MISSING, b[i] if i < len(b) else MISSING, (*path, i)
            )
        return out
    if _eq(a, b):
        return set()
    found = set()
    for side in (a, b):
        if side is not MISSING:
            found |= {format_path(p) for p, _ in flatten(side, path)}
    return found


@settings(deadline=None)  # timing varies with the load of a shared CI box
@given(state_bodies)
def test_diff_with_itself_is_empty(body: dict[tuple[Any, ...], dict[str, Any]]) -> None:
    state = make_state(body)
    result = diff_states(state, copy.deepcopy(state))
    assert result.empty
    assert result.to_json() == {
        "added": [],
        "removed": [],
        "changed": {},
        "replaced": [],
        "resources": [],
        "outputs": [],
        "summary": {"added": 0, "removed": 0, "updated": 0, "replaced": 0, "outputs": 0},
    }


@settings(deadline=None)  # timing varies with the load of a shared CI box
@given(state_bodies, state_bodies)
def test_diff_is_symmetric(a_body: dict[Any, Any], b_body: dict[Any, Any]) -> None:
    a, b = make_state(a_body), make_state(b_body)
    forward, backward = diff_states(a, b), diff_states(b, a)
    assert forward.added == backward.removed
    assert forward.removed == backward.added
    assert dict(forward.changed) == dict(backward.changed)


@settings(max_examples=200, deadline=None)
@given(state_bodies, state_bodies)
def test_changed_paths_are_exactly_the_differing_leaves(
    a_body: dict[Any, Any], b_body: dict[Any, Any]
) -> None:
    a, b = make_state(a_body), make_state(b_body)
    result = diff_states(a, b)
    addr = {}
    for body, state in ((a_body, a), (b_body, b)):
        for k, res in zip(body, state["resources"], strict=True):
            addr[k] = instance_address(res, res["instances"][0])
    assert set(result.added) == {addr[k] for k in b_body.keys() - a_body.keys()}
    assert set(result.removed) == {addr[k] for k in a_body.keys() - b_body.keys()}
    expected = {}
    for k in a_body.keys() & b_body.keys():
        paths = oracle(a_body[k], b_body[k])
        if paths:
            expected[addr[k]] = sorted(paths)
    assert {k: list(v) for k, v in result.changed.items()} == expected


@settings(deadline=None)  # timing varies with the load of a shared CI box
@given(st.data())
def test_one_leaf_mutation_reports_that_path(data: st.DataObject) -> None:
    body = data.draw(st.dictionaries(addresses, attributes, min_size=1, max_size=3))
    key = data.draw(st.sampled_from(sorted(body, key=repr)))
    leaves = list(flatten(body[key]))
    old = make_state(body)
    new_body = copy.deepcopy(body)
    path, leaf = data.draw(st.sampled_from(leaves))
    if not path:  # attributes == {}: nothing to mutate
        return
    replacement = "mutated"  # a scalar the strategies never generate
    node = new_body[key]
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = replacement
    result = diff_states(old, make_state(new_body))
    module, mode, rtype, name, index_key = key
    res = {"module": module, "mode": mode, "type": rtype, "name": name}
    address = instance_address(res, {"index_key": index_key})
    expected = [format_path(path)]
    assert {k: list(v) for k, v in result.changed.items()} == {address: expected}
    assert not result.added and not result.removed


MARK = "ZZSECRETZZ"
secret_values = st.recursive(
    st.text(alphabet="abc", max_size=3).map(lambda s: MARK + s),
    lambda inner: (
        st.lists(inner, min_size=1, max_size=2)
        | st.dictionaries(
            st.text(alphabet="xy", max_size=2).map(lambda s: MARK + s),
            inner,
            min_size=1,
            max_size=2,
        )
    ),
    max_leaves=5,
)


@settings(deadline=None)  # timing varies with the load of a shared CI box
@given(secret_values, secret_values, attributes, attributes)
def test_sensitive_values_never_appear(
    old_secret: Any, new_secret: Any, old_attrs: dict[str, Any], new_attrs: dict[str, Any]
) -> None:
    def state(secret: Any, attrs: dict[str, Any]) -> dict[str, Any]:
        s = make_state({("module.app", "managed", "lab_secret_file", "app", None): attrs})
        inst = s["resources"][0]["instances"][0]
        inst["attributes"] = {**attrs, "credentials": secret}
        inst["sensitive_attributes"] = [[{"type": "get_attr", "value": "credentials"}]]
        return s

    result = diff_states(state(old_secret, old_attrs), state(new_secret, new_attrs))
    rendered = json.dumps(result.to_json())
    assert MARK not in rendered
    paths = result.changed.get("module.app.lab_secret_file.app", ())
    assert [p for p in paths if p.startswith("credentials")] == (
        ["credentials"] if json.dumps(old_secret) != json.dumps(new_secret) else []
    )


def test_lab_drift_paths() -> None:
    old = lab_state(serial=4)
    new = lab_state(serial=5)
    app = instance(new, "lab_config_file", "app")
    app["attributes"]["values"]["max_connections"] = "500"
    app["attributes"]["content"] = app["attributes"]["content"].replace("100", "500")
    new["resources"] = [r for r in new["resources"] if r["type"] != "lab_delay"]
    new["resources"].append({**new["resources"][0], "name": "extra"})
    result = diff_states(old, new).to_json()
    assert {k: result[k] for k in ("added", "removed", "changed")} == {
        "added": ["module.app.lab_config_file.extra"],
        "removed": ["module.app.lab_delay.rollout"],
        "changed": {"module.app.lab_config_file.app": ["content", "values.max_connections"]},
    }


def test_addresses_and_paths_render_like_terraform() -> None:
    res = {"module": "module.a.module.b", "mode": "data", "type": "t", "name": "n"}
    assert instance_address(res, {"index_key": "k"}) == 'module.a.module.b.data.t.n["k"]'
    assert instance_address({"mode": "managed", "type": "t", "name": "n"}, {"index_key": 2}) == (
        "t.n[2]"
    )
    assert format_path(("values", "max_connections")) == "values.max_connections"
    assert format_path(("tags", 0, "a.b")) == 'tags[0]["a.b"]'
    assert format_path(("0",)) == '["0"]'
