"""How the previous release (schema 2, before compression) stored a version, kept here
verbatim in substance so migration tests can write that format without its code:
one ds_versions row per version, the body AES-256-GCM of the plaintext with the
workspace as associated data, the sha256 of the plaintext beside it.

test_recode.py also checks this helper against the real previous release, run from
git history, when the history is there."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time

import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from driftsafe.store.database import normalize_url

# The commit of the last release that stored whole encrypted versions.
PREVIOUS_RELEASE = "779c8bc"

_versions = sa.table(
    "ds_versions",
    *(
        sa.column(name)
        for name in (
            "workspace",
            "serial",
            "lineage",
            "sha256",
            "size",
            "resources",
            "created_at",
            "writer_token",
            "writer_who",
            "lock_id",
            "findings",
            "restored_from",
            "key_id",
            "nonce",
        )
    ),
    sa.column("body", sa.LargeBinary),
)
_workspaces = sa.table("ds_workspaces", sa.column("name"), sa.column("created_at"))


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"driftsafe-key-id:" + key).hexdigest()[:16]


def write_legacy_versions(url: str, key_text: str, workspace: str, bodies: list[bytes]) -> None:
    """Append ``bodies`` as versions of ``workspace`` the way schema 2 stored them
    (serial and lineage taken from each body, as the old write path did)."""
    key = base64.b64decode(key_text)
    pool = sa.create_engine(normalize_url(url))
    try:
        with pool.begin() as conn:
            exists = conn.execute(
                sa.select(sa.text("1"))
                .select_from(_workspaces)
                .where(sa.column("name") == workspace)
            ).first()
            if exists is None:
                conn.execute(_workspaces.insert().values(name=workspace, created_at=time.time()))
            for body in bodies:
                state = json.loads(body)
                nonce = os.urandom(12)
                conn.execute(
                    _versions.insert().values(
                        workspace=workspace,
                        serial=state["serial"],
                        lineage=state["lineage"],
                        sha256=hashlib.sha256(body).hexdigest(),
                        size=len(body),
                        resources=len(state.get("resources", [])),
                        created_at=time.time(),
                        writer_token="legacy",
                        writer_who=None,
                        lock_id=None,
                        findings="[]",
                        restored_from=None,
                        key_id=key_id(key),
                        nonce=nonce,
                        body=AESGCM(key).encrypt(nonce, body, workspace.encode()),
                    )
                )
    finally:
        pool.dispose()
