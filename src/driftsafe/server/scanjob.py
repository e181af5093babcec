"""The secret scan of a large state, run in a worker process: the scan is pure
Python and slow on big states; in the server process it would hold the GIL
(stalling every lock request) and add its memory to the server's. The worker reads
the version from the store itself, so the server never holds or ships the body."""

from __future__ import annotations

import json

from driftsafe.state import scan_state
from driftsafe.store import Cipher, SqlStore


def scan_version(url: str, key: bytes, workspace: str, serial: int) -> int:
    """Scan one stored version and record its findings; returns how many."""
    store = SqlStore(url, Cipher(key))
    try:
        _, body = store.get_version(workspace, serial)
        data = json.loads(body)
        del body
        findings = [finding.to_json() for finding in scan_state(data)]
        store.set_findings(workspace, serial, findings)
        return len(findings)
    finally:
        store.close()
