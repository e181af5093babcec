"""``driftsafe lab run``: the drill and its evidence report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from driftsafe.cli.common import get_settings, handle_errors
from driftsafe.lab.drill.run import STEP_NAMES, run_drill, summary_line


@click.command("run")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("lab-run"),
    show_default=True,
    help="Where the stack, the server's data and the report go. A previous "
    "drill's directory is wiped; any other non-empty directory is refused.",
)
@click.option(
    "--engine",
    "engine_spec",
    metavar="ENGINE",
    help="embedded (default), terraform, tofu or a path (env DRIFTSAFE_ENGINE).",
)
@click.option(
    "--only",
    metavar="STEP,...",
    help=f"Run only these steps (plus setup and the first apply): {', '.join(STEP_NAMES)}.",
)
@click.option(
    "--unsafe-disable-locking",
    is_flag=True,
    help="Demonstration of a broken setting: an http backend without lock "
    "addresses. The report then shows ✗ where locking matters.",
)
@handle_errors
def run(
    directory: Path, engine_spec: str | None, only: str | None, unsafe_disable_locking: bool
) -> None:
    """Run the whole drill and write the evidence report.

    Starts a SQLite state server on a free loopback port, applies staging and prod,
    provokes a lock clash, a crashed run with a stale lock, fencing of a paused
    writer, out-of-band drift and its resolution, checks secrets, versions and an
    immutable release, runs the scheduled drift job, and writes DIR/report/index.html.
    Exits 0 only when every checklist item is ✓.

    \b
    Example:
      driftsafe lab run --dir /tmp/drill
      driftsafe lab run --dir /tmp/drill --only lock-clash,crash
    """
    steps = [s.strip() for s in only.split(",") if s.strip()] if only else None
    outcome = run_drill(
        directory,
        settings=get_settings(),
        engine_spec=engine_spec,
        only=steps,
        disable_locking=unsafe_disable_locking,
        progress=lambda line: click.echo(line, err=False),
    )
    click.echo(summary_line(outcome))
    click.echo(f"Report: {outcome.paths.index_html}")
    if not outcome.passed:
        click.echo(
            "Some checks failed: the report's checklist shows which, with the "
            "captured output of each.",
            err=True,
        )
    sys.exit(0 if outcome.passed else 1)
