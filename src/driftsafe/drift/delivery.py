"""Deliver drift reports: webhook, GitHub issue and pull request, server history.

:func:`run_check` is what ``driftsafe drift check`` does as one library call: check
the roots, deliver every alert, and work out the exit code. A failed delivery is a
failed :class:`Delivery` (exit 1); it never hides or replaces the report itself.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftsafe.drift.check import check_roots, utcnow
from driftsafe.drift.ignore import IgnoreRules
from driftsafe.drift.model import RootReport, overall_exit_code, report_json
from driftsafe.drift.notify import Delivery, GitHub, post_history, send_webhook, sync_issue
from driftsafe.drift.pr import open_codify_pr
from driftsafe.drift.render import render_drift_markdown
from driftsafe.engine import Engine

EXIT_ERROR = 1


@dataclass(frozen=True)
class DeliveryTargets:
    """Where a check's reports go. Every field is optional; none means print only."""

    webhook: str | None = None
    github_issue: str | None = None  # OWNER/REPO
    github_pr: str | None = None  # OWNER/REPO
    git_remote: str = "origin"
    github_api: str = "https://api.github.com"
    github_token: str | None = None
    server: str | None = None  # a driftsafe server that keeps the history
    server_token: str | None = None

    @classmethod
    def with_github_token_from_env(cls, **kwargs: Any) -> DeliveryTargets:
        return cls(github_token=os.environ.get("GITHUB_TOKEN"), **kwargs)

    def _github_repos(self) -> set[str]:
        return {repo for repo in (self.github_issue, self.github_pr) if repo}

    def open_github(self) -> dict[str, GitHub]:
        """One client per repository; raises ConfigError on a bad repo or missing token."""
        clients: dict[str, GitHub] = {}
        try:
            for repo in self._github_repos():
                clients[repo] = GitHub(self.github_api, self.github_token, repo)
        except BaseException:
            for client in clients.values():
                client.close()
            raise
        return clients

    def validate(self) -> None:
        """Fail on a missing GitHub token before spending minutes on plans."""
        for client in self.open_github().values():
            client.close()


def deliver(
    reports: list[RootReport], targets: DeliveryTargets, *, generated_at: str
) -> list[Delivery]:
    """Send every report where ``targets`` says; one :class:`Delivery` per attempt."""
    deliveries: list[Delivery] = []
    if targets.webhook:
        deliveries.append(send_webhook(targets.webhook, reports, generated_at=generated_at))
    github = targets.open_github()
    try:
        for report in reports:
            if targets.github_issue:
                gh = github[targets.github_issue]
                deliveries.append(sync_issue(gh, report, generated_at=generated_at))
            if targets.github_pr:
                gh = github[targets.github_pr]
                deliveries.append(
                    open_codify_pr(gh, report, remote=targets.git_remote, generated_at=generated_at)
                )
            if targets.server and report.status != "error":
                deliveries.append(post_history(targets.server, targets.server_token, report))
    finally:
        for client in github.values():
            client.close()
    return deliveries


@dataclass
class CheckRun:
    """A whole ``drift check``: the reports, what was delivered, and the exit code."""

    reports: list[RootReport]
    generated_at: str
    deliveries: list[Delivery] = field(default_factory=list)
    interrupted: int | None = None  # the signal that stopped the check, if one did

    @property
    def undelivered(self) -> list[Delivery]:
        return [d for d in self.deliveries if not d.ok]

    @property
    def exit_code(self) -> int:
        """0 clean, 2 drift, 1 error, and 1 when any alert could not be delivered;
        128+N when signal N stopped the check (as a shell reports it)."""
        if self.interrupted is not None:
            return 128 + self.interrupted
        return EXIT_ERROR if self.undelivered else overall_exit_code(self.reports)

    def to_json(self) -> dict[str, Any]:
        data = report_json(self.reports, generated_at=self.generated_at)
        data["deliveries"] = [d.to_json() for d in self.deliveries]
        data["exit_code"] = self.exit_code
        if self.interrupted is not None:
            data["interrupted"] = signal.Signals(self.interrupted).name
        return data


def run_check(
    roots: Sequence[str | Path],
    *,
    engine: Engine,
    targets: DeliveryTargets,
    ignore: IgnoreRules | None = None,
    lock_timeout: str = "5s",
    init: bool | None = None,
    jobs: int | None = None,
    markdown_file: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    refresh_only_evidence: bool = False,
) -> CheckRun:
    """Check ``roots``, deliver the alerts, write the Markdown report if asked.

    Stopped by a signal, it delivers nothing (an interrupted check is no verdict to
    alert on) but still returns and writes what it found.
    """
    targets.validate()
    reports = check_roots(
        list(roots),
        engine=engine,
        ignore=ignore,
        lock_timeout=lock_timeout,
        init=init,
        jobs=jobs,
        progress=progress,
        refresh_only_evidence=refresh_only_evidence,
    )
    run = CheckRun(reports, utcnow(), interrupted=engine.processes.interrupted)
    if run.interrupted is None:
        run.deliveries = deliver(reports, targets, generated_at=run.generated_at)
    if markdown_file is not None:
        Path(markdown_file).write_text(
            render_drift_markdown(reports, generated_at=run.generated_at), encoding="utf-8"
        )
    return run
