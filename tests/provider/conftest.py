"""One lab stack shared by the provider tests: plans with a pyvider provider cost ~1.5 s."""

from __future__ import annotations

import pytest
from labenv import Env

from driftsafe.engine import Engine
from driftsafe.lab.scaffold import Stack, init_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    return init_stack(tmp_path_factory.mktemp("lab-stack") / "stack")


@pytest.fixture(scope="module")
def staging(stack: Stack, engine: Engine) -> Env:
    """envs/staging initialised and applied once."""
    env = Env(stack.envs["staging"], stack.root / "runtime" / "staging", engine)
    init = env.tf("init")
    assert init.returncode == 0
    applied = env.tf("apply", "-auto-approve")
    assert applied.returncode == 0, applied.stderr
    return env
