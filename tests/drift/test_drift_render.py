"""One manual edit is one finding, however many computed attributes follow it; the
table stays readable with long values; headers and progress lines say things once."""

from __future__ import annotations

import json
from pathlib import Path

from driftsafe.drift import render_drift_markdown, render_drift_table
from driftsafe.drift.check import check_roots
from driftsafe.drift.classify import classify
from driftsafe.drift.model import RootReport
from driftsafe.engine import Engine

ADDRESS = "module.app.lab_config_file.app"
# A long file, as a real config file would be: its whole text is the computed content.
FILLER = "".join(f"# setting {i} kept as it was\n" for i in range(60))


def _content(max_connections: str, port: str = "8081") -> str:
    return f"env = staging\nmax_connections = {max_connections}\nport = {port}\n{FILLER}"


def _values(max_connections: str, port: str = "8081") -> dict[str, str]:
    return {"env": "staging", "max_connections": max_connections, "port": port}


def _plans(state: tuple[str, str], reality: tuple[str, str]) -> tuple[dict, dict]:
    """The plans Terraform gives for a lab_config_file edited by hand (same shapes)."""
    path = "/srv/app.conf"
    before = {"path": path, "values": _values(*state), "content": _content(*state)}
    after = {"path": path, "values": _values(*reality), "content": _content(*reality)}
    drift = {
        "address": ADDRESS,
        "mode": "managed",
        "type": "lab_config_file",
        "change": {
            "actions": ["update"],
            "before": before,
            "after": after,
            "before_sensitive": {},
            "after_sensitive": {},
        },
    }
    change = {
        "address": ADDRESS,
        "mode": "managed",
        "type": "lab_config_file",
        "change": {
            "actions": ["update"],
            "before": after,
            "after": before,
            "after_unknown": {},
            "after_sensitive": {},
        },
    }
    configuration = {
        "root_module": {
            "module_calls": {
                "app": {
                    "module": {
                        "resources": [
                            {
                                "address": "lab_config_file.app",
                                "expressions": {"path": {}, "values": {}},
                            }
                        ]
                    }
                }
            }
        }
    }
    plan = {"resource_drift": [drift], "resource_changes": [change], "configuration": configuration}
    return plan, plan


def _report(state: tuple[str, str], reality: tuple[str, str]) -> RootReport:
    refresh, normal = _plans(state, reality)
    findings, ignored, planned = classify(refresh, normal, root="envs/staging")
    return RootReport(
        root="envs/staging",
        name="envs/staging",
        status="drift" if findings else "clean",
        findings=findings,
        ignored=ignored,
        planned_changes=planned,
    )


def test_one_edit_is_one_manual_change() -> None:
    report = _report(("50", "8081"), ("200", "8081"))
    (finding,) = report.findings
    assert finding.path == "values.max_connections" and finding.configured
    (content,) = finding.computed
    assert content.path == "content" and not content.configured
    assert content.explained_by == [f"{ADDRESS}.values.max_connections"]
    table = render_drift_table([report])
    assert "would silently undo 1 manual change(s)" in table
    assert "DRIFT: 1 manual change(s) on 1 resource(s)" in table
    # The JSON keeps the whole file; the table cuts it.
    data = report.to_json()
    assert data["findings"][0]["computed"][0]["reality"] == _content("200")
    assert data["findings"][0]["computed"][0]["explained_by"] == [content.explained_by[0]]
    assert max(len(line) for line in table.splitlines()) < 200
    assert "setting 59" not in table
    md = render_drift_markdown([report], generated_at="now")
    assert max(len(line) for line in md.splitlines()) < 400
    assert "↳ `content`" in md


def test_two_edits_in_one_file_are_two_changes_and_the_content_folds_once() -> None:
    report = _report(("50", "8081"), ("200", "9090"))
    assert [f.path for f in report.findings] == ["values.max_connections", "values.port"]
    assert [c.path for c in report.findings[0].computed] == ["content"]
    assert report.findings[1].computed == []
    assert report.findings[0].computed[0].explained_by == [
        f"{ADDRESS}.values.max_connections",
        f"{ADDRESS}.values.port",
    ]
    assert "would silently undo 2 manual change(s)" in render_drift_table([report])


def test_a_computed_change_alone_stays_a_finding() -> None:
    refresh, normal = _plans(("50", "8081"), ("50", "8081"))
    refresh["resource_drift"][0]["change"]["after"]["content"] += "# a comment added by hand\n"
    findings, _, _ = classify(refresh, normal, root="envs/staging")
    assert [(f.path, f.configured, f.computed) for f in findings] == [("content", False, [])]


def test_header_and_progress_say_things_once(engine: Engine, tmp_path: Path) -> None:
    report = _report(("50", "8081"), ("200", "8081"))
    table = render_drift_table([report])
    assert table.startswith("== envs/staging: DRIFT")
    assert "(envs/staging)" not in table
    other = RootReport(root="/abs/envs/prod", name="envs/prod", status="clean")
    assert "== envs/prod (/abs/envs/prod): no drift" in render_drift_table([other])

    lines: list[str] = []
    missing = tmp_path / "nope"
    (failed,) = check_roots([missing], engine=engine, progress=lines.append)
    assert failed.status == "error"
    assert lines[-1].startswith(f"[1/1] {missing}: ERROR after ")
    assert lines[-1].endswith("s: no such directory"), lines
    assert lines[-1].count(str(missing)) == 1
    assert json.dumps(failed.to_json()["error"]["message"]).count("no such directory") == 1
    shown = render_drift_table([failed])
    assert f"== {failed.name} ({missing}): ERROR\n   no such directory" in shown
