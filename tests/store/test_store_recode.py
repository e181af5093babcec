"""Migration 6: stores written by the previous release (whole encrypted versions) are
re-encoded in place, batch by batch, resumably, and read back byte for byte."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from io import BytesIO
from pathlib import Path

import pytest
import sqlalchemy as sa
from history import History
from legacy_store import PREVIOUS_RELEASE, write_legacy_versions

from driftsafe.store import SqlStore
from driftsafe.store import schema as schema_mod
from driftsafe.store.crypto import Cipher, decode_key, new_key_text
from driftsafe.store.database import normalize_url
from driftsafe.store.recode import recode_progress, recode_versions

REPO = Path(__file__).resolve().parents[2]


def legacy_store(url: str, key: str, workspaces: dict[str, int]) -> dict[tuple[str, int], bytes]:
    """A schema-2 store holding ``workspaces`` (name -> version count) in the old format."""
    old = SqlStore(url, Cipher(decode_key(key, "t")))
    try:
        assert old.initialize(target=2) == [1, 2]
    finally:
        old.close()
    written = {}
    for i, (ws, count) in enumerate(workspaces.items()):
        history = History(resources=40, seed=i)
        bodies = [history.next() for _ in range(count)]
        write_legacy_versions(url, key, ws, bodies)
        for n, data in enumerate(bodies, start=1):
            written[(ws, n)] = data
    return written


# What a schema 2 store (the previous release) gets on open: every later migration.
AFTER_2 = [n for n, _ in schema_mod.MIGRATIONS if n > 2]


def codec_counts(store: SqlStore) -> dict[str, int]:
    with store.pool.connect() as conn:
        rows = conn.execute(sa.text("SELECT codec, COUNT(*) FROM ds_versions GROUP BY codec"))
        return {kind: int(n) for kind, n in rows}


def test_old_store_migrates_in_place_and_reads_back_byte_for_byte(store_url: str) -> None:
    key = new_key_text()
    written = legacy_store(store_url, key, {"a": 30, "team/b": 12})
    store = SqlStore(store_url, Cipher(decode_key(key, "t")))
    try:
        assert store.initialize() == AFTER_2
        assert store.schema_version() == schema_mod.LATEST
        assert recode_progress(store).finished
        assert set(codec_counts(store)) == {"keyframe", "delta"}
        for (ws, serial), data in written.items():
            assert store.get_version(ws, serial)[1] == data
        assert [v.serial for v in store.list_versions("team/b")] == list(range(12, 0, -1))
    finally:
        store.close()


def test_interrupted_reencoding_resumes_on_next_open(store_url: str) -> None:
    key = new_key_text()
    written = legacy_store(store_url, key, {"a": 25, "b": 25})
    cipher = Cipher(decode_key(key, "t"))
    store = SqlStore(store_url, cipher)
    try:
        # Schema 6 only (its DDL), then two batches of 7: the rest is left for later.
        store.initialize(target=2)
        assert store.schema_version() == 2
        with store.write_tx() as conn:
            assert schema_mod.migrate(conn, now=time.time()) == AFTER_2
        seen = []
        part = recode_versions(store, batch_rows=7, max_batches=2, on_batch=seen.append)
        assert not part.finished and part.done == 14 and part.remaining == 36
        assert [p.done for p in seen] == [7, 14]
        assert codec_counts(store)["raw"] == 36
        # Mid-way, every version reads back: re-encoded or not.
        for (ws, serial), data in written.items():
            assert store.get_version(ws, serial)[1] == data
    finally:
        store.close()
    again = SqlStore(store_url, cipher)
    try:
        assert again.initialize() == []  # schema already 6: only the re-encoding resumes
        assert recode_progress(again).finished
        assert "raw" not in codec_counts(again)
        for (ws, serial), data in written.items():
            assert again.get_version(ws, serial)[1] == data
    finally:
        again.close()


KILLED_RECODER = textwrap.dedent(
    """
    import sys
    import time
    from driftsafe.store import SqlStore, schema
    from driftsafe.store.crypto import Cipher, decode_key
    from driftsafe.store.recode import recode_versions

    store = SqlStore(sys.argv[1], Cipher(decode_key(sys.argv[2], "t")))
    store.initialize(target=2)
    with store.write_tx() as conn:
        schema.migrate(conn, now=time.time())
    def slowly(progress):
        print(progress.done, flush=True)
        time.sleep(0.2)  # so the kill lands between batches or inside one, never after all

    recode_versions(store, batch_rows=2, on_batch=slowly)
    print("finished", flush=True)
    """
)


@pytest.mark.slow
def test_kill_9_during_reencoding_loses_nothing(store_url: str, tmp_path: Path) -> None:
    key = new_key_text()
    written = legacy_store(store_url, key, {"a": 40, "b": 40})
    script = tmp_path / "recoder.py"
    script.write_text(KILLED_RECODER)
    proc = subprocess.Popen(
        [sys.executable, str(script), store_url, key], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # one batch committed
    assert line.strip().isdigit(), line
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    store = SqlStore(store_url, Cipher(decode_key(key, "t")))
    try:
        assert not recode_progress(store).finished
        assert codec_counts(store)["raw"] > 0
        store.initialize()
        assert "raw" not in codec_counts(store)
        for (ws, serial), data in written.items():
            assert store.get_version(ws, serial)[1] == data
    finally:
        store.close()


PREVIOUS_WRITER = textwrap.dedent(
    """
    import json, sys
    import driftsafe.store
    from driftsafe.state.model import parse_state
    from driftsafe.store import Actor, SqlStore
    from driftsafe.store.crypto import Cipher, decode_key

    assert driftsafe.store.__file__.startswith(sys.argv[3]), driftsafe.store.__file__
    store = SqlStore(sys.argv[1], Cipher(decode_key(sys.argv[2], "t")))
    assert store.initialize() == [1, 2]
    for path in sys.argv[4:]:
        data = open(path, "rb").read()
        store.write_state("prev", data, parse_state(data), Actor("old"), lock_id=None, findings=[])
    store.close()
    """
)


def _previous_release(dest: Path) -> Path | None:
    """The previous release's source from git history, or None when it is not there
    (a shallow clone, an exported tree)."""
    proc = subprocess.run(
        ["git", "-C", str(REPO), "archive", PREVIOUS_RELEASE, "src/driftsafe"],
        capture_output=True,
    )
    if proc.returncode != 0:
        return None
    with tarfile.open(fileobj=BytesIO(proc.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"


def test_store_written_by_previous_release_reads_back(store_url: str, tmp_path: Path) -> None:
    source = _previous_release(tmp_path / "prev")
    if source is None:
        pytest.skip(f"git history without {PREVIOUS_RELEASE} (the previous release)")
    history = History(resources=50)
    paths = []
    for n in range(15):
        path = tmp_path / f"v{n}.json"
        path.write_bytes(history.next())
        paths.append(path)
    key = new_key_text()
    env = {**os.environ, "PYTHONPATH": str(source)}
    script = tmp_path / "prev_writer.py"
    script.write_text(PREVIOUS_WRITER)
    subprocess.run(
        [sys.executable, str(script), store_url, key, str(source), *map(str, paths)],
        env=env,
        check=True,
        cwd=tmp_path,
    )
    # The test helper writes the rows the previous release wrote, byte for byte once
    # decrypted (the nonce, and so the ciphertext, is random).
    write_legacy_versions(store_url, key, "helper", [p.read_bytes() for p in paths])
    columns = "serial, lineage, sha256, size, resources, findings, key_id, length(body)"
    pool = sa.create_engine(normalize_url(store_url))
    try:
        with pool.connect() as conn:
            prev, helper = (
                conn.execute(
                    sa.text(
                        f"SELECT {columns} FROM ds_versions WHERE workspace = :ws ORDER BY serial"
                    ),
                    {"ws": ws},
                ).all()
                for ws in ("prev", "helper")
            )
    finally:
        pool.dispose()
    assert prev == helper and len(prev) == len(paths)
    store = SqlStore(store_url, Cipher(decode_key(key, "t")))
    try:
        assert store.initialize() == AFTER_2
        assert "raw" not in codec_counts(store)
        for ws in ("prev", "helper"):
            for n, path in enumerate(paths, start=1):
                assert store.get_version(ws, n)[1] == path.read_bytes()
    finally:
        store.close()


def test_migrations_fill_gaps_in_the_numbering(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration numbered below one a store already has (another branch's number,
    merged later) still runs, once."""
    store = SqlStore(store_url, Cipher(decode_key(new_key_text(), "t")))
    try:
        assert store.initialize() == [n for n, _ in schema_mod.MIGRATIONS]
        ran: list[int] = []
        gap = next(n for n in range(1, schema_mod.LATEST) if n not in dict(schema_mod.MIGRATIONS))
        with_gap = sorted([*schema_mod.MIGRATIONS, (gap, lambda conn: ran.append(gap))])
        monkeypatch.setattr(schema_mod, "MIGRATIONS", with_gap)
        assert store.initialize() == [gap] and ran == [gap]
        assert store.initialize() == [] and ran == [gap]
        assert store.schema_version() == schema_mod.LATEST
    finally:
        store.close()
