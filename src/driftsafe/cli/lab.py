"""``driftsafe lab init|run``: the lab stack and the drill."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from driftsafe.cli.common import echo_json, get_settings, handle_errors
from driftsafe.lab import STEP_NAMES, run_drill, summary_line


@click.group()
def lab() -> None:
    """The lab: a real staging/prod Terraform stack on local files, and the drill.

    \b
    Example:
      driftsafe lab init /tmp/stack
      driftsafe lab run --dir /tmp/drill
    """


@lab.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--server",
    metavar="URL",
    help="Keep state on this driftsafe server (http backend) instead of locally.",
)
@click.option(
    "--name",
    default="lab",
    show_default=True,
    help="Workspace prefix on the server: states are NAME/staging and NAME/prod.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Write into a non-empty directory (overwrites the stack's own files only).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@handle_errors
def init(directory: str, server: str | None, name: str, force: bool, as_json: bool) -> None:
    """Scaffold the lab stack: modules/app, envs/staging and envs/prod.

    Both environments call the same module with different terraform.tfvars;
    the app's files are written under DIRECTORY/runtime/<env>/.

    \b
    Example:
      driftsafe lab init /tmp/stack
      cd /tmp/stack/envs/staging
      export TF_VAR_app_secret=s3cr3t
      driftsafe tf init && driftsafe tf apply -auto-approve
      driftsafe lab init /tmp/stack2 --server http://127.0.0.1:8787 --name team
    """
    from driftsafe.lab import init_stack

    stack = init_stack(directory, server=server, name=name, force=force)
    if as_json:
        echo_json(
            {
                "root": str(stack.root),
                "module": str(stack.module_dir),
                "envs": {env: str(path) for env, path in stack.envs.items()},
                "backend": "http" if server else "local",
                "state_addresses": {env: stack.state_address(env) for env in stack.envs},
                "files": [str(p) for p in stack.files],
            }
        )
        return
    click.echo(f"Wrote the lab stack to {stack.root}")
    click.echo("  modules/app            the shared module")
    for env in stack.envs:
        where = stack.state_address(env) or "local terraform.tfstate"
        click.echo(f"  envs/{env:<17} state: {where}")
    first = stack.envs["staging"]
    click.echo("Next:")
    click.echo(f"  cd {first}")
    click.echo("  export TF_VAR_app_secret=...   # the secret reaches a file, never the state")
    click.echo("  driftsafe tf init && driftsafe tf apply -auto-approve")


@lab.command("run")
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
    "--backend",
    "backend_name",
    type=click.Choice(["driftsafe", "s3"]),
    default="driftsafe",
    show_default=True,
    help="Where the stack's state lives: driftsafe's own server, or an S3 bucket "
    "(moto on loopback unless --s3-endpoint).",
)
@click.option(
    "--s3-endpoint",
    metavar="URL",
    help="With --backend s3: a real S3 endpoint (credentials from the usual AWS_* "
    "variables) instead of a local moto server.",
)
@click.option(
    "--unsafe-disable-locking",
    is_flag=True,
    help="Demonstration of a broken setting: an http backend without lock "
    "addresses. The report then shows ✗ where locking matters.",
)
@handle_errors
def run(
    directory: Path,
    engine_spec: str | None,
    only: str | None,
    backend_name: str,
    s3_endpoint: str | None,
    unsafe_disable_locking: bool,
) -> None:
    """Run the whole drill and write the evidence report.

    Starts a SQLite state server on a free loopback port, applies staging and prod,
    provokes a lock clash, a crashed run with a stale lock, fencing of a paused
    writer, out-of-band drift and its resolution, checks secrets, versions and an
    immutable release, runs the scheduled drift job, and writes DIR/report/index.html.
    Exits 0 only when no checklist item failed.

    With --backend s3 the same steps run on a versioned, encrypted S3 bucket with
    use_lockfile; what S3 cannot do (server-side wait, admin-only force-unlock,
    fencing) ends as "backend limitation, reproduced", and the report opens with S3
    side by side with driftsafe's guarantees.

    \b
    Example:
      driftsafe lab run --dir /tmp/drill
      driftsafe lab run --dir /tmp/drill --only lock-clash,crash
      driftsafe lab run --dir /tmp/drill-s3 --backend s3
    """
    steps = [s.strip() for s in only.split(",") if s.strip()] if only else None
    outcome = run_drill(
        directory,
        settings=get_settings(),
        engine_spec=engine_spec,
        only=steps,
        disable_locking=unsafe_disable_locking,
        backend_name=backend_name,
        s3_endpoint=s3_endpoint,
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
