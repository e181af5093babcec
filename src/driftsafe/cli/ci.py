"""``driftsafe ci init DIR``."""

from __future__ import annotations

import click

from driftsafe.cli.common import TERRAFORM_DURATION, echo_json, handle_errors


@click.group()
def ci() -> None:
    """Continuous integration: GitHub Actions workflows for plan, apply and drift.

    \b
    Example:
      driftsafe ci init . --env staging --env prod --cron "17 6 * * *"
    """


@ci.command("init")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@click.option(
    "--env",
    "envs",
    multiple=True,
    help="Environment (root module ENVS_DIR/ENV); default: every dir under envs/.",
)
@click.option("--envs-dir", default="envs", show_default=True, help="Where the roots live.")
@click.option("--cron", default="17 6 * * *", show_default=True, help="Drift check schedule (UTC).")
@click.option(
    "--lock-timeout",
    type=TERRAFORM_DURATION,
    default="10m",
    show_default=True,
    help="-lock-timeout for every command that takes the state lock.",
)
@click.option(
    "--alert",
    type=click.Choice(["issue", "pr", "both"]),
    default="issue",
    show_default=True,
    help="How the drift job alerts.",
)
@click.option("--branch", default="main", show_default=True, help="Branch that applies.")
@click.option(
    "--install",
    default="driftsafe==0.1.0",
    show_default=True,
    help="pip requirement that installs driftsafe in CI.",
)
@click.option(
    "--secret-var",
    "secret_vars",
    multiple=True,
    metavar="NAME",
    help="Pass TF_VAR_NAME from the repository secret NAME (uppercased).",
)
@click.option("--force", is_flag=True, help="Overwrite existing workflow files.")
@click.option("--json", "as_json", is_flag=True, help="Print the written paths as JSON.")
@handle_errors
def init(
    directory: str,
    envs: tuple[str, ...],
    envs_dir: str,
    cron: str,
    lock_timeout: str,
    alert: str,
    branch: str,
    install: str,
    secret_vars: tuple[str, ...],
    force: bool,
    as_json: bool,
) -> None:
    """Write GitHub Actions workflows (plan, apply, drift) into DIRECTORY.

    The files are .github/workflows/{terraform-plan,terraform-apply,drift}.yml.
    Plan on pull requests; apply on BRANCH with a per-env concurrency group and
    -lock-timeout (after refusing to apply over drift); a scheduled drift check over
    a matrix of environments that opens or updates an issue (or a PR).

    \b
    Example:
      driftsafe ci init . --alert both --secret-var app_secret
      actionlint .github/workflows/*.yml
    """
    from driftsafe.drift import init_ci

    paths = init_ci(
        directory,
        envs=envs or None,
        force=force,
        envs_dir=envs_dir,
        cron=cron,
        lock_timeout=lock_timeout,
        alert=alert,
        branch=branch,
        install=install,
        secret_vars=tuple(secret_vars),
    )
    if as_json:
        echo_json({"written": [str(p) for p in paths]})
    else:
        for path in paths:
            click.echo(f"wrote {path}")
