"""``--github-pr``: push a branch whose commit codifies the drift, and open a PR.

The edits are made in a temporary ``git worktree`` of HEAD, so the user's checkout
(and any uncommitted work in it) is never touched. The branch name carries the
root's drift fingerprint: the same drift finds its open PR instead of a second one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx

from driftsafe.drift.codify import Edit, apply_edits, parse_target, plan_codify
from driftsafe.drift.model import RootReport
from driftsafe.drift.notify import Delivery, GitHub, describe_http_error
from driftsafe.drift.render import render_drift_markdown
from driftsafe.errors import ConfigError, NotifyError


def _git(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if proc.returncode != 0:
        raise NotifyError(f"git {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout.strip()


def branch_name(report: RootReport) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", report.name).strip("-") or "root"
    return f"driftsafe/drift-{slug}-{report.fingerprint[:10]}"


def _identity(cwd: Path) -> dict[str, str]:
    """A committer for machines (CI) that have none configured; a configured one wins."""
    proc = subprocess.run(["git", "config", "user.email"], cwd=cwd, capture_output=True, text=True)
    if proc.stdout.strip() or "GIT_AUTHOR_EMAIL" in os.environ:
        return {}
    return {
        "GIT_AUTHOR_NAME": "driftsafe",
        "GIT_AUTHOR_EMAIL": "driftsafe@users.noreply.local",
        "GIT_COMMITTER_NAME": "driftsafe",
        "GIT_COMMITTER_EMAIL": "driftsafe@users.noreply.local",
    }


def open_codify_pr(
    gh: GitHub,
    report: RootReport,
    *,
    remote: str = "origin",
    base: str | None = None,
    generated_at: str = "",
) -> Delivery:
    target = f"{gh.repo} ({report.name})"
    if report.status != "drift":
        return Delivery("github-pr", target, True, f"{report.status}: no pull request needed")
    root = Path(report.root).resolve()
    worktree: Path | None = None
    top = Path(".")
    try:
        top = Path(_git(["rev-parse", "--show-toplevel"], root))
        base = base or _git(["rev-parse", "--abbrev-ref", "HEAD"], top)
        branch = branch_name(report)
        owner = gh.repo.split("/", 1)[0]
        existing = gh.call("GET", "/pulls", params={"state": "open", "head": f"{owner}:{branch}"})
        if existing:
            return Delivery(
                "github-pr",
                target,
                True,
                f"pull request #{existing[0]['number']} already proposes this codify",
                existing[0].get("html_url"),
            )
        worktree = Path(tempfile.mkdtemp(prefix="driftsafe-pr-")) / "wt"
        _git(["worktree", "add", "-B", branch, str(worktree), "HEAD"], top)
        wt_root = worktree / root.relative_to(top)
        edits: list[Edit] = []
        manual: list[str] = []
        for f in report.findings:
            if f.kind != "changed" or f.sensitive or f.apply not in ("revert", "replace"):
                continue
            try:
                edits.append(plan_codify(wt_root, parse_target(f.target), f.reality))
            except ConfigError as exc:
                manual.append(f"- `{f.target}`: {exc.message}")
        if not edits:
            return Delivery(
                "github-pr",
                target,
                False,
                "nothing in this drift can be codified automatically: " + "; ".join(manual),
            )
        _, diff = apply_edits(edits, base=worktree)
        _git(["add", "-A"], worktree)
        message = f"Codify drift in {report.name}\n\n" + "\n".join(
            f"{e.what}: {e.old} -> {e.new}" for e in edits
        )
        _git(["commit", "-q", "-m", message], worktree, _identity(worktree))
        _git(["push", "-q", "--force", remote, f"{branch}:{branch}"], worktree)
        body = (
            f"driftsafe found drift in `{report.name}` and this change keeps reality by "
            "writing it into the configuration. Merge it to accept the manual change; "
            "close it to have the next apply revert it.\n\n"
            f"```diff\n{diff}```\n\n{render_drift_markdown([report], generated_at=generated_at)}"
        )
        if manual:
            body += "\n\nNot codified (edit by hand):\n" + "\n".join(manual)
        created = gh.call(
            "POST",
            "/pulls",
            json={
                "title": f"Codify drift in {report.name}",
                "head": branch,
                "base": base,
                "body": body,
            },
        )
        return Delivery(
            "github-pr",
            target,
            True,
            f"opened pull request #{created['number']} from {branch}",
            created.get("html_url"),
        )
    except (NotifyError, httpx.HTTPError) as exc:
        why = exc.message if isinstance(exc, NotifyError) else describe_http_error(exc)
        return Delivery("github-pr", target, False, f"pull request failed: {why}")
    finally:
        if worktree is not None:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(worktree)],
                cwd=top,
                capture_output=True,
            )
            shutil.rmtree(worktree.parent, ignore_errors=True)
