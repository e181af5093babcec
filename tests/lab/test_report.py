"""The evidence model and its renderers, fed with real Terraform runs."""

from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from driftsafe.engine import Engine, RunResult
from driftsafe.lab.evidence import Evidence, load_transcript, strip_ansi
from driftsafe.lab.markdown import markdown_to_html
from driftsafe.lab.report import write_report
from driftsafe.lab.timeline import Span, timeline_svg

SECRET = "pl4nted-S3cret-value-9f2c"
MAIN_TF = """
variable "token" {
  type = string
}

resource "terraform_data" "app" {
  input = "v1"
}

output "token_echo" {
  value = var.token
}
"""


@pytest.fixture(scope="module")
def tf_runs(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunResult]:
    """A real init and a real coloured apply whose stdout and argv carry the secret."""
    work = tmp_path_factory.mktemp("tf")
    (work / "main.tf").write_text(MAIN_TF)
    init = engine.run(["init"], cwd=work, timeout=120)
    assert init.returncode == 0, init.stderr
    # Colour left on on purpose: the report must strip the escapes.
    apply = engine.run(["apply", "-auto-approve", "-var", f"token={SECRET}"], cwd=work, timeout=120)
    assert apply.returncode == 0, apply.stderr
    return {"init": init, "apply": apply}


def _build(out: Path, runs: dict[str, RunResult], *, fail: bool) -> Evidence:
    ev = Evidence(out, title="Drill under test", total_steps=2)
    ev.step("apply", "Clean apply")
    ev.narrative("apply", "The stack is applied with `terraform apply`; see **below**.")
    t_init = ev.record("apply", runs["init"], title="terraform init")
    t_apply = ev.record("apply", runs["apply"], title="terraform apply", redact=[SECRET])
    ok = "Apply complete!" in strip_ansi(t_apply.stdout)
    ev.check("apply-ok", "apply", "Apply completes", ok, evidence=[t_init, t_apply])
    ev.step("lock", "Lock clash")
    now = time.time()
    t_lock = ev.capture(
        "lock",
        "lock entry",
        argv=["GET", "/api/v1/workspaces/lab/staging/lock"],
        cwd=str(out),
        returncode=0,
        stdout='{"who": "<script>alert(1)</script>"}',
        stderr="Error acquiring the state lock\n",
        started_at=now,
        ended_at=now + 0.02,
    )
    fig = ev.artifact(
        "lock",
        "timeline",
        timeline_svg([Span("apply A", now, now + 2, "held", "A")], title="locks"),
        kind="svg",
    )
    ev.check(
        "clash",
        "lock",
        "The loser's stderr holds `Error acquiring the state lock`",
        not fail and "Error acquiring the state lock" in t_lock.stderr,
        evidence=[t_lock, fig, "lock"],
        detail="computed from the captured stderr",
    )
    return ev


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.checklist_hrefs: list[str] = []
        self._in_checklist = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(a["id"] or "")
        if tag == "section":
            self._in_checklist = a.get("id") == "checklist"
        if tag == "a" and (a.get("href") or "").startswith("#"):
            self.hrefs.append((a["href"] or "")[1:])
            if self._in_checklist:
                self.checklist_hrefs.append((a["href"] or "")[1:])


def test_failed_check_shows_cross_and_fails_the_run(
    tf_runs: dict[str, RunResult], tmp_path: Path
) -> None:
    ev = _build(tmp_path, tf_runs, fail=True)
    paths = write_report(ev)
    assert ev.all_passed is False
    html = paths.index_html.read_text()
    row = re.search(r'<tr class="fail">.*?</tr>', html, re.S)
    assert row and "✗" in row.group(0) and "Error acquiring the state lock" in row.group(0)
    assert re.search(r'<tr class="pass">.*?Apply completes', html, re.S)
    assert "1 of 2 criteria passed" in html
    doc = json.loads(paths.checklist_json.read_text())
    assert (doc["all_passed"], doc["passed"], doc["total"]) == (False, 1, 2)
    assert [c["passed"] for c in doc["checks"]] == [True, False]
    assert "| ✗ | 2 |" in paths.report_md.read_text()


def test_all_passed_only_when_every_criterion_passed(
    tf_runs: dict[str, RunResult], tmp_path: Path
) -> None:
    ev = _build(tmp_path / "ok", tf_runs, fail=False)
    assert ev.all_passed
    write_report(ev)
    assert "2 of 2 criteria passed" in (tmp_path / "ok" / "index.html").read_text()
    # An expected criterion the run never reached counts as failed.
    ev2 = _build(tmp_path / "cut", tf_runs, fail=False)
    ev2.expect("versions", "lock", "One version per write")
    assert not ev2.all_passed
    doc = json.loads(write_report(ev2).checklist_json.read_text())
    assert doc["checks"][-1]["id"] == "versions" and doc["checks"][-1]["reached"] is False
    assert not Evidence(tmp_path / "empty", title="nothing").all_passed


