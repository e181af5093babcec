"""The lab stack end to end through real Terraform: apply, no-op, drift, revert,
delete, release replacement, secret hygiene, and staging beside prod."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from labenv import SECRET, Env

from driftsafe.engine import Engine
from driftsafe.lab.scaffold import Stack

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("lab-stack")]


def _state(env: Env) -> dict:
    return json.loads((env.dir / "terraform.tfstate").read_text())


def _resource(state: dict, type_: str, name: str) -> dict:
    for res in state["resources"]:
        if res["type"] == type_ and res["name"] == name:
            return res["instances"][0]["attributes"]
    raise AssertionError(f"{type_}.{name} not in state")


def test_init_installs_from_mirror_and_writes_lock_file(staging: Env) -> None:
    lock = (staging.dir / ".terraform.lock.hcl").read_text()
    assert 'provider "registry.driftsafe.local/driftsafe/lab"' in lock
    assert 'version     = "0.1.0"' in lock
    assert "h1:" in lock


def test_apply_creates_real_files_and_second_apply_is_a_no_op(staging: Env) -> None:
    run = staging.runtime
    assert (run / "app.conf").read_text() == "env = staging\nmax_connections = 50\nport = 8081\n"
    assert (run / "features.conf").read_text() == "beta_search = true\nnew_checkout = true\n"
    assert oct((run / "app.conf").stat().st_mode & 0o777) == "0o644"
    assert oct((run / "secret.txt").stat().st_mode & 0o777) == "0o600"
    current = run / "current"
    assert current.is_symlink()
    assert (current / "content").read_text() == "app 1.0.0\n"
    again = staging.tf("apply", "-auto-approve")
    assert "No changes." in again.stdout
    assert "0 added, 0 changed, 0 destroyed" in again.stdout


def test_hand_edit_shows_as_drift_and_apply_reverts_it(staging: Env) -> None:
    conf = staging.runtime / "app.conf"
    conf.write_text(conf.read_text().replace("max_connections = 50", "max_connections = 500"))
    drift = staging.tf("plan", "-refresh-only", "-detailed-exitcode")
    assert drift.returncode == 2
    assert "Objects have changed outside of Terraform" in drift.stdout
    assert "module.app.lab_config_file.app has changed" in drift.stdout
    assert '"max_connections" = "50" -> "500"' in drift.stdout
    # A refresh-only plan changes nothing on disk.
    assert "max_connections = 500" in conf.read_text()

    reverted = staging.tf("apply", "-auto-approve")
    assert '"max_connections" = "500" -> "50"' in reverted.stdout
    assert "0 added, 1 changed, 0 destroyed" in reverted.stdout
    assert "max_connections = 50\n" in conf.read_text()


def test_chmod_by_hand_is_drift_and_reverted(staging: Env) -> None:
    conf = staging.runtime / "app.conf"
    conf.chmod(0o666)
    drift = staging.tf("plan", "-refresh-only")
    assert 'mode    = "0644" -> "0666"' in drift.stdout
    staging.tf("apply", "-auto-approve")
    assert conf.stat().st_mode & 0o777 == 0o644


def test_deleted_file_is_reported_and_recreated(staging: Env) -> None:
    features = staging.runtime / "features.conf"
    features.unlink()
    drift = staging.tf("plan", "-refresh-only", "-detailed-exitcode")
    assert drift.returncode == 2
    assert "module.app.lab_config_file.features has been deleted" in drift.stdout
    applied = staging.tf("apply", "-auto-approve")
    assert "module.app.lab_config_file.features will be created" in applied.stdout
    assert features.read_text() == "beta_search = true\nnew_checkout = true\n"


def test_release_change_creates_before_destroy_and_moves_pointer(staging: Env) -> None:
    before = _resource(_state(staging), "lab_release", "app")
    old_dir = Path(before["path"])
    assert old_dir.is_dir()
    changed = staging.tf("apply", "-auto-approve", "-var", "release_content=app 1.1.0\n")
    assert "create replacement and then destroy" in changed.stdout
    assert "module.app.lab_release.app must be replaced" in changed.stdout
    after = _resource(_state(staging), "lab_release", "app")
    assert after["release_id"] != before["release_id"]
    current = staging.runtime / "current"
    assert os.readlink(current) == after["path"]
    assert (current / "content").read_text() == "app 1.1.0\n"
    assert not old_dir.exists()
    # The release is read-only: an artefact, not a place to edit.
    assert (Path(after["path"]) / "content").stat().st_mode & 0o222 == 0
    back = staging.tf("apply", "-auto-approve")  # tfvars again: 1.0.0
    # release and the rollout delay it triggers are replaced; the pointer moves back.
    assert "Plan: 2 to add, 1 to change, 2 to destroy." in back.stdout
    assert (current / "content").read_text() == "app 1.0.0\n"


def test_tampered_release_is_drift_and_replaced(staging: Env) -> None:
    release = Path(_resource(_state(staging), "lab_release", "app")["path"])
    content = release / "content"
    release.chmod(0o755)
    content.chmod(0o644)
    content.write_text("app 1.0.0 + hotfix\n")
    drift = staging.tf("plan", "-refresh-only", "-detailed-exitcode")
    assert drift.returncode == 2
    assert "module.app.lab_release.app has changed" in drift.stdout
    plan = staging.tf("plan")
    assert "module.app.lab_release.app must be replaced" in plan.stdout
    staging.tf("apply", "-auto-approve")
    assert (staging.runtime / "current" / "content").read_text() == "app 1.0.0\n"


def test_secret_reaches_its_file_and_never_the_state(staging: Env) -> None:
    secret_file = staging.runtime / "secret.txt"
    assert secret_file.read_text() == SECRET
    rotated = SECRET + "-v2"
    staging.tf("apply", "-auto-approve", "-var", "secret_version=2", secret=rotated)
    assert secret_file.read_text() == rotated
    staging.tf("apply", "-auto-approve", secret=SECRET)  # back to version 1: rewritten
    assert secret_file.read_text() == SECRET

    attrs = _resource(_state(staging), "lab_secret_file", "app")
    assert attrs["secret"] is None
    checked = [staging.dir / "terraform.tfstate", staging.dir / "terraform.tfstate.backup"]
    checked += [p for p in (staging.dir / ".terraform").rglob("*") if p.is_file()]
    assert (staging.dir / "terraform.tfstate.backup").is_file()
    for path in checked:
        data = path.read_bytes()
        assert SECRET.encode() not in data, path
        assert rotated.encode() not in data, path


def test_missing_secret_is_a_clear_error(staging: Env) -> None:
    (staging.runtime / "secret.txt").unlink()
    result = staging.tf("apply", "-auto-approve", secret=None, check=False)
    assert result.returncode == 1
    assert "secret: no value was given" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    staging.tf("apply", "-auto-approve")
    assert (staging.runtime / "secret.txt").read_text() == SECRET


def test_staging_and_prod_side_by_side(stack: Stack, staging: Env, engine: Engine) -> None:
    prod = Env(stack.envs["prod"], stack.root / "runtime" / "prod", engine)
    prod.tf("init")
    applied = prod.tf("apply", "-auto-approve")
    assert applied.returncode == 0
    prod_conf = (prod.runtime / "app.conf").read_text()
    assert prod_conf == "env = prod\nmax_connections = 200\nport = 8080\n"

    def outputs(env: Env) -> dict:
        result = env.tf("output", "-json")
        return {k: v["value"] for k, v in json.loads(result.stdout).items()}

    out_s, out_p = outputs(staging), outputs(prod)
    assert (out_s["env"], out_s["port"], out_s["max_connections"]) == ("staging", 8081, 50)
    assert (out_p["env"], out_p["port"], out_p["max_connections"]) == ("prod", 8080, 200)
    assert out_s["runtime_dir"] != out_p["runtime_dir"]
    s_state, p_state = _state(staging), _state(prod)
    assert s_state["lineage"] != p_state["lineage"]
    s_paths = {r["instances"][0]["attributes"].get("path") for r in s_state["resources"]}
    p_paths = {r["instances"][0]["attributes"].get("path") for r in p_state["resources"]}
    assert not (s_paths - {None}) & (p_paths - {None})
    # Same module source for both: one module, two instantiations.
    for env in (staging, prod):
        assert 'source = "../../modules/app"' in (env.dir / "main.tf").read_text()
    # An apply of prod left staging alone.
    assert "No changes." in staging.tf("plan").stdout


def test_bad_stack_inputs_are_diagnostics(staging: Env) -> None:
    bad = staging.tf("plan", "-var", "port=70000", "-var", "max_connections=0", check=False)
    assert bad.returncode == 1
    assert "port must be a whole number from 1 to 65535." in bad.stderr
    assert "max_connections must be a whole number of at least 1." in bad.stderr
    assert "Traceback" not in bad.stderr
