"""``lab_delay``: a resource whose create (and update) takes a known time.

The drill uses it to crash an apply mid-flight and to hold a state lock for a
known time; ``triggers`` forces a new delay when what it guards changes.

A delay is also a gate: with ``LAB_DELAY_RELEASE_FILE=PATH`` in Terraform's
environment, it ends as soon as PATH exists (``seconds`` is then the longest it
waits). The drill holds a lock exactly as long as a step needs it that way.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from typing import Any

import attrs
from pyvider.resources import BaseResource, ResourceContext
from pyvider.schema import PvsSchema, a_map, a_num, a_str, s_resource

from driftsafe.provider import files

MAX_SECONDS = 3600
RELEASE_ENV = "LAB_DELAY_RELEASE_FILE"


@attrs.define
class DelayConfig:
    seconds: float
    triggers: dict[str, str] | None = None


@attrs.define
class DelayState:
    seconds: float
    triggers: dict[str, str] | None = None


Ctx = ResourceContext[DelayConfig, DelayState, Any]


async def _sleep(ctx: Ctx, seconds: float) -> None:
    # Sleep in slices so a Terraform Stop (Ctrl-C) or the release file ends the wait
    # promptly.
    release = os.environ.get(RELEASE_ENV)
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if ctx.stop_requested or (release and os.path.exists(release)):
            return
        await asyncio.sleep(min(left, 0.1 if release else 0.2))


class Delay(BaseResource[Any, DelayState, DelayConfig]):
    config_class = DelayConfig
    state_class = DelayState

    @classmethod
    @functools.cache  # schemas are frozen; pyvider asks several times per RPC
    def get_schema(cls) -> PvsSchema:
        return s_resource(
            attributes={
                "seconds": a_num("How long create and update take.", required=True),
                "triggers": a_map(
                    a_str(),
                    "Any change forces a new delay (replacement).",
                    optional=True,
                    requires_replace=True,
                ),
            }
        )

    async def _validate_config(self, config: DelayConfig) -> list[str]:
        if config.seconds is not None and not 0 <= float(config.seconds) <= MAX_SECONDS:
            return [f"seconds: must be between 0 and {MAX_SECONDS}, got {config.seconds}"]
        return []

    async def _create_apply(self, ctx: Ctx) -> tuple[DelayState, None]:
        planned = files.present(ctx.planned_state, "planned state")
        await _sleep(ctx, float(planned.seconds))
        return DelayState(seconds=planned.seconds, triggers=planned.triggers), None

    async def _update_apply(self, ctx: Ctx) -> tuple[DelayState, None]:
        return await self._create_apply(ctx)

    async def read(self, ctx: Ctx) -> DelayState | None:
        return ctx.state

    async def _delete_apply(self, ctx: Ctx) -> None:
        return None
