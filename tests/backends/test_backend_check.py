"""``driftsafe backend check`` against real backends started by the suite: the
measured matrix, asserted as measured (docs/backends.md publishes it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from driftsafe.backends import CHECK_IDS, CheckReport, read_backend, run_backend_check
from driftsafe.backends.s3 import S3Backend
from driftsafe.engine import Engine

T, F, N = True, False, None
_DRIFTSAFE = dict.fromkeys(CHECK_IDS, T)
_S3 = {**_DRIFTSAFE, "stale-writer-fenced": F, "older-serial-refused": F}
# What each backend was measured to guarantee, check by check (ids in CHECK_IDS order).
EXPECTED: dict[str, dict[str, bool | None]] = {
    "driftsafe-sqlite": _DRIFTSAFE,
    "driftsafe-pg": _DRIFTSAFE,
    "s3-lockfile": _S3,
    "s3-dynamodb": _S3,
    "tf-pg": {
        "lock-excludes": T,
        # pg's lock error echoes the refused run's own LockInfo: no holder is recorded.
        "lock-names-holder": F,
        "lock-timeout-waits": T,
        # The advisory lock ends with the killed holder's connection.
        "stale-lock-visible": F,
        # force-unlock "succeeds" and releases nothing.
        "force-unlock-works": F,
        # Broken by ending the holder's session, the resumed holder reconnects and writes.
        "stale-writer-fenced": F,
        "versions-kept": F,
        "older-serial-refused": F,
        "encrypted-at-rest": N,
        "secret-free": T,
    },
    "local": {
        "lock-excludes": T,
        "lock-names-holder": T,
        "lock-timeout-waits": T,
        "stale-lock-visible": F,
        "force-unlock-works": F,
        # The paused holder's lock cannot be broken by another process: no second writer.
        "stale-writer-fenced": N,
        "versions-kept": F,
        "older-serial-refused": F,
        "encrypted-at-rest": N,
        "secret-free": T,
    },
}


def _left_behind(kind: str, root: Path, report: CheckReport) -> list[str]:
    """What the scratch workspace left on the backend (nothing, after cleanup)."""
    if kind.startswith("s3-"):
        s3 = S3Backend(read_backend(root))
        listed = s3.s3().list_object_versions(Bucket=s3.bucket, Prefix=f"env:/{report.scratch}/")
        return [v["Key"] for v in listed.get("Versions", []) + listed.get("DeleteMarkers", [])]
    return []


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind",
    [
        "s3-lockfile",
        "s3-dynamodb",
        "driftsafe-sqlite",
        pytest.param("driftsafe-pg", marks=pytest.mark.pg),
        pytest.param("tf-pg", marks=pytest.mark.pg),
        "local",
    ],
)
def test_backend_check_matrix(
    kind: str,
    make_root: Callable[[str], Path],
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = make_root(kind)
    before = sorted(p.name for p in root.iterdir())
    users_data = tmp_path / "users-data-dir"
    if kind == "s3-dynamodb":
        # The caller's own Terraform settings must not reach the scratch runs: not the
        # selected workspace, not the data directory, not extra flags.
        monkeypatch.setenv("TF_WORKSPACE", "prod")
        monkeypatch.setenv("TF_CLI_ARGS_apply", "-lock=false")
        monkeypatch.setenv("TF_DATA_DIR", str(users_data))
    stray = ""
    if kind == "s3-lockfile":
        # A lock the backend left behind in the scratch workspace (as a conditional
        # write retried after it had succeeded would): noted, cleared, run retried.
        import driftsafe.backends.check as check_module

        stray = "0a0a0a0a-stray-lock"
        monkeypatch.setattr(check_module.secrets, "token_hex", lambda n: "5ca1ab1e")
        s3 = S3Backend(read_backend(root))
        info = {"ID": stray, "Operation": "OperationTypeApply", "Who": "nobody@nowhere"}
        s3.s3().put_object(
            Bucket=s3.bucket,
            Key="env:/driftsafe-check-5ca1ab1e/team/app.tfstate.tflock",
            Body=json.dumps({**info, "Created": "2026-01-01T00:00:00Z"}).encode(),
        )
    report = run_backend_check(root, engine=engine, allow_local=True)
    if stray:
        assert len(report.notes) == 1 and stray in report.notes[0], report.notes
        assert "was refused by lock" in report.notes[0]
    else:
        assert report.notes == []
    (tmp_path / "report.json").write_text(json.dumps(report.to_json(), indent=1))
    assert [c.id for c in report.checks] == list(CHECK_IDS)
    details = {c.id: c.detail for c in report.checks}
    assert report.matrix == EXPECTED[kind], details
    assert report.exit_code == (2 if False in EXPECTED[kind].values() else 0)
    # The evidence is the captured output: the refusal names a holder.
    refusal = report.get("lock-excludes")
    assert refusal is not None
    assert "Error acquiring the state lock" in refusal.evidence[1].output
    assert "Who:" in refusal.evidence[1].output
    # The root itself was never touched, and the scratch workspace is gone.
    assert sorted(p.name for p in root.iterdir()) == before
    name = report.scratch.rsplit("/", 1)[-1]  # http: the scratch address
    assert name.startswith("driftsafe-check-")
    assert not any(Path("/tmp").glob(f"{name}-*"))
    assert _left_behind(kind, root, report) == []
    assert not users_data.exists()
    if kind.startswith("s3-"):
        s3 = S3Backend(read_backend(root))
        assert s3.s3().list_objects_v2(Bucket=s3.bucket).get("KeyCount") == 0
    assert any("removed the scratch root" in line for line in report.cleanup)
    if kind.startswith("driftsafe-"):
        assert any("with its" in line and "version(s)" in line for line in report.cleanup), (
            report.cleanup
        )


def test_the_published_matrix_is_the_asserted_one() -> None:
    """docs/backends.md publishes EXPECTED: the two must not drift apart."""
    doc = (Path(__file__).parents[2] / "docs" / "backends.md").read_text()
    table = doc.split("<!-- matrix:start -->")[1].split("<!-- matrix:end -->")[0]
    rows = [r.strip().strip("|").split("|") for r in table.strip().splitlines()[2:]]
    columns = ["driftsafe-sqlite", "driftsafe-pg", "s3-lockfile", "s3-dynamodb", "tf-pg", "local"]
    cell = {"✓": True, "✗": False, "n/a": None}
    published = {kind: {} for kind in columns}
    for row in rows:
        check_id = row[0].strip().strip("`")
        for kind, value in zip(columns, row[1:], strict=True):
            published[kind][check_id] = cell[value.strip()]
    assert published == EXPECTED
