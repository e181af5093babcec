"""``driftsafe drift check|resolve|history``."""

from __future__ import annotations

import sys

import click

from driftsafe.cli.common import (
    TERRAFORM_DURATION,
    echo_json,
    get_settings,
    handle_errors,
    server_client,
    server_options,
    short_time,
)

_ENGINE_HELP = "embedded (default), terraform, tofu or a path (env DRIFTSAFE_ENGINE)."


@click.group()
def drift() -> None:
    """Find, explain, alert on and resolve drift (changes made outside Terraform).

    \b
    Example:
      driftsafe drift check envs/staging envs/prod
      driftsafe drift resolve envs/staging \\
        --codify module.app.lab_config_file.app.values.max_connections
      driftsafe drift history lab/staging --server http://127.0.0.1:8787
    """


@drift.command()
@click.argument("roots", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the JSON report (schema in docs/drift-report.md).",
)
@click.option(
    "--markdown",
    "markdown_file",
    type=click.Path(dir_okay=False),
    help="Also write the report as Markdown to FILE.",
)
@click.option(
    "--ignore-file",
    type=click.Path(dir_okay=False, exists=True),
    help="Ignore rules (TOML) for every root, besides each root's .driftsafe-ignore.toml.",
)
@click.option(
    "--notify", "webhook", metavar="URL", help="POST the report to a (Slack-compatible) webhook."
)
@click.option(
    "--github-issue",
    metavar="OWNER/REPO",
    help="Open/update/close one drift issue per root (token: GITHUB_TOKEN).",
)
@click.option(
    "--github-pr",
    metavar="OWNER/REPO",
    help="Push a branch codifying the drift and open a pull request (token: GITHUB_TOKEN).",
)
@click.option(
    "--git-remote", default="origin", show_default=True, help="Remote to push PR branches to."
)
@click.option(
    "--lock-timeout",
    type=TERRAFORM_DURATION,
    default="5s",
    show_default=True,
    help="How long each plan waits for the state lock before reporting its holder.",
)
@click.option(
    "--init/--no-init",
    "init",
    default=None,
    help="Run terraform init first (default: only when .terraform is missing).",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    help="Roots checked at once (default: twice the cores).",
)
@click.option(
    "--refresh-only-evidence",
    is_flag=True,
    help="Also run `plan -refresh-only` per root (two plans instead of one), "
    "for those who want the refresh-only plan itself on record.",
)
@click.option("--engine", "engine_spec", metavar="ENGINE", help=_ENGINE_HELP)
@server_options
@handle_errors
def check(
    roots: tuple[str, ...],
    as_json: bool,
    markdown_file: str | None,
    ignore_file: str | None,
    webhook: str | None,
    github_issue: str | None,
    github_pr: str | None,
    git_remote: str,
    lock_timeout: str,
    init: bool | None,
    jobs: int | None,
    refresh_only_evidence: bool,
    engine_spec: str | None,
    server: str | None,
    token: str | None,
) -> None:
    """Check root modules for drift: one plan per root (`plan -out` + `show -json`).

    For every drifted attribute it shows the value in state, in reality and in the
    configuration, and what a plain apply would do (e.g. silently revert it). The
    check never writes state. Exit code: 0 no drift, 2 drift, 1 error (a held lock,
    a failed init, a provider error, or an alert that could not be delivered).

    \b
    Example:
      driftsafe drift check envs/staging envs/prod --json > drift.json
      driftsafe drift check envs/prod --markdown drift.md --github-issue acme/infra
    """
    from driftsafe.drift import DeliveryTargets, load_ignore, render_drift_table, run_check
    from driftsafe.engine import get_engine

    settings = get_settings()
    targets = DeliveryTargets.with_github_token_from_env(
        webhook=webhook,
        github_issue=github_issue,
        github_pr=github_pr,
        git_remote=git_remote,
        github_api=settings.github_api,
        server=server or settings.server,
        server_token=token or settings.token,
    )
    run = run_check(
        roots,
        engine=get_engine(settings, engine_spec),
        targets=targets,
        ignore=load_ignore(ignore_file) if ignore_file else None,
        lock_timeout=lock_timeout,
        init=init,
        jobs=jobs,
        markdown_file=markdown_file,
        progress=lambda message: click.echo(message, err=True),
        refresh_only_evidence=refresh_only_evidence,
    )
    if as_json:
        echo_json(run.to_json())
    else:
        click.echo(render_drift_table(run.reports))
    for d in run.deliveries:
        click.echo(
            f"{'ok' if d.ok else 'FAILED'}: {d.channel}: {d.message}"
            + (f" {d.url}" if d.url else ""),
            err=True,
        )
    if run.undelivered:
        click.echo(
            "Error: some alerts were not delivered (the report above still stands)", err=True
        )
    sys.exit(run.exit_code)


