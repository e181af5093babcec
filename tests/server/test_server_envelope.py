"""OpenTofu's client-side encrypted state through the backend protocol: accepted as an
opaque state, versioned by the server, locked and fenced; served back byte for byte.

The envelopes are built as OpenTofu builds them (``pbkdf2`` key provider, ``aes_gcm``
method): a key derived with PBKDF2 from a passphrase, AES-GCM with the nonce in front
of the ciphertext, base64 in ``encrypted_data``, the key provider's metadata in
``meta``, Go's compact JSON."""

from __future__ import annotations

import base64
import json
import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from srvhelpers import AppSrv
from test_server_api import Backend, md5, state

from driftsafe.server.backend import SCAN_INLINE_BYTES
from driftsafe.store.models import ENCRYPTED_NOT_SCANNED, RULES_SKIPPED

PASSPHRASE = b"correct horse battery staple, twice over"
PROVIDER = "key_provider.pbkdf2.main"
# Fewer rounds than OpenTofu's default (600000) keep the test quick; the format is the same.
ITERATIONS = 20_000


def _key(salt: bytes, iterations: int = ITERATIONS) -> bytes:
    kdf = PBKDF2HMAC(algorithm=hashes.SHA512(), length=32, salt=salt, iterations=iterations)
    return kdf.derive(PASSPHRASE)


