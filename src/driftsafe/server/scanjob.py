"""The secret scan of a large state, run in a worker process: the scan is pure
Python and slow on big states, and in the server process it would hold the GIL
(stalling every lock request) and add its memory to the server's."""

from __future__ import annotations

import json
from typing import Any

from driftsafe.state.secrets import scan_state


def scan_body(body: bytes) -> list[dict[str, Any]]:
    return [finding.to_json() for finding in scan_state(json.loads(body))]
