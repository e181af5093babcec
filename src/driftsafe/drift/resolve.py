"""Resolve drift attribute by attribute: codify (keep reality) or revert (apply config).

The order is chosen so that nothing happens that the user did not name:
1. a fresh drift check (so targets are checked against real findings);
2. codify edits written to the configuration (and kept for rollback);
3. one *targeted* plan over the named resources, saved, shown, and checked: it is
   refused if it would change a resource not named to revert, or revert a drifted
   attribute that was not named (a silent revert);
4. the saved plan applied, so exactly what was checked is what runs;
5. ``apply -refresh-only -target=...`` to take the codified reality into state;
6. a final untargeted ``plan -detailed-exitcode`` that should say ``No changes.``
Every command's RunResult is kept in :class:`Resolution` for the evidence report.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftsafe.drift.check import check_root, explain_failure
from driftsafe.drift.classify import diff_values, short
from driftsafe.drift.codify import Edit, Target, apply_edits, parse_target, plan_codify, restore
from driftsafe.drift.model import SENSITIVE, DriftFinding, RootReport
from driftsafe.engine import Engine, RunResult
from driftsafe.errors import ConfigError, DriftError


@dataclass
class Resolution:
    root: str
    codified: list[str] = field(default_factory=list)
    reverted: list[str] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    diff: str = ""
    plan_output: str = ""  # the targeted plan shown before acting
    final_plan_output: str = ""
    clean_after: bool = False  # the final plan said "No changes."
    report_before: RootReport | None = None
    runs: list[RunResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "codified": self.codified,
            "reverted": self.reverted,
            "edits": [
                {"file": str(e.file), "line": e.line, "what": e.what, "old": e.old, "new": e.new}
                for e in self.edits
            ],
            "diff": self.diff,
            "plan_output": self.plan_output,
            "final_plan_output": self.final_plan_output,
            "clean_after": self.clean_after,
            "runs": [r.to_json() for r in self.runs],
        }


def covers(target: Target, finding: DriftFinding) -> bool:
    """Does ``target`` name ``finding``? A parent path covers everything below it."""
    if finding.address != target.address:
        return False
    if not target.path or target.path == finding.path:
        return True
    return finding.path.startswith((target.path + ".", target.path + "["))


def match_targets(
    texts: Sequence[str], findings: list[DriftFinding], verb: str
) -> tuple[list[Target], list[DriftFinding]]:
    targets, matched = [], []
    for text in texts:
        target = parse_target(text)
        hits = [f for f in findings if covers(target, f)]
        if not hits:
            drifted = ", ".join(f.target for f in findings) or "none"
            raise ConfigError(f"--{verb} {text}: no drift there (drifted now: {drifted})")
        targets.append(target)
        matched += [f for f in hits if f not in matched]
    return targets, matched


def check_plan(
    plan: Mapping[str, Any],
    findings: list[DriftFinding],
    revert: list[Target],
    codify: list[Target],
) -> list[str]:
    """Reasons to refuse: every change the plan would make that was not named."""
    revert_addresses = {t.address for t in revert}
    problems = []
    for rc in plan.get("resource_changes") or []:
        actions = list((rc.get("change") or {}).get("actions") or [])
        address = rc.get("address", "")
        if actions in (["no-op"], ["read"]) or rc.get("mode") == "data":
            continue
        if address not in revert_addresses:
            why = (
                "still differs after codify"
                if any(t.address == address for t in codify)
                else "is not named"
            )
            change = rc.get("change") or {}
            paths = [
                p
                for p, *_ in diff_values(
                    change.get("before"),
                    change.get("after"),
                    change.get("before_sensitive"),
                    change.get("after_sensitive"),
                )
            ]
            problems.append(
                f"plan would {'+'.join(actions)} {address} ({why}"
                + (f": {', '.join(paths[:5])}" if paths else "")
                + ")"
            )
            continue
        for f in findings:
            if f.address != address or f.apply not in ("revert", "replace", "recreate"):
                continue
            if not f.configured:
                continue  # computed from configured attributes, which are checked themselves
            if not any(covers(t, f) for t in revert + codify):
                value = (
                    "" if f.reality == SENSITIVE else f" ({short(f.reality)} -> {short(f.config)})"
                )
                problems.append(f"plan would also revert {f.target}{value}, which is not named")
    return problems


def _refresh_codified(
    run: Callable[..., RunResult],
    tmp: Path,
    targets: list[Target],
    lock_timeout: str,
    say: Callable[[str], None],
) -> None:
    """Take the codified reality into state.

    An untargeted refresh-only plan also refreshes root outputs that read the edited
    variable, but it would accept *every* drift into state. So it is applied (as the
    saved plan that was checked) only when the codified resources are all that drifted;
    otherwise only the codified resources are refreshed, and unnamed drift stays drift.
    """
    named = {t.address for t in targets}
    planfile = tmp / "refresh.tfplan"
    run(
        [
            "plan",
            "-refresh-only",
            "-input=false",
            "-no-color",
            f"-lock-timeout={lock_timeout}",
            f"-out={planfile}",
        ],
        "plan -refresh-only",
    )
    shown = run(["show", "-json", "-no-color", str(planfile)], "show -json")
    drifted = {
        rc.get("address")
        for rc in json.loads(shown.stdout).get("resource_drift") or []
        if rc.get("mode") != "data"
    }
    say(f"taking reality into state for {', '.join(sorted(named))}")
    if drifted <= named:
        run(
            [
                "apply",
                "-input=false",
                "-no-color",
                f"-lock-timeout={lock_timeout}",
                "-auto-approve",
                str(planfile),
            ],
            "apply -refresh-only",
        )
    else:
        run(
            [
                "apply",
                "-refresh-only",
                "-input=false",
                "-no-color",
                f"-lock-timeout={lock_timeout}",
                "-auto-approve",
                *(f"-target={a}" for a in sorted(named)),
            ],
            "apply -refresh-only -target",
        )


def resolve_drift(
    root: str | Path,
    *,
    codify: Sequence[str] = (),
    revert: Sequence[str] = (),
    engine: Engine,
    env: Mapping[str, str] | None = None,
    lock_timeout: str = "5s",
    confirm: Callable[[str], bool] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Resolution:
    """Codify and/or revert the named drift of one root; see the module docstring.

    ``confirm`` sees the targeted plan's text before anything is applied and may veto
    (then the edits are rolled back and DriftError is raised). A SIGINT/SIGTERM/SIGHUP
    meanwhile stops Terraform gracefully and raises :class:`Interrupted` (edits are
    rolled back unless something was already applied).
    """
    with engine.forward_signals():
        return _resolve(
            root,
            codify=codify,
            revert=revert,
            engine=engine,
            env=env,
            lock_timeout=lock_timeout,
            confirm=confirm,
            progress=progress,
        )


def _resolve(
    root: str | Path,
    *,
    codify: Sequence[str],
    revert: Sequence[str],
    engine: Engine,
    env: Mapping[str, str] | None,
    lock_timeout: str,
    confirm: Callable[[str], bool] | None,
    progress: Callable[[str], None] | None,
) -> Resolution:
    if not codify and not revert:
        raise ConfigError("name at least one --codify or --revert ADDR.ATTR")
    say = progress or (lambda _msg: None)
    path = Path(root)
    res = Resolution(root=str(root))
    run_env = {"TF_IN_AUTOMATION": "1", **(env or {})}

    def run(args: list[str], what: str, ok: tuple[int, ...] = (0,)) -> RunResult:
        result = engine.run(args, cwd=path, env=run_env)
        res.runs.append(result)
        engine.check_interrupted()
        if result.returncode not in ok or result.timed_out:
            raise explain_failure(result, what, str(root))
        return result

    say(f"checking drift in {root} ...")
    report = check_root(path, engine=engine, env=env, lock_timeout=lock_timeout)
    res.report_before = report
    res.runs += report.runs
    engine.check_interrupted()
    if report.status == "error":
        raise DriftError(
            (report.error or {}).get("message", "drift check failed"), detail=report.error
        )
    everything = report.findings + report.ignored
    codify_targets, to_codify = match_targets(codify, everything, "codify")
    revert_targets, to_revert = match_targets(revert, everything, "revert")
    both = {f.target for f in to_codify} & {f.target for f in to_revert}
    if both:
        raise ConfigError(f"both codify and revert named for: {', '.join(sorted(both))}")
    for f in to_codify:
        if f.kind == "deleted":
            raise ConfigError(
                f"--codify {f.address}: deleted outside Terraform; to keep it "
                "deleted, remove it from the configuration (or revert to recreate)"
            )
        if f.sensitive:
            raise ConfigError(
                f"--codify {f.target}: a sensitive value is never written into "
                "configuration; update its source (e.g. TF_VAR_...) instead"
            )
    res.edits = [plan_codify(path, parse_target(f.target), f.reality) for f in to_codify]
    originals, res.diff = apply_edits(res.edits, base=path.resolve().parent.parent)
    tmp = Path(tempfile.mkdtemp(prefix="driftsafe-resolve-"))
    try:
        planfile = tmp / "resolve.tfplan"
        addresses = sorted({t.address for t in codify_targets + revert_targets})
        plan = run(
            [
                "plan",
                "-input=false",
                "-no-color",
                f"-lock-timeout={lock_timeout}",
                f"-out={planfile}",
                *(f"-target={a}" for a in addresses),
            ],
            "plan -target",
        )
        res.plan_output = plan.stdout
        shown = run(["show", "-json", "-no-color", str(planfile)], "show -json")
        problems = check_plan(json.loads(shown.stdout), everything, revert_targets, codify_targets)
        if problems:
            raise DriftError("refusing to resolve: " + "; ".join(problems), detail=plan.stdout)
        if confirm is not None and not confirm(plan.stdout):
            raise DriftError("resolution cancelled; configuration edits rolled back")
        if revert_targets:
            say(f"applying the checked plan to {', '.join(t.address for t in revert_targets)}")
            run(
                [
                    "apply",
                    "-input=false",
                    "-no-color",
                    f"-lock-timeout={lock_timeout}",
                    "-auto-approve",
                    str(planfile),
                ],
                "apply (revert)",
            )
        res.reverted = [t.text for t in revert_targets]
        if codify_targets:
            _refresh_codified(run, tmp, codify_targets, lock_timeout, say)
        res.codified = [t.text for t in codify_targets]
    except BaseException:
        if not res.reverted:
            restore(originals)  # nothing applied yet: leave the configuration as it was
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    final = run(
        [
            "plan",
            "-input=false",
            "-no-color",
            f"-lock-timeout={lock_timeout}",
            "-detailed-exitcode",
        ],
        "plan (after)",
        ok=(0, 2),
    )
    res.final_plan_output = final.stdout
    res.clean_after = final.returncode == 0 and "No changes." in final.stdout
    return res