def envelope(plain: bytes) -> bytes:
    """``plain`` encrypted as OpenTofu's state encryption writes it."""
    salt = os.urandom(32)
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(_key(salt)).encrypt(nonce, plain, None)
    meta = {
        PROVIDER: {
            "salt": base64.b64encode(salt).decode(),
            "iterations": ITERATIONS,
            "hash_function": "sha512",
            "key_length": 32,
        }
    }
    doc = {
        "meta": meta,
        "encrypted_data": base64.b64encode(sealed).decode(),
        "encryption_version": "v0",
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decrypt(body: bytes) -> bytes:
    doc = json.loads(body)
    meta = doc["meta"][PROVIDER]
    data = base64.b64decode(doc["encrypted_data"])
    key = _key(base64.b64decode(meta["salt"]), meta["iterations"])
    return AESGCM(key).decrypt(data[:12], data[12:], None)


@pytest.mark.anyio
async def test_envelopes_are_versioned_locked_and_come_back_identical(app_srv: AppSrv) -> None:
    be = Backend(app_srv, app_srv.writer, "tofu/enc")
    first, second = envelope(state(7)), envelope(state(8))
    assert (await be.lock("L1")).status_code == 200
    wrote = await be.post(first, "L1", **{"Content-MD5": md5(first)})
    assert wrote.status_code == 200, wrote.text
    assert wrote.json() == {"serial": 1, "created": True}
    got = await be.get()
    assert got.content == first
    assert decrypt(got.content) == state(7)
    # A retry of the same bytes is no new version; new bytes are the server's next number.
    assert (await be.post(first, "L1")).json() == {"serial": 1, "created": False}
    assert (await be.post(second, "L1")).json() == {"serial": 2, "created": True}
    assert (await be.get()).content == second
    assert (await be.unlock("L1")).status_code == 200

    api = app_srv.client(app_srv.reader)
    listed = (await api.get("/api/v1/workspaces/tofu/enc/versions")).json()["versions"]
    assert [v["serial"] for v in listed] == [2, 1]
    for v in listed:
        assert v["format"] == "opentofu-encrypted-v0"
        assert v["scan"] == ENCRYPTED_NOT_SCANNED == "encrypted by the client: not scanned"
        assert v["rules"] == RULES_SKIPPED and "skipped" in v["rules"]
        assert v["lineage"] == "" and v["resources"] == 0 and v["findings"] == []
    one = (await api.get("/api/v1/workspaces/tofu/enc/versions/1")).json()
    assert one["state"] == json.loads(first)
    record, body = app_srv.store.get_version("tofu/enc", 1)
    assert body == first and record.encrypted_by_client == "opentofu-encrypted-v0"
    # The server cannot diff what it cannot read, and says so.
    diff = await api.get("/api/v1/workspaces/tofu/enc/diff", params={"from": 1, "to": 2})
    assert diff.status_code == 400
    assert "encrypted by the client" in diff.json()["error"]["message"]
    # A plain state keeps its usual fields.
    plain = Backend(app_srv, app_srv.writer, "tofu/plain")
    assert (await plain.post(state(3))).status_code == 200
    v = (await api.get("/api/v1/workspaces/tofu/plain/versions")).json()["versions"][0]
    assert (v["format"], v["scan"], v["rules"]) == ("tfstate", "done", "serial and lineage checked")


@pytest.mark.anyio
async def test_envelopes_are_fenced_like_any_state(app_srv: AppSrv) -> None:
    be = Backend(app_srv, app_srv.writer, "tofu/fence")
    admin = Backend(app_srv, app_srv.admin, "tofu/fence")
    assert (await be.post(envelope(state(1)), "")).status_code == 200
    assert (await be.lock("OLD")).status_code == 200
    # The holder is broken; a new holder takes the lock and writes.
    assert (await admin.unlock(None)).status_code == 200
    assert (await be.lock("NEW")).status_code == 200
    newer = envelope(state(2))
    assert (await be.post(newer, "NEW")).status_code == 200
    # The old holder's late write is refused (fenced), and so is a write without the ID.
    late = await be.post(envelope(state(3)), "OLD")
    assert late.status_code == 409, late.text
    assert "fenced" in late.json()["error"]["message"]
    assert (await be.post(envelope(state(4)))).status_code == 409
    assert (await be.get()).content == newer
    assert [v.serial for v in app_srv.store.list_versions("tofu/fence")] == [2, 1]
    # Restoring an envelope writes its bytes again under the next number.
    assert (await be.unlock("NEW")).status_code == 200
    api = app_srv.client(app_srv.admin)
    restored = await api.post("/api/v1/workspaces/tofu/fence/restore", json={"serial": 1})
    assert restored.status_code == 201, restored.text
    assert restored.json()["version"]["serial"] == 3
    assert restored.json()["version"]["format"] == "opentofu-encrypted-v0"
    assert (
        app_srv.store.get_version("tofu/fence", 3)[1]
        == app_srv.store.get_version("tofu/fence", 1)[1]
    )


@pytest.mark.anyio
async def test_a_big_envelope_goes_the_lean_way_and_is_not_scanned_later(app_srv: AppSrv) -> None:
    filler = os.urandom(SCAN_INLINE_BYTES // 2).hex()  # the envelope exceeds the inline size
    plain = json.loads(state(1))
    plain["outputs"] = {"blob": {"value": filler, "type": "string"}}
    body = envelope(json.dumps(plain).encode())
    assert len(body) > SCAN_INLINE_BYTES
    be = Backend(app_srv, app_srv.writer, "tofu/big")
    assert (await be.post(body)).json() == {"serial": 1, "created": True}
    assert (await be.get()).content == body
    record = app_srv.store.list_versions("tofu/big")[0]
    assert record.scan == ENCRYPTED_NOT_SCANNED and not record.scan_pending
    assert app_srv.store.pending_scans() == []


@pytest.mark.anyio
async def test_bodies_that_are_neither_a_state_nor_an_envelope_are_refused(
    app_srv: AppSrv,
) -> None:
    be = Backend(app_srv, app_srv.writer, "tofu/bad")
    good = json.loads(envelope(state(1)))
    bad_bodies = {
        "not base64": {**good, "encrypted_data": "%%%not base64%%%"},
        "unknown version": {**good, "encryption_version": "v9"},
        "no data": {k: v for k, v in good.items() if k != "encrypted_data"},
        "meta not an object": {**good, "meta": ["x"]},
        "neither": {"meta": {}, "data": "x"},
    }
    for why, doc in bad_bodies.items():
        for pad in (b"", b" " * SCAN_INLINE_BYTES):  # the tree path and the lean path
            refused = await be.post(json.dumps(doc).encode() + pad)
            assert refused.status_code == 400, (why, refused.text)
    assert app_srv.store.list_versions("tofu/bad") == []
    message = (await be.post(json.dumps(bad_bodies["unknown version"]).encode())).json()
    assert "encryption_version" in message["error"]["message"]