def test_redaction_removes_planted_secret_from_every_file(
    tf_runs: dict[str, RunResult], tmp_path: Path
) -> None:
    # The raw run really carries the secret, so this test can fail.
    assert SECRET in tf_runs["apply"].stdout and SECRET in " ".join(tf_runs["apply"].argv)
    ev = _build(tmp_path, tf_runs, fail=False)
    # Recorded before the value is declared secret: the report must still scrub it.
    ev.narrative("lock", f"the token was {SECRET}")
    ev.artifact("lock", "config", f"token = {SECRET}", kind="hcl")
    ev.redact("")  # an empty value must not blank out the report
    paths = write_report(ev)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 8
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    apply_json = next(paths.transcripts_dir.glob("*terraform-apply.json"))
    data = json.loads(apply_json.read_text())
    assert "token=<redacted>" in data["argv"]
    assert "<redacted>" in data["stdout"] and "Apply complete!" in strip_ansi(data["stdout"])


def test_checklist_links_resolve_to_evidence_anchors(
    tf_runs: dict[str, RunResult], tmp_path: Path
) -> None:
    ev = _build(tmp_path, tf_runs, fail=True)
    parser = _Anchors()
    parser.feed(write_report(ev).index_html.read_text())
    assert len(parser.ids) == len(set(parser.ids)), "duplicate ids"
    assert len(parser.checklist_hrefs) == 2 + 2 + 3  # 2 criteria + their evidence chips
    missing = [h for h in parser.hrefs if h not in parser.ids]
    assert not missing
    for check in ev.checklist():
        assert check.anchor in parser.ids
        assert all(ref in parser.ids for ref in check.evidence)
    md = (tmp_path / "report.md").read_text()
    md_ids = set(re.findall(r'<a id="([^"]+)"></a>', md))
    md_links = re.findall(r"\]\(#([^)]+)\)", md)
    assert md_links and all(link in md_ids for link in md_links)


def test_html_escapes_captured_output(tf_runs: dict[str, RunResult], tmp_path: Path) -> None:
    ev = _build(tmp_path, tf_runs, fail=False)
    now = time.time()
    ev.capture(
        "lock",
        "<b>title</b>",
        argv=["cat", "<img src=x onerror=alert(1)>"],
        cwd="/tmp/<dir>",
        returncode=1,
        stdout="<script>alert('x')</script>\n",
        started_at=now,
        ended_at=now,
        env={"A": "<i>"},
    )
    ev.capture(
        "lock",
        "force-unlock of a fresh lock",
        argv=["DELETE", "/api/v1/workspaces/lab/staging/lock?if_stale=true"],
        cwd="/",
        returncode=409,
        stdout='{"error": {"code": "conflict"}}',
        started_at=now,
        ended_at=now,
    )
    bad_svg = '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(2)</script></svg>'
    ev.artifact("lock", "hostile figure", bad_svg, kind="svg")
    ev.narrative("lock", "<script>alert(3)</script> [x](javascript:alert(4))")
    html = write_report(ev).index_html.read_text()
    assert "<script" not in html.lower()
    assert "<img" not in html and "<b>title" not in html and "<i>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert 'href="javascript:' not in html
    # Self-contained: nothing to fetch, links only to anchors and the raw files beside it.
    assert not re.search(r"<link|<[^>]+\ssrc=|@import|url\(", html)
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(re.match(r"#|transcripts/|checklist\.json$", h) for h in hrefs)
    assert "\x1b" not in html, "ANSI escapes must be stripped"
    assert '<span class="badge err">HTTP 409</span>' in html
    assert "$ DELETE /api/v1/workspaces/lab/staging/lock?if_stale=true</pre>" in html
    assert '<span class="badge err">exit 1</span>' in html


def test_transcripts_round_trip(tf_runs: dict[str, RunResult], tmp_path: Path) -> None:
    ev = _build(tmp_path, tf_runs, fail=False)
    paths = write_report(ev)
    recorded = {t.file_stem: t for t in ev.transcripts}
    files = sorted(paths.transcripts_dir.glob("*.json"))
    assert [f.stem for f in files] == sorted(recorded)
    assert files[0].name == "001-apply-terraform-init.json"
    for path in files:
        back = load_transcript(path)
        assert back == recorded[path.stem]
        assert back.to_json() == json.loads(path.read_text())
        txt = path.with_suffix(".txt").read_text()
        assert back.command_line in txt and f"exit:     {back.returncode}" in txt
    init = load_transcript(files[0])
    run = tf_runs["init"]
    assert (init.argv, init.cwd, init.returncode) == (run.argv, run.cwd, run.returncode)
    assert (init.started_at, init.ended_at) == (run.started_at, run.ended_at)
    assert init.stdout == run.stdout
    assert init.env == run.env and "TF_CLI_CONFIG_FILE" in init.env


