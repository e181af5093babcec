"""``driftsafe lab``: the lab stack and (later) the drill."""

from __future__ import annotations

import click

from driftsafe.cli.common import echo_json, handle_errors


@click.group()
def lab() -> None:
    """The lab: a real staging/prod Terraform stack on local files, and the drill.

    \b
    Example:
      driftsafe lab init /tmp/stack
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
      driftsafe lab init /tmp/stack2 --server http://127.0.0.1:8700 --name team
    """
    from driftsafe.lab.scaffold import init_stack

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


def _register_run() -> None:
    # `lab run` lives in its own module (the drill is large); registered here so
    # `driftsafe lab --help` lists it beside `init`.
    from driftsafe.cli.lab_run import run

    lab.add_command(run)


_register_run()
