"""Fixtures for drift tests: a recording stand-in for GitHub and Slack (the only fake)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeSaaS:
    """A local HTTP receiver that records every request and answers like GitHub's
    REST API (issues, comments, pulls) and like a Slack webhook (``/hook``).
    ``/broken-hook`` always answers 500."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    pulls: list[dict[str, Any]] = field(default_factory=list)
    next_number: int = 1

    def calls(self, method: str, prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        if path == "/hook":
            return 200, {"ok": True}
        if path == "/broken-hook":
            return 500, {"error": "down"}
        parts = path.strip("/").split("/")
        if len(parts) < 4 or parts[0] != "repos":
            return 404, {"message": "Not Found"}
        rest = parts[3:]
        if rest == ["issues"] and method == "GET":
            labels = query.get("labels", [""])[0]
            state = query.get("state", ["open"])[0]
            page = int(query.get("page", ["1"])[0])
            found = [
                i
                for i in self.issues.values()
                if i["state"] == state and (not labels or labels in i["labels"])
            ]
            return 200, found if page == 1 else []
        if rest == ["issues"] and method == "POST":
            number = self._number()
            issue = {
                "number": number,
                "state": "open",
                "title": body["title"],
                "body": body["body"],
                "labels": body.get("labels", []),
                "html_url": f"{self.url}/issues/{number}",
            }
            self.issues[number] = issue
            self.comments[number] = []
            return 201, issue
        if len(rest) == 2 and rest[0] == "issues" and method == "PATCH":
            issue = self.issues[int(rest[1])]
            issue.update(body)
            return 200, issue
        if len(rest) == 3 and rest[2] == "comments":
            number = int(rest[1])
            if method == "POST":
                comment = {"id": len(self.comments[number]) + 1, "body": body["body"]}
                self.comments[number].append(comment)
                return 201, comment
            return 200, self.comments.get(number, []) if query.get("page", ["1"])[0] == "1" else []
        if rest == ["pulls"] and method == "GET":
            head = query.get("head", [""])[0]
            owner = parts[1]
            return 200, [
                p for p in self.pulls if p["state"] == "open" and f"{owner}:{p['head']}" == head
            ]
        if rest == ["pulls"] and method == "POST":
            number = self._number()
            pull = {
                "number": number,
                "state": "open",
                **body,
                "html_url": f"{self.url}/pull/{number}",
            }
            self.pulls.append(pull)
            return 201, pull
        return 404, {"message": "Not Found"}

    def _number(self) -> int:
        number = self.next_number
        self.next_number += 1
        return number


@pytest.fixture
def saas() -> Iterator[FakeSaaS]:
    fake = FakeSaaS()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            query = parse_qs(split.query)
            fake.requests.append(
                Recorded(self.command, split.path, query, dict(self.headers.items()), body)
            )
            status, answer = fake.handle(self.command, split.path, query, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean; every request is recorded instead

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
