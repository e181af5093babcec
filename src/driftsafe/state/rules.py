"""Which state writes a server may accept, given the latest stored version.

Terraform bumps ``serial`` on every change and keeps ``lineage`` for the life of a
state; a write that breaks either is a stale or foreign writer about to lose data.
"""

from __future__ import annotations

from dataclasses import dataclass

from driftsafe.errors import Conflict
from driftsafe.state.model import TfState


@dataclass(frozen=True)
class VersionMeta:
    """What the rules need to know about the latest stored version."""

    serial: int
    lineage: str


def check_write(latest: VersionMeta | None, new: TfState, *, admin: bool) -> None:
    """Raise Conflict unless ``new`` may follow ``latest`` (None: the workspace is empty).

    Same lineage: the serial must go up. Another lineage replaces the whole history's
    owner, so only an admin may write it (e.g. a deliberate ``state push`` of a
    rebuilt state).
    """
    if latest is None:
        return
    if new.lineage == latest.lineage:
        if new.serial <= latest.serial:
            raise Conflict(
                f"stale write: serial {new.serial} is not above the latest serial "
                f"{latest.serial} (lineage {latest.lineage}); refresh and re-plan",
                detail={"serial": new.serial, "latest_serial": latest.serial},
            )
        return
    if not admin:
        raise Conflict(
            f"lineage mismatch: the state has lineage {new.lineage} but the workspace "
            f"holds lineage {latest.lineage}; only an admin token may replace it",
            detail={"lineage": new.lineage, "latest_lineage": latest.lineage},
        )
