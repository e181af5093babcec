from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from labstate import lab_state

from driftsafe.errors import BadRequest, Conflict
from driftsafe.state.model import TfState, parse_state
from driftsafe.state.rules import VersionMeta, check_write


def _state(serial: int, lineage: str) -> TfState:
    return TfState(
        version=4,
        terraform_version="1.15.5",
        serial=serial,
        lineage=lineage,
        resource_count=0,
        raw={},
    )


def test_parse_lab_state() -> None:
    raw = lab_state(serial=7)
    state = parse_state(json.dumps(raw).encode())
    assert state.serial == 7
    assert state.lineage == raw["lineage"]
    assert state.terraform_version == "1.15.5"
    assert state.version == 4
    assert state.resource_count == 6
    assert state.raw == raw


def test_resource_count_counts_instances() -> None:
    raw = lab_state()
    raw["resources"][0]["instances"].append(dict(raw["resources"][0]["instances"][0], index_key=1))
    raw["resources"].append({"mode": "data", "type": "x", "name": "y", "instances": []})
    assert parse_state(json.dumps(raw).encode()).resource_count == 7


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"", "empty body"),
        (b"   \n", "empty body"),
        (b"{not json", "invalid JSON"),
        (b"\xff\xfe", "invalid JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"serial": 1, "lineage": "a"}', "'version'"),
        (b'{"version": 3, "serial": 1, "lineage": "a"}', "format version 3"),
        (b'{"version": 4, "lineage": "a"}', "'serial'"),
        (b'{"version": 4, "serial": true, "lineage": "a"}', "'serial'"),
        (b'{"version": 4, "serial": "1", "lineage": "a"}', "'serial'"),
        (b'{"version": 4, "serial": -1, "lineage": "a"}', "negative serial"),
        (b'{"version": 4, "serial": 1}', "'lineage'"),
        (b'{"version": 4, "serial": 1, "lineage": ""}', "'lineage'"),
        (b'{"version": 4, "serial": 1, "lineage": "a", "resources": {}}', "'resources'"),
        (b'{"version": 4, "serial": 1, "lineage": "a", "resources": [1]}', "resources[0]"),
        (b'{"version": 4, "serial": 1, "lineage": "a", "outputs": []}', "'outputs'"),
        (
            b'{"version": 4, "serial": 1, "lineage": "a", "terraform_version": 1}',
            "terraform_version",
        ),
    ],
)
@pytest.mark.parametrize("keep_tree", [True, False])
def test_parse_rejects(body: bytes, needle: str, keep_tree: bool) -> None:
    with pytest.raises(BadRequest) as info:
        parse_state(body, keep_tree=keep_tree)
    assert needle in info.value.message
    assert info.value.http_status == 400


def test_parse_without_tree_finds_the_same_facts() -> None:
    # Keys the checks read also appear nested (an attribute named "resources" or
    # "version", a duplicate top-level key): only the top level may count.
    raw = {
        "version": 4,
        "terraform_version": "1.15.5",
        "serial": 3,
        "lineage": "lin",
        "outputs": {"o": {"value": {"serial": "x"}, "type": "string"}},
        "resources": [
            {
                "mode": "managed",
                "type": "t",
                "name": f"r{i}",
                "instances": [
                    {"attributes": {"resources": [1, 2], "version": "9", "instances": []}}
                ]
                * (i + 1),
            }
            for i in range(3)
        ],
    }
    body = json.dumps(raw).encode()
    body = body[:-1] + b', "serial": 5}'  # a duplicate key: the last one wins
    full = parse_state(body)
    lean = parse_state(body, keep_tree=False)
    assert lean.raw == {}
    assert (
        (lean.version, lean.serial, lean.lineage, lean.resource_count)
        == (
            full.version,
            full.serial,
            full.lineage,
            full.resource_count,
        )
        == (4, 5, "lin", 6)
    )
    assert lean.terraform_version == full.terraform_version == "1.15.5"


serials = st.integers(min_value=0, max_value=2**40)
lineages = st.sampled_from(["lin-a", "lin-b", "5b0f3a52-9d7e-2c41-8a60-1f2e3d4c5b6a"])


@settings(deadline=None)  # timing varies with the load of a shared CI box
@given(serial=serials, lineage=lineages, admin=st.booleans())
def test_empty_workspace_accepts_anything(serial: int, lineage: str, admin: bool) -> None:
    check_write(None, _state(serial, lineage), admin=admin)


@settings(deadline=None)  # timing varies with the load of a shared CI box
@given(latest=serials, new=serials, old_lin=lineages, new_lin=lineages, admin=st.booleans())
def test_write_rules(latest: int, new: int, old_lin: str, new_lin: str, admin: bool) -> None:
    meta = VersionMeta(serial=latest, lineage=old_lin)
    expect_conflict = (old_lin == new_lin and new <= latest) or (old_lin != new_lin and not admin)
    if not expect_conflict:
        check_write(meta, _state(new, new_lin), admin=admin)
        return
    with pytest.raises(Conflict) as info:
        check_write(meta, _state(new, new_lin), admin=admin)
    message = info.value.message
    assert info.value.http_status == 409
    if old_lin == new_lin:
        assert f"serial {new} " in message and f"serial {latest} " in message
    else:
        assert old_lin in message and new_lin in message


@settings(deadline=None)  # timing varies with the load of a shared CI box
@given(ops=st.lists(st.tuples(st.integers(-3, 3), st.booleans(), st.booleans()), max_size=40))
def test_accepted_sequence_strictly_increases(ops: list[tuple[int, bool, bool]]) -> None:
    """Replaying random writes through the rules: within one lineage the accepted
    serials strictly increase, and a lineage only changes through an admin."""
    latest: VersionMeta | None = None
    accepted: list[tuple[int, str, bool]] = []
    for step, other_lineage, admin in ops:
        lineage = "other" if other_lineage else "main"
        serial = max(step + (latest.serial if latest else 0), 0)
        try:
            check_write(latest, _state(serial, lineage), admin=admin)
        except Conflict:
            continue
        accepted.append((serial, lineage, admin))
        latest = VersionMeta(serial, lineage)
    for (s1, l1, _), (s2, l2, admin2) in zip(accepted, accepted[1:], strict=False):
        if l1 == l2:
            assert s2 > s1
        else:
            assert admin2


def test_parse_body_tells_an_opentofu_envelope_from_a_state() -> None:
    import base64

    from driftsafe.state import EncryptedState, parse_body

    doc = {
        "meta": {"key_provider.pbkdf2.main": {"salt": "c2FsdA==", "iterations": 600000}},
        "encrypted_data": base64.b64encode(b"\x00" * 40).decode(),
        "encryption_version": "v0",
    }
    body = json.dumps(doc).encode()
    for keep_tree in (True, False):
        found = parse_body(body, keep_tree=keep_tree)
        assert found == EncryptedState("v0", ("key_provider.pbkdf2.main",), 40)
        assert found.format == "opentofu-encrypted-v0"
        # parse_state still wants a plain state, and says what it got instead.
        with pytest.raises(BadRequest, match="encrypted state envelope"):
            parse_state(body, keep_tree=keep_tree)
