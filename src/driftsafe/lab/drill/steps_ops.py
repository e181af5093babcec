"""Drill steps about operating the stack: the scheduled drift job with its alert, and
the closing reflection computed from the run's own audit log."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from driftsafe.lab.drill.context import Drill
from driftsafe.lab.drill.steps_drift import set_conf_value


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append({"path": self.path, "body": body.decode()})  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        return


def step_scheduled(d: Drill) -> None:
    s = "scheduled"
    d.ev.step(s, "Scheduled drift detection with an alert")
    ci, t_ci = d.ds(s, ["ci", "init", "stack"], "driftsafe ci init", cwd=d.root)
    wf_dir = d.stack / ".github" / "workflows"
    texts = (
        {p.name: p.read_text() for p in sorted(wf_dir.glob("*.y*ml"))} if wf_dir.is_dir() else {}
    )
    arts = [d.ev.artifact(s, f".github/workflows/{n}", t, kind="text") for n, t in texts.items()]
    allt = "\n".join(texts.values())
    d.ev.check(
        "ci-workflows",
        s,
        "The generated workflows have a concurrency group, `-lock-timeout` and a schedule",
        ci.returncode == 0
        and "concurrency" in allt
        and "terraform-" in allt
        and "-lock-timeout" in allt
        and "schedule" in allt
        and "cron" in allt,
        evidence=[t_ci, *arts],
    )
    # Someone changes prod by hand overnight.
    prod_conf = d.runtime("prod") / "app.conf"
    old = set_conf_value(prod_conf, "port", "9999")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hooks/drift"
        job, t_job = d.ds(
            s,
            ["drift", "check", "stack/envs/staging", "stack/envs/prod", "--notify", url],
            "the cron job: driftsafe drift check --notify",
            cwd=d.root,
            extra_env={"CI": "true", "GITHUB_EVENT_NAME": "schedule"},
        )
    finally:
        server.shutdown()
        server.server_close()
    received = list(server.received)  # type: ignore[attr-defined]
    payload = received[0]["body"] if received else ""
    t_hook = d.ev.capture(
        s,
        "What the webhook receiver got",
        argv=["POST", "/hooks/drift"],
        cwd=url,
        returncode=200 if received else 0,
        stdout=_pretty(payload) or "(nothing received)\n",
        started_at=time.time(),
        ended_at=time.time(),
    )
    d.ev.check(
        "scheduled-alert",
        s,
        "The scheduled check exits 2 and its alert, naming prod's "
        "drift, reaches the webhook before anyone applies",
        job.returncode == 2 and len(received) >= 1 and "prod" in payload and '"text"' in payload,
        evidence=[t_job, t_hook],
    )
    set_conf_value(prod_conf, "port", old)


def _pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2) + "\n"
    except ValueError:
        return text


def step_reflection(d: Drill) -> None:
    s = "reflection"
    d.ev.step(s, "Reflection")
    audit = d.api(s, "GET", "/api/v1/audit?limit=5000", "The whole audit log")
    events: list[dict[str, Any]] = (audit.body or {}).get("events", [])

    def count(action: str, outcome: str) -> int:
        return sum(1 for e in events if e.get("action") == action and e.get("outcome") == outcome)

    writes = count("write", "ok")
    rejected = count("write", "rejected")
    contended = sum(
        1 for e in events if e.get("action") == "lock" and e.get("outcome") not in ("ok", None)
    )
    forced = count("force-unlock", "ok")
    h = d.figures.get("handover", {})
    wait_ms = h.get("server_wait")
    d_versions = d.figures.get("versions", "?")
    d_old = d.figures.get("hotfix", {}).get("old", "?")
    d.ev.narrative(
        s,
        (
            f"In this run the state server accepted {writes} writes, each kept as its "
            f"own version ({d_versions} for staging alone), turned away {contended} lock "
            f"requests while another run held the lock, broke {forced} locks by hand "
            f"after checking their holders, and fenced {rejected} write(s) from a holder "
            f"that had lost its lock. The state file was the source of truth for every "
            f"plan — it is how Terraform knew that max_connections had been {d_old} — "
            f"and at the same time the hazard: a blind apply would have trusted it over "
            f"reality and reverted a live hotfix, a crashed run left it locked, and a "
            f"paused run would have overwritten a newer version had the server not "
            f"checked its lock. Versions, named locks, fencing and a drift report read "
            f"before applying turn each of those hazards into a visible, "
            f"recoverable event"
            + (
                f"; the server-side wait handed the lock over in {wait_ms * 1000:.0f} ms."
                if wait_ms
                else "."
            )
        ),
    )
    d.ev.check(
        "reflection",
        s,
        "The reflection is computed from this run's own audit log",
        audit.status == 200 and writes > 0,
        evidence=[audit.transcript],
    )
