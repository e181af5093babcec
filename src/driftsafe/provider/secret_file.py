"""``lab_secret_file``: a file holding a secret that reaches the file and never the state.

``secret`` is write-only: Terraform sends it on apply and never stores it, so
the provider cannot tell when it changed. ``secret_version`` is the companion a
user bumps to have the file rewritten.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import attrs
from pyvider.exceptions import ResourceError
from pyvider.resources import BaseResource, ResourceContext
from pyvider.schema import PvsSchema, a_num, a_str, s_resource

from driftsafe.provider import files

DEFAULT_MODE = "0600"
MISSING_SECRET = "secret: no value was given, so the secret file cannot be written"
MISSING_SECRET_DETAIL = (
    "Set the secret (for the lab stack: export TF_VAR_app_secret=...). It is write-only:"
    " Terraform never stores it, so it must be given on every apply that writes the file."
)


@attrs.define
class SecretFileConfig:
    path: str
    mode: str | None = None
    secret: str | None = None
    secret_version: float | None = None


@attrs.define
class SecretFileState:
    path: str
    mode: str | None = None
    secret: str | None = None
    secret_version: float | None = None


Ctx = ResourceContext[SecretFileConfig, SecretFileState, Any]


class SecretFile(BaseResource[Any, SecretFileState, SecretFileConfig]):
    config_class = SecretFileConfig
    state_class = SecretFileState

    @classmethod
    @functools.cache  # schemas are frozen; pyvider asks several times per RPC
    def get_schema(cls) -> PvsSchema:
        return s_resource(
            attributes={
                "path": a_str(
                    "File path; changing it replaces the file.",
                    required=True,
                    requires_replace=True,
                ),
                "mode": a_str('Octal file mode (default "0600").', optional=True, computed=True),
                "secret": a_str(
                    "The secret (write-only: it is never stored in state).",
                    optional=True,
                    sensitive=True,
                    write_only=True,
                ),
                "secret_version": a_num(
                    "Bump to rewrite the file with the current secret.", optional=True
                ),
            }
        )

    async def _validate_config(self, config: SecretFileConfig) -> list[str]:
        errors: list[str] = []
        if config.path is not None and not config.path:
            errors.append("path: must not be empty")
        if (err := files.mode_error("mode", config.mode)) is not None:
            errors.append(err)
        return errors

    def _fill_plan(self, ctx: Ctx, base_plan: dict[str, Any], writes: bool) -> None:
        config = ctx.config
        # An omitted mode means the default, so a hand chmod is reverted, not adopted.
        if config is not None and config.mode is None:
            base_plan["mode"] = DEFAULT_MODE
        # Fail at plan time, not halfway through an apply, when the file must be
        # written and there is nothing to write.
        if (
            writes
            and config is not None
            and config.secret is None
            and not ctx.is_field_unknown("secret")
        ):
            ctx.add_attribute_error("secret", MISSING_SECRET, MISSING_SECRET_DETAIL)

    async def _create(self, ctx: Ctx, base_plan: dict[str, Any]) -> tuple[Any, None]:
        self._fill_plan(ctx, base_plan, writes=True)
        return base_plan, None

    async def _update(self, ctx: Ctx, base_plan: dict[str, Any]) -> tuple[Any, None]:
        prior = ctx.state
        rewrite = prior is None or base_plan.get("secret_version") != prior.secret_version
        self._fill_plan(ctx, base_plan, writes=rewrite)
        return base_plan, None

    def _state(self, planned: Any) -> SecretFileState:
        return SecretFileState(
            path=planned.path,
            mode=planned.mode,
            secret=None,
            secret_version=planned.secret_version,
        )

    def _write_secret(self, ctx: Ctx) -> None:
        secret = ctx.config.secret if ctx.config is not None else None
        if secret is None:
            raise ResourceError(f"{MISSING_SECRET}. {MISSING_SECRET_DETAIL}")
        planned = files.present(ctx.planned_state, "planned state")
        try:
            mode = int(planned.mode or DEFAULT_MODE, 8)
            files.write_atomic(planned.path, secret.encode("utf-8"), mode)
        except OSError as exc:
            raise ResourceError(f"cannot write {planned.path}: {exc.strerror}") from exc

    async def _create_apply(self, ctx: Ctx) -> tuple[SecretFileState, None]:
        self._write_secret(ctx)
        return self._state(files.present(ctx.planned_state, "planned state")), None

    async def _update_apply(self, ctx: Ctx) -> tuple[SecretFileState, None]:
        planned, prior = files.present(ctx.planned_state, "planned state"), ctx.state
        if prior is None or planned.secret_version != prior.secret_version:
            self._write_secret(ctx)
        elif planned.mode != prior.mode:
            os.chmod(planned.path, int(planned.mode or DEFAULT_MODE, 8))
        return self._state(planned), None

    async def read(self, ctx: Ctx) -> SecretFileState | None:
        prior = ctx.state
        if prior is None:
            return None
        try:
            mode = files.file_mode(prior.path)
        except FileNotFoundError:
            return None
        return SecretFileState(
            path=prior.path, mode=mode, secret=None, secret_version=prior.secret_version
        )

    async def _delete_apply(self, ctx: Ctx) -> None:
        if ctx.state is not None:
            files.remove_file(ctx.state.path)
