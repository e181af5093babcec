"""report.md is read as text as often as it is rendered: no HTML entities for quotes,
and still no raw HTML from captured output."""

from __future__ import annotations

import time
from pathlib import Path

from driftsafe.lab.evidence import Evidence
from driftsafe.lab.report import write_report


def test_report_md_has_no_entities_for_quotes(tmp_path: Path) -> None:
    ev = Evidence(tmp_path, title='Drill: Terraform\'s "lock" clash')
    ev.step("s", "The operator's hotfix")
    now = time.time()
    t = ev.capture(
        "s",
        "lock entry of 'apply A'",
        argv=["echo"],
        cwd="/",
        returncode=0,
        stdout='it\'s <b>held</b> & "named"\n',
        started_at=now,
        ended_at=now + 0.1,
    )
    ev.check(
        "c",
        "s",
        'The holder\'s ID is shown, not "failed to unmarshal" <script>',
        True,
        evidence=[t],
        detail="computed from the holder's LockInfo",
    )
    md = write_report(ev).report_md.read_text()
    assert "&#x27;" not in md and "&quot;" not in md
    assert '# Drill: Terraform\'s "lock" clash' in md
    assert "## 1. The operator's hotfix" in md
    assert 'The holder\'s ID is shown, not "failed to unmarshal" &lt;script&gt;' in md
    assert "computed from the holder's LockInfo" in md
    assert "<script>" not in md and "<b>" not in md.split("```text")[0]
