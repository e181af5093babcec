"""`driftsafe lab init`: the generated stack's layout, backends, and that real
Terraform accepts it (validate, fmt -check)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftsafe.cli.main import cli
from driftsafe.engine import Engine
from driftsafe.errors import ConfigError
from driftsafe.lab.scaffold import init_stack

ENV_FILES = {"main.tf", "variables.tf", "outputs.tf", "backend.tf", "terraform.tfvars"}


def test_layout_one_module_two_roots(tmp_path: Path) -> None:
    stack = init_stack(tmp_path / "s")
    root = tmp_path / "s"
    assert stack.root == root.resolve()
    assert {p.name for p in (root / "modules" / "app").iterdir()} == {
        "main.tf",
        "variables.tf",
        "outputs.tf",
    }
    for env in ("staging", "prod"):
        env_dir = root / "envs" / env
        assert {p.name for p in env_dir.iterdir()} == ENV_FILES
        assert 'module "app"' in (env_dir / "main.tf").read_text()
        assert 'backend "local"' in (env_dir / "backend.tf").read_text()
        assert f'env             = "{env}"' in (env_dir / "terraform.tfvars").read_text()
    staging, prod = (
        (root / "envs" / e / "terraform.tfvars").read_text() for e in ("staging", "prod")
    )
    assert staging != prod
    module = (root / "modules" / "app" / "main.tf").read_text()
    for address in (
        '"lab_config_file" "app"',
        '"lab_config_file" "features"',
        '"lab_secret_file" "app"',
        '"lab_release" "app"',
        '"lab_symlink" "current"',
        '"lab_delay" "rollout"',
    ):
        assert f"resource {address}" in module
    assert "create_before_destroy = true" in module
    variables = (root / "modules" / "app" / "variables.tf").read_text()
    assert "ephemeral   = true" in variables and "sensitive   = true" in variables
    assert len(stack.files) == 3 + 2 * len(ENV_FILES)


def test_refuses_non_empty_directory_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "s"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty.*--force"):
        init_stack(target)
    assert not (target / "envs").exists()
    init_stack(target, force=True)
    assert (target / "notes.txt").read_text() == "mine"
    assert (target / "envs" / "prod" / "main.tf").is_file()


def test_server_backend_points_each_env_at_its_own_state(tmp_path: Path) -> None:
    stack = init_stack(tmp_path / "s", server="http://127.0.0.1:8700/", name="team/app")
    staging = (stack.envs["staging"] / "backend.tf").read_text()
    prod = (stack.envs["prod"] / "backend.tf").read_text()
    assert 'backend "http"' in staging
    assert 'address        = "http://127.0.0.1:8700/v1/states/team/app/staging"' in staging
    assert 'lock_address   = "http://127.0.0.1:8700/v1/locks/team/app/staging"' in staging
    assert 'unlock_address = "http://127.0.0.1:8700/v1/locks/team/app/staging"' in staging
    assert 'lock_method    = "LOCK"' in staging and 'unlock_method  = "UNLOCK"' in staging
    assert "v1/states/team/app/prod" in prod
    assert "password" not in staging and "username" not in staging
    assert stack.state_address("prod") == "http://127.0.0.1:8700/v1/states/team/app/prod"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"server": "127.0.0.1:8700"}, "http:// or https://"),
        ({"name": "a/../b"}, "not a valid workspace name"),
        ({"name": "has space"}, "not a valid workspace name"),
    ],
)
def test_bad_options_are_config_errors(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        init_stack(tmp_path / "s", **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("server", [None, "http://127.0.0.1:8700"])
def test_terraform_validates_and_fmt_accepts_the_stack(
    tmp_path: Path, engine: Engine, server: str | None
) -> None:
    stack = init_stack(tmp_path / "s", server=server)
    fmt = engine.run(["fmt", "-check", "-recursive", "-no-color"], cwd=stack.root, timeout=60)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    env_dir = stack.envs["staging"]
    # -backend=false: validating needs the provider, not the state server.
    init = engine.run(
        ["init", "-backend=false", "-no-color", "-input=false"], cwd=env_dir, timeout=120
    )
    assert init.returncode == 0, init.stderr
    validate = engine.run(["validate", "-no-color"], cwd=env_dir, timeout=120)
    assert validate.returncode == 0, validate.stderr
    assert "The configuration is valid." in validate.stdout


def test_cli_init_json_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "s"
    result = runner.invoke(cli, ["lab", "init", str(target), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["backend"] == "local"
    assert data["envs"]["prod"] == str((target / "envs" / "prod").resolve())
    assert data["state_addresses"] == {"staging": None, "prod": None}

    again = runner.invoke(cli, ["lab", "init", str(target)])
    assert again.exit_code == 1
    assert "Error:" in again.output and "not empty" in again.output
    assert "Traceback" not in again.output

    bad = runner.invoke(cli, ["lab", "init", str(tmp_path / "t"), "--server", "nope"])
    assert bad.exit_code == 1
    assert "--server must be an http:// or https:// URL" in bad.output

    forced = runner.invoke(
        cli, ["lab", "init", str(target), "--force", "--server", "http://127.0.0.1:9/"]
    )
    assert forced.exit_code == 0, forced.output
    assert "http://127.0.0.1:9/v1/states/lab/staging" in forced.output


def test_cli_help_has_an_example() -> None:
    runner = CliRunner()
    for args in (["lab", "--help"], ["lab", "init", "--help"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0
        assert "Example:" in result.output
        assert "driftsafe lab init" in result.output
