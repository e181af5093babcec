"""Alerts: a webhook (Slack-compatible), one GitHub issue per drifted root, and history.

A failed delivery is returned as a failed :class:`Delivery` (the CLI reports it and
exits 1); it never replaces or hides the drift report itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

from driftsafe.drift.model import RootReport, report_json
from driftsafe.drift.render import render_drift_markdown, slack_text
from driftsafe.errors import ConfigError, NotifyError

TIMEOUT = 15.0
ISSUE_LABEL = "drift"
_FP = re.compile(r"driftsafe:fp=([0-9a-f]{16})")


@dataclass
class Delivery:
    channel: str  # "webhook" | "github-issue" | "github-pr" | "history"
    target: str
    ok: bool
    message: str
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "target": self.target,
            "ok": self.ok,
            "message": self.message,
            "url": self.url,
        }


def describe_http_error(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        body = exc.response.text[:300].strip()
        return f"HTTP {exc.response.status_code} from {exc.request.url}: {body}"
    return f"{type(exc).__name__}: {exc}"


def send_webhook(url: str, reports: list[RootReport], *, generated_at: str) -> Delivery:
    """POST ``{"text": ..., "report": {...}}``: Slack shows ``text``, scripts read ``report``."""
    payload = {
        "text": slack_text(reports),
        "report": report_json(reports, generated_at=generated_at),
    }
    try:
        response = httpx.post(url, json=payload, timeout=TIMEOUT)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        reason = describe_http_error(exc)
        return Delivery("webhook", url, False, f"webhook delivery failed: {reason}")
    return Delivery("webhook", url, True, f"posted to webhook (HTTP {response.status_code})")


class GitHub:
    """The few GitHub REST calls driftsafe needs; ``api`` may be a GitHub Enterprise base."""

    def __init__(self, api: str, token: str | None, repo: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo):
            raise ConfigError(f"GitHub repository {repo!r} must look like OWNER/REPO")
        if not token:
            raise ConfigError("GITHUB_TOKEN is not set: GitHub alerts need a token")
        self.repo = repo
        self.client = httpx.Client(
            base_url=api.rstrip("/"),
            timeout=TIMEOUT,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "driftsafe",
            },
        )

    def close(self) -> None:
        self.client.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.request(method, f"/repos/{self.repo}{path}", **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def paged(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in range(1, 11):  # 1000 items is far beyond one repo's drift issues
            batch = self.call("GET", path, params={**params, "per_page": 100, "page": page})
            items += batch
            if len(batch) < 100:
                break
        return items


def root_marker(report: RootReport) -> str:
    return f"<!-- driftsafe:root={report.name} -->"


def _finding_lines(report: RootReport, only: set[str] | None = None) -> str:
    lines = []
    for f in report.findings:
        if only is None or f.fingerprint in only:
            lines.append(f"- `{f.target}`: {f.message} <!-- driftsafe:fp={f.fingerprint} -->")
    return "\n".join(lines)


def sync_issue(gh: GitHub, report: RootReport, *, generated_at: str) -> Delivery:
    """Open, comment on (only new fingerprints) or close the root's drift issue."""
    target = f"{gh.repo} ({report.name})"
    if report.status == "error":
        return Delivery("github-issue", target, True, "no verdict (check failed): issue untouched")
    marker = root_marker(report)
    try:
        open_issues = gh.paged("/issues", {"state": "open", "labels": ISSUE_LABEL})
        existing = next(
            (i for i in open_issues if "pull_request" not in i and marker in (i.get("body") or "")),
            None,
        )
        if report.status == "clean":
            if existing is None:
                return Delivery("github-issue", target, True, "no drift and no open issue")
            number = existing["number"]
            gh.call(
                "POST",
                f"/issues/{number}/comments",
                json={
                    "body": f"Drift cleared: `driftsafe drift check` found no drift in "
                    f"`{report.name}` at {generated_at}. Closing."
                },
            )
            gh.call(
                "PATCH", f"/issues/{number}", json={"state": "closed", "state_reason": "completed"}
            )
            return Delivery(
                "github-issue",
                target,
                True,
                f"closed issue #{number} (drift cleared)",
                existing.get("html_url"),
            )
        if existing is None:
            body = (
                f"{marker}\n{render_drift_markdown([report], generated_at=generated_at)}\n\n"
                f"Findings:\n{_finding_lines(report)}\n"
            )
            created = gh.call(
                "POST",
                "/issues",
                json={
                    "title": f"Drift in {report.name}: {len(report.findings)} finding(s)",
                    "body": body,
                    "labels": [ISSUE_LABEL],
                },
            )
            return Delivery(
                "github-issue",
                target,
                True,
                f"opened issue #{created['number']}",
                created.get("html_url"),
            )
        number = existing["number"]
        seen = set(_FP.findall(existing.get("body") or ""))
        for comment in gh.paged(f"/issues/{number}/comments", {}):
            seen |= set(_FP.findall(comment.get("body") or ""))
        new = {f.fingerprint for f in report.findings} - seen
        if not new:
            return Delivery(
                "github-issue",
                target,
                True,
                f"issue #{number} already lists this drift: not alerted again",
                existing.get("html_url"),
            )
        gh.call(
            "POST",
            f"/issues/{number}/comments",
            json={
                "body": f"New drift in `{report.name}` at {generated_at}:\n"
                f"{_finding_lines(report, new)}\n"
            },
        )
        return Delivery(
            "github-issue",
            target,
            True,
            f"commented on issue #{number} ({len(new)} new finding(s))",
            existing.get("html_url"),
        )
    except httpx.HTTPError as exc:
        return Delivery(
            "github-issue", target, False, f"GitHub issue update failed: {describe_http_error(exc)}"
        )


def post_history(server: str, token: str | None, report: RootReport) -> Delivery:
    """Store the report on a driftsafe server under the root's workspace."""
    ws = report.workspace or report.name
    url = f"{server.rstrip('/')}/api/v1/workspaces/{ws}/drift"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.post(url, json=report.to_json(), headers=headers, timeout=TIMEOUT)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        reason = describe_http_error(exc)
        return Delivery("history", url, False, f"storing the report failed: {reason}")
    return Delivery("history", url, True, f"stored as report {response.json().get('id')}")


def list_history(
    server: str, token: str | None, workspace: str, limit: int = 50
) -> list[dict[str, Any]]:
    """The stored reports of ``workspace``, newest first."""
    url = f"{server.rstrip('/')}/api/v1/workspaces/{workspace}/drift"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(url, headers=headers, params={"limit": limit}, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise NotifyError(f"cannot reach {server}: {describe_http_error(exc)}") from None
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise NotifyError(f"{url}: HTTP {response.status_code}: {message}")
    reports: list[dict[str, Any]] = response.json().get("reports", [])
    return reports
