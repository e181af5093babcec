"""The drill's evidence: steps, command transcripts, artifacts and computed checks.

The drill records what it ran and what came back; every ✓ in the report is a
:class:`Check` whose ``passed`` the drill computed from captured output, and which
points at the transcripts and artifacts that prove it. Rendering lives in
:mod:`driftsafe.lab.report`; this module only holds and writes the data.

Typical use by the drill::

    ev = Evidence(out_dir, title="driftsafe lab drill", progress=click.echo, total_steps=13)
    ev.step("lock-clash", "Lock clash")
    loser = ev.record("lock-clash", result, title="apply B (loses)", redact=[token])
    ev.check("lock-clash", "lock-clash", "The loser sees `Error acquiring the state lock`",
             "Error acquiring the state lock" in loser.stderr, evidence=[loser])
    ev.close()                   # stamp end times, scrub declared secrets
    paths = write_report(ev)     # driftsafe.lab.report renders; exit non-zero unless ev.all_passed

Secrets: any value passed in ``redact=`` (or to :meth:`Evidence.redact`) is
remembered and replaced by ``<redacted>`` in *everything* written out, including
text recorded before the value was declared: :meth:`Evidence.close` scrubs what was
recorded, and the renderer scrubs every file it writes once more.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from driftsafe.timestamps import rfc3339

if TYPE_CHECKING:
    from driftsafe.engine import RunResult

REDACTED = "<redacted>"
ARTIFACT_KINDS = ("text", "json", "hcl", "svg", "table-md")
ArtifactKind = Literal["text", "json", "hcl", "svg", "table-md"]
# Pseudo-commands shown as `GET /api/...` rather than shell-quoted.
_HTTP_VERBS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "LOCK", "UNLOCK"})
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """Terraform colours its output unless told not to; the report shows plain text."""
    return _ANSI.sub("", text)


def slugify(text: str, max_len: int = 48) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "item"


@dataclass
class Transcript:
    """One command (or captured non-command output such as an API call) and its result."""

    id: str
    seq: int
    step_id: str
    title: str
    argv: list[str]
    cwd: str
    env: dict[str, str]
    started_at: float
    ended_at: float
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False
    signal: int | None = None
    kind: str = "command"  # "command" (a real process) or "capture"

    @property
    def duration(self) -> float:
        return self.ended_at - self.started_at

    @property
    def is_http(self) -> bool:
        """An API call captured as ``GET /path``: its returncode is the HTTP status."""
        return bool(self.argv) and self.argv[0] in _HTTP_VERBS and 100 <= self.returncode < 600

    @property
    def ok(self) -> bool:
        if self.signal:
            return False
        return self.returncode < 400 if self.is_http else self.returncode == 0

    @property
    def command_line(self) -> str:
        if self.argv and self.argv[0] in _HTTP_VERBS:
            return " ".join(self.argv)
        return shlex.join(self.argv)

    @property
    def file_stem(self) -> str:
        return f"{self.seq:03d}-{self.step_id}-{slugify(self.title)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seq": self.seq,
            "step": self.step_id,
            "title": self.title,
            "kind": self.kind,
            "argv": self.argv,
            "command_line": self.command_line,
            "cwd": self.cwd,
            "env": self.env,
            "started_at": rfc3339(self.started_at),
            "ended_at": rfc3339(self.ended_at),
            "started_at_epoch": self.started_at,
            "ended_at_epoch": self.ended_at,
            "duration_seconds": round(self.duration, 3),
            "exit_code": self.returncode,
            "timed_out": self.timed_out,
            "signal": self.signal,
            "stdout": self.stdout,
            "stderr": self.stderr,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Transcript:
        return cls(
            id=data["id"],
            seq=data["seq"],
            step_id=data["step"],
            title=data["title"],
            argv=list(data["argv"]),
            cwd=data["cwd"],
            env=dict(data["env"]),
            started_at=data["started_at_epoch"],
            ended_at=data["ended_at_epoch"],
            returncode=data["exit_code"],
            stdout=data["stdout"],
            stderr=data["stderr"],
            timed_out=data.get("timed_out", False),
            signal=data.get("signal"),
            kind=data.get("kind", "command"),
        )

    def to_text(self) -> str:
        """A plain-text rendering for reading the raw transcript in a terminal."""
        lines = [
            f"# {self.title}",
            f"$ {self.command_line}",
            f"cwd:      {self.cwd}",
            f"started:  {rfc3339(self.started_at)}",
            f"ended:    {rfc3339(self.ended_at)}  ({self.duration:.2f} s)",
            f"exit:     {self.returncode}"
            + (f"  (signal {self.signal})" if self.signal else "")
            + ("  (timed out)" if self.timed_out else ""),
        ]
        if self.env:
            lines.append("env:")
            lines.extend(f"  {k}={v}" for k, v in sorted(self.env.items()))
        lines += ["", "--- stdout ---", strip_ansi(self.stdout).rstrip("\n")]
        lines += ["", "--- stderr ---", strip_ansi(self.stderr).rstrip("\n"), ""]
        return "\n".join(lines)


@dataclass
class Artifact:
    """A captured document that is not a command: a backend block, a table, a figure."""

    id: str
    seq: int
    step_id: str
    title: str
    text: str
    kind: str = "text"


@dataclass
class Check:
    """One acceptance criterion; ``passed`` is computed by the drill from captured output."""

    id: str
    step_id: str
    criterion: str
    passed: bool
    evidence: list[str] = field(default_factory=list)  # transcript / artifact / step anchors
    detail: str = ""
    reached: bool = True  # False for an expected criterion the run never got to
    # A guarantee this run's backend does not give, reproduced on purpose (e.g. S3 has
    # no fencing): ``passed`` then says whether it was reproduced as expected.
    limitation: bool = False

    @property
    def anchor(self) -> str:
        return f"check-{self.id}"

    @property
    def status(self) -> str:
        """``passed``, ``failed`` or ``limitation`` (a backend limitation, reproduced)."""
        if not self.passed:
            return "failed"
        return "limitation" if self.limitation else "passed"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "step": self.step_id,
            "criterion": self.criterion,
            "passed": self.passed,
            "status": self.status,
            "evidence": list(self.evidence),
            "detail": self.detail,
            "reached": self.reached,
        }


@dataclass
class Step:
    """A section of the report, in the order the drill ran it."""

    id: str
    title: str
    index: int
    started_at: float
    ended_at: float | None = None
    # Narratives (str), transcripts and artifacts in the order they were added.
    items: list[str | Transcript | Artifact] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return f"step-{self.id}"


class Evidence:
    """Collects a drill's evidence; :func:`driftsafe.lab.report.write_report` renders it."""

    def __init__(
        self,
        out_dir: Path,
        *,
        title: str,
        progress: Callable[[str], None] | None = None,
        total_steps: int | None = None,
        subtitle: str = "",
    ) -> None:
        self.out_dir = Path(out_dir)
        self.title = title
        self.subtitle = subtitle
        self.progress = progress
        self.total_steps = total_steps
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.steps: list[Step] = []
        self.checks: list[Check] = []
        self._steps: dict[str, Step] = {}
        self._ids: set[str] = set()
        self._expected: dict[str, tuple[str, str]] = {}
        self._secrets: set[str] = set()
        self._seq = 0  # transcripts
        self._art_seq = 0
        self.aborted: str | None = None
        # Markdown blocks shown first, before the checklist (e.g. a comparison table).
        self.preface: list[str] = []
        # The drill may record overlapping runs from helper threads.
        self._lock = threading.RLock()

    # -- recording -------------------------------------------------------------------

    def step(self, step_id: str, title: str) -> Step:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", step_id):
            raise ValueError(f"step id {step_id!r}: use lowercase letters, digits and '-'")
        if step_id in self._steps:
            raise ValueError(f"step {step_id!r} already started")
        now = time.time()
        if self.steps and self.steps[-1].ended_at is None:
            self.steps[-1].ended_at = now
        step = Step(id=step_id, title=title, index=len(self.steps) + 1, started_at=now)
        self.steps.append(step)
        self._steps[step_id] = step
        self._ids.add(step.anchor)
        total = f"/{self.total_steps}" if self.total_steps else ""
        self._say(f"[{step.index}{total}] {title}")
        return step

    def redact(self, *values: str) -> None:
        """Declare secret values: they never appear in any file the report writes."""
        self._secrets.update(v for v in values if v)

    def record(
        self,
        step_id: str,
        result: RunResult,
        *,
        title: str,
        redact: Sequence[str] = (),
    ) -> Transcript:
        """Keep a command's transcript (a :class:`driftsafe.engine.RunResult`)."""
        return self._add_transcript(
            step_id,
            title,
            kind="command",
            argv=list(result.argv),
            cwd=result.cwd,
            env=dict(result.env),
            started_at=result.started_at,
            ended_at=result.ended_at,
            returncode=result.returncode,
            stdout=result.stdout,
            stderr=result.stderr,
            timed_out=result.timed_out,
            signal=result.signal,
            redact=redact,
        )

    def capture(
        self,
        step_id: str,
        title: str,
        *,
        argv: list[str],
        cwd: str,
        returncode: int,
        stdout: str,
        stderr: str = "",
        started_at: float,
        ended_at: float,
        env: dict[str, str] | None = None,
        redact: Sequence[str] = (),
    ) -> Transcript:
        """Keep captured output that is not a Terraform run (an API call, a file listing).

        An API call is shown as ``argv=["GET", "/api/v1/..."]``; pass the HTTP status as
        ``returncode`` and the report labels it ``HTTP 409`` (red from 400 up).
        """
        return self._add_transcript(
            step_id,
            title,
            kind="capture",
            argv=list(argv),
            cwd=cwd,
            env=dict(env or {}),
            started_at=started_at,
            ended_at=ended_at,
            returncode=returncode,
            stdout=stdout,
            stderr=stderr,
            timed_out=False,
            signal=None,
            redact=redact,
        )

    def artifact(
        self, step_id: str, title: str, text: str, *, kind: ArtifactKind = "text"
    ) -> Artifact:
        if kind not in ARTIFACT_KINDS:
            raise ValueError(f"artifact kind {kind!r}: one of {', '.join(ARTIFACT_KINDS)}")
        with self._lock:
            return self._add_artifact(step_id, title, text, kind)

    def _add_artifact(self, step_id: str, title: str, text: str, kind: str) -> Artifact:
        step = self._step(step_id)
        self._art_seq += 1
        art = Artifact(
            id=self._unique(f"a-{self._art_seq:03d}-{slugify(title, 32)}"),
            seq=self._art_seq,
            step_id=step_id,
            title=title,
            text=text,
            kind=kind,
        )
        step.items.append(art)
        return art

    def narrative(self, step_id: str, markdown: str) -> None:
        with self._lock:
            self._step(step_id).items.append(markdown)

    def abort(self, message: str) -> None:
        """The drill stopped early (an exception): the report says so and cannot pass."""
        with self._lock:
            self.aborted = message
            if self.steps:
                self.steps[-1].items.append(f"> **The drill stopped here:** {message}")
            self._say(f"    ✗ drill stopped: {message}")

    def expect(self, check_id: str, step_id: str, criterion: str) -> None:
        """Declare a criterion up front, so a run that dies before it shows ✗ "not reached"."""
        self._expected[check_id] = (step_id, criterion)

    def check(
        self,
        check_id: str,
        step_id: str,
        criterion: str,
        passed: bool,
        *,
        evidence: Sequence[str | Transcript | Artifact],
        detail: str = "",
    ) -> Check:
        with self._lock:
            return self._add_check(check_id, step_id, criterion, passed, evidence, detail)

    def limitation(
        self,
        check_id: str,
        step_id: str,
        criterion: str,
        reproduced: bool,
        *,
        evidence: Sequence[str | Transcript | Artifact],
        detail: str = "",
    ) -> Check:
        """A check this run's backend cannot pass by design (no server-side wait, no
        fencing...): shown as "backend limitation, reproduced" when the drill reproduced
        the limitation from captured output, as failed when it could not."""
        with self._lock:
            return self._add_check(
                check_id, step_id, criterion, reproduced, evidence, detail, limitation=True
            )

    def _add_check(
        self,
        check_id: str,
        step_id: str,
        criterion: str,
        passed: bool,
        evidence: Sequence[str | Transcript | Artifact],
        detail: str,
        *,
        limitation: bool = False,
    ) -> Check:
        step = self._step(step_id)
        if any(c.id == check_id for c in self.checks):
            raise ValueError(f"check {check_id!r} recorded twice")
        refs: list[str] = []
        for item in evidence:
            ref = item if isinstance(item, str) else item.id
            if ref in self._steps:
                ref = self._steps[ref].anchor
            if ref not in self._ids:
                raise ValueError(f"check {check_id!r}: no evidence with id {ref!r}")
            refs.append(ref)
        chk = Check(check_id, step_id, criterion, bool(passed), refs, detail, limitation=limitation)
        self.checks.append(chk)
        step.checks.append(chk)
        mark = {"passed": "✓", "failed": "✗", "limitation": "⚠"}[chk.status]
        note = " (backend limitation, reproduced)" if chk.status == "limitation" else ""
        self._say(f"    {mark} {criterion}{note}")
        return chk

    # -- results ---------------------------------------------------------------------

    def checklist(self) -> list[Check]:
        """Every criterion in order, including expected ones that were never reached."""
        done = {c.id for c in self.checks}
        missing = [
            Check(
                cid,
                sid,
                crit,
                False,
                [],
                "not reached: the drill stopped before this check",
                reached=False,
            )
            for cid, (sid, crit) in self._expected.items()
            if cid not in done
        ]
        return [*self.checks, *missing]

    @property
    def all_passed(self) -> bool:
        items = self.checklist()
        return self.aborted is None and bool(items) and all(c.passed for c in items)

    @property
    def transcripts(self) -> list[Transcript]:
        return [i for s in self.steps for i in s.items if isinstance(i, Transcript)]

    def scrub(self, text: str) -> str:
        """``text`` with every declared secret replaced (longest first, so none leaks)."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    def close(self) -> None:
        """Stamp the end times and scrub every declared secret from what was recorded.

        Safe to call more than once: a secret declared after a first close is
        scrubbed by the next one.
        """
        with self._lock:
            if self.ended_at is None:
                self.ended_at = time.time()
            if self.steps and self.steps[-1].ended_at is None:
                self.steps[-1].ended_at = self.ended_at
            self._scrub_all()

    @property
    def summary_line(self) -> str:
        checks = self.checklist()
        passed = sum(c.status == "passed" for c in checks)
        limits = sum(c.status == "limitation" for c in checks)
        extra = f", {limits} backend limitation(s) reproduced" if limits else ""
        return f"{passed}/{len(checks)} criteria passed{extra}"

    # -- internals -------------------------------------------------------------------

    def _say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)

    def _step(self, step_id: str) -> Step:
        try:
            return self._steps[step_id]
        except KeyError:
            raise ValueError(f"unknown step {step_id!r}: call step() first") from None

    def _unique(self, ident: str) -> str:
        base, n = ident, 1
        while ident in self._ids:
            n += 1
            ident = f"{base}-{n}"
        self._ids.add(ident)
        return ident

    def _add_transcript(
        self, step_id: str, title: str, *, redact: Sequence[str], **fields: Any
    ) -> Transcript:
        with self._lock:
            step = self._step(step_id)
            self.redact(*redact)
            self._seq += 1
            tr = Transcript(
                id=self._unique(f"t-{self._seq:03d}-{slugify(title, 32)}"),
                seq=self._seq,
                step_id=step_id,
                title=title,
                **fields,
            )
            self._scrub_transcript(tr)
            step.items.append(tr)
            return tr

    def _scrub_all(self) -> None:
        # Secrets declared late must also vanish from what was recorded before.
        self.title = self.scrub(self.title)
        self.subtitle = self.scrub(self.subtitle)
        if self.aborted is not None:
            self.aborted = self.scrub(self.aborted)
        for step in self.steps:
            step.title = self.scrub(step.title)
            for n, item in enumerate(step.items):
                if isinstance(item, str):
                    step.items[n] = self.scrub(item)
                elif isinstance(item, Transcript):
                    self._scrub_transcript(item)
                else:
                    item.title = self.scrub(item.title)
                    item.text = self.scrub(item.text)
        for chk in self.checks:
            chk.criterion = self.scrub(chk.criterion)
            chk.detail = self.scrub(chk.detail)

    def _scrub_transcript(self, tr: Transcript) -> None:
        tr.title = self.scrub(tr.title)
        tr.argv = [self.scrub(a) for a in tr.argv]
        tr.cwd = self.scrub(tr.cwd)
        tr.env = {k: self.scrub(v) for k, v in tr.env.items()}
        tr.stdout = self.scrub(tr.stdout)
        tr.stderr = self.scrub(tr.stderr)


def load_transcript(path: Path) -> Transcript:
    """Read back a transcript JSON file written by the report."""
    return Transcript.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
