"""What the drill's context and its backend strategies share: the step error and the
record of one captured API (or S3) call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driftsafe.errors import DriftsafeError
from driftsafe.lab.evidence import Transcript


class DrillError(DriftsafeError):
    """A drill step could not go on (its evidence is kept and the report says where)."""

    code = "drill_error"


@dataclass
class ApiCall:
    status: int
    body: Any
    transcript: Transcript