@drift.command()
@click.argument("root", type=click.Path(file_okay=False, exists=True))
@click.option(
    "--codify",
    multiple=True,
    metavar="ADDR.ATTR",
    help="Keep reality: write it into the configuration, then refresh it into state.",
)
@click.option(
    "--revert",
    multiple=True,
    metavar="ADDR.ATTR",
    help="Undo the manual change: apply the configuration to exactly this resource.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before applying the checked plan.")
@click.option("--json", "as_json", is_flag=True, help="Print the resolution as JSON.")
@click.option(
    "--lock-timeout",
    type=TERRAFORM_DURATION,
    default="5s",
    show_default=True,
    help="State lock wait.",
)
@click.option("--engine", "engine_spec", metavar="ENGINE", help=_ENGINE_HELP)
@handle_errors
def resolve(
    root: str,
    codify: tuple[str, ...],
    revert: tuple[str, ...],
    yes: bool,
    as_json: bool,
    lock_timeout: str,
    engine_spec: str | None,
) -> None:
    """Resolve drift: codify some attributes (keep them) and revert others.

    Shows the targeted plan first and refuses if it would change anything not named
    (no silent revert). Ends with a plan; exit 0 when it says "No changes.", 2 when
    other changes remain, 1 on error.

    \b
    Example:
      driftsafe drift resolve envs/staging \\
        --codify module.app.lab_config_file.app.values.max_connections \\
        --revert module.app.lab_config_file.features.mode
    """
    from driftsafe.drift import resolve_drift
    from driftsafe.engine import get_engine

    engine = get_engine(get_settings(), engine_spec)

    def confirm(plan_text: str) -> bool:
        click.echo(plan_text, err=True)
        if yes:
            return True
        return click.confirm("Apply exactly this?", err=True, default=False)

    res = resolve_drift(
        root,
        codify=list(codify),
        revert=list(revert),
        engine=engine,
        lock_timeout=lock_timeout,
        confirm=confirm,
        progress=lambda m: click.echo(m, err=True),
    )
    if as_json:
        echo_json(res.to_json())
    else:
        if res.diff:
            click.echo(res.diff)
        for t in res.codified:
            click.echo(f"codified {t}")
        for t in res.reverted:
            click.echo(f"reverted {t}")
        lines = res.final_plan_output.strip().splitlines()
        verdict = next((ln for ln in lines if ln.startswith("No changes.")), None)
        click.echo(
            verdict or "Changes remain after the resolution (plan below):\n" + res.final_plan_output
        )
    sys.exit(0 if res.clean_after else 2)


@drift.command()
@click.argument("workspace")
@click.option("--json", "as_json", is_flag=True, help="Print the stored reports as JSON.")
@click.option("--limit", default=20, show_default=True, help="Show at most N reports.")
@server_options
@handle_errors
def history(
    workspace: str, as_json: bool, limit: int, server: str | None, token: str | None
) -> None:
    """List the drift reports stored for WORKSPACE on a driftsafe server, newest first.

    \b
    Example:
      driftsafe drift history lab/staging --server http://127.0.0.1:8787 --token $TOKEN
    """
    from driftsafe.drift import list_history
    from driftsafe.errors import ConfigError

    settings = get_settings()
    server = server or settings.server
    if not server:
        raise ConfigError("no server: pass --server or set DRIFTSAFE_SERVER")
    items = list_history(server, token or settings.token, workspace, limit)
    if not items:
        with server_client(server, token) as client:
            client.require_workspace(workspace)  # exit 1 when there is no such workspace
    if as_json:
        echo_json({"workspace": workspace, "reports": items})
        return
    if not items:
        click.echo(f"No drift reports stored for {workspace}.")
        return
    for item in items:
        report = item.get("report") or {}
        findings = report.get("findings") or []
        click.echo(
            f"{short_time(item.get('created_at'))}  #{item.get('id')}  "
            f"{report.get('status', '?'):5}  "
            f"{len(findings)} finding(s)"
            + (f"  {', '.join(f.get('target', '?') for f in findings[:3])}" if findings else "")
        )