def test_long_output_is_collapsible_and_rerun_starts_clean(tmp_path: Path) -> None:
    ev = Evidence(tmp_path, title="long")
    ev.step("s", "Step")
    now = time.time()
    body = "".join(f"line {n}\n" for n in range(200))
    ev.capture(
        "s",
        "listing",
        argv=["ls"],
        cwd="/",
        returncode=0,
        stdout=body,
        started_at=now,
        ended_at=now + 1,
    )
    write_report(ev)
    html = (tmp_path / "index.html").read_text()
    assert "<details><summary>stdout: 200 lines" in html and "line 199" in html
    stale = sorted((tmp_path / "transcripts").iterdir())
    ev2 = Evidence(tmp_path, title="second run")
    ev2.step("t", "Other")
    write_report(ev2)
    assert not any(p.exists() for p in stale)


def test_progress_and_api_misuse(tmp_path: Path) -> None:
    lines: list[str] = []
    ev = Evidence(tmp_path, title="p", progress=lines.append, total_steps=13)
    ev.step("backend", "Backend evidence")
    ev.step("lock-clash", "Lock clash")
    ev.check("c", "lock-clash", "it worked", False, evidence=["lock-clash"])
    assert lines == ["[1/13] Backend evidence", "[2/13] Lock clash", "    ✗ it worked"]
    with pytest.raises(ValueError, match="unknown step"):
        ev.narrative("nope", "x")
    with pytest.raises(ValueError, match="no evidence"):
        ev.check("d", "backend", "x", True, evidence=["t-999"])
    with pytest.raises(ValueError, match="twice"):
        ev.check("c", "backend", "x", True, evidence=[])
    with pytest.raises(ValueError, match="already started"):
        ev.step("backend", "again")


def test_markdown_subset() -> None:
    html = markdown_to_html(
        "# Head\n\nSome `a<b>` and **bold** and [link](#t-001).\n\n"
        "- one\n- two\n\n| a | b |\n|---|---|\n| `x` | 1 |\n\n```\n<raw>\n```"
    )
    assert "<h3>Head</h3>" in html
    assert "<code>a&lt;b&gt;</code>" in html and "<strong>bold</strong>" in html
    assert '<a href="#t-001">link</a>' in html
    assert "<ul><li>one</li><li>two</li></ul>" in html
    assert "<th>a</th>" in html and "<td><code>x</code></td>" in html
    assert "<pre>&lt;raw&gt;</pre>" in html


def test_abort_marks_the_run_failed_and_links_stay_valid(tmp_path: Path) -> None:
    ev = Evidence(tmp_path, title="aborted")
    ev.step("one", "One")
    ev.check("a", "one", "first", True, evidence=["one"])
    ev.expect("b", "two", "second, in a step never started")
    assert not ev.all_passed
    ev.abort(f"EngineError: terraform crashed (token {SECRET})")
    ev.redact(SECRET)
    paths = write_report(ev)
    html = paths.index_html.read_text()
    assert "The drill stopped early" in html and SECRET not in html
    doc = json.loads(paths.checklist_json.read_text())
    assert doc["all_passed"] is False and doc["aborted"].startswith("EngineError")
    parser = _Anchors()
    parser.feed(html)
    assert all(h in parser.ids for h in parser.hrefs)
    md = paths.report_md.read_text()
    md_ids = set(re.findall(r'<a id="([^"]+)"></a>', md))
    assert all(link in md_ids for link in re.findall(r"\]\(#([^)]+)\)", md))


def test_a_backend_limitation_is_a_third_state(tmp_path: Path) -> None:
    """Reproduced: neither a pass nor a failure; not reproduced: a failure."""
    ev = Evidence(tmp_path / "report", title="Limits", total_steps=1)
    ev.step("fence", "Fencing")
    now = time.time()
    t = ev.capture(
        "fence",
        "late write",
        argv=["x"],
        cwd="/",
        returncode=0,
        stdout="replaced\n",
        started_at=now,
        ended_at=now,
    )
    ev.check("plain", "fence", "A plain check", True, evidence=[t])
    ev.limitation(
        "fenced", "fence", "The stale writer is fenced", True, evidence=[t], detail="lost"
    )
    ev.preface.append("| guarantee | S3 |\n| --- | --- |\n| fencing | ⚠ |")
    assert ev.all_passed  # nothing failed
    assert ev.summary_line == "1/2 criteria passed, 1 backend limitation(s) reproduced"
    paths = write_report(ev)
    doc = json.loads(paths.checklist_json.read_text())
    assert [c["status"] for c in doc["checks"]] == ["passed", "limitation"]
    assert (doc["passed"], doc["limitations"], doc["failed"]) == (1, 1, 0)
    md = paths.report_md.read_text()
    assert md.index("| fencing | ⚠ |") < md.index("## Acceptance checklist")
    assert "backend limitation, reproduced: lost" in md
    html = paths.index_html.read_text()
    assert 'class="limit"' in html and "1 backend limitation, reproduced" in html
    ev2 = Evidence(tmp_path / "r2", title="Limits", total_steps=1)
    ev2.step("fence", "Fencing")
    t2 = ev2.capture(
        "fence",
        "late write",
        argv=["x"],
        cwd="/",
        returncode=0,
        stdout="\n",
        started_at=now,
        ended_at=now,
    )
    check = ev2.limitation("fenced", "fence", "Fenced", False, evidence=[t2])
    assert check.status == "failed" and not ev2.all_passed
