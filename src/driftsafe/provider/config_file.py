"""``lab_config_file``: a mutable config file whose real content and mode are read back."""

from __future__ import annotations

import functools
from typing import Any

import attrs
from pyvider.cty import CtyValue
from pyvider.exceptions import ResourceError
from pyvider.resources import BaseResource, ResourceContext
from pyvider.schema import PvsSchema, a_map, a_str, s_resource

from driftsafe.provider import files

DEFAULT_MODE = "0644"


@attrs.define
class ConfigFileConfig:
    path: str
    values: dict[str, str] | None = None
    content: str | None = None
    mode: str | None = None


@attrs.define
class ConfigFileState:
    path: str
    values: dict[str, str] | None = None
    content: str | None = None
    mode: str | None = None


def _known(value: Any) -> bool:
    return not (isinstance(value, CtyValue) and value.is_unknown)


def read_config_file(path: str, *, with_values: bool) -> ConfigFileState | None:
    """The file as it really is, or None when it is gone (Terraform then plans a create)."""
    try:
        with open(path, encoding="utf-8") as handle:
            content = handle.read()
    except FileNotFoundError:
        return None
    return ConfigFileState(
        path=path,
        values=files.parse_values(content) if with_values else None,
        content=content,
        mode=files.file_mode(path),
    )


Ctx = ResourceContext[ConfigFileConfig, ConfigFileState, Any]


class ConfigFile(BaseResource[Any, ConfigFileState, ConfigFileConfig]):
    config_class = ConfigFileConfig
    state_class = ConfigFileState

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
                "values": a_map(
                    a_str(),
                    "Settings written as sorted `key = value` lines (or set `content`).",
                    optional=True,
                ),
                "content": a_str(
                    "Verbatim content; computed from `values` when those are set.",
                    optional=True,
                    computed=True,
                ),
                "mode": a_str('Octal file mode, like "0644".', optional=True, computed=True),
            }
        )

    async def _validate_config(self, config: ConfigFileConfig) -> list[str]:
        errors: list[str] = []
        if config.values is not None and config.content is not None:
            errors.append("values, content: set either values or content, not both")
        if config.path is not None and not config.path:
            errors.append("path: must not be empty")
        if (err := files.mode_error("mode", config.mode)) is not None:
            errors.append(err)
        errors.extend(files.values_errors("values", config.values))
        return errors

    def _fill_plan(self, ctx: Ctx, base_plan: dict[str, Any]) -> None:
        config = ctx.config
        values = base_plan.get("values")
        if config is not None and config.content is None and not ctx.is_field_unknown("content"):
            if ctx.is_field_unknown("values") or not _known(values):
                base_plan["content"] = CtyValue.unknown(
                    self.get_schema().block.attributes["content"].type
                )
            else:
                base_plan["content"] = files.render_values(values or {})
        # mode is computed only to show its default: an omitted mode means the
        # default, so a hand chmod is reverted rather than adopted.
        if config is not None and config.mode is None:
            base_plan["mode"] = DEFAULT_MODE

    async def _create(self, ctx: Ctx, base_plan: dict[str, Any]) -> tuple[Any, None]:
        self._fill_plan(ctx, base_plan)
        return base_plan, None

    async def _update(self, ctx: Ctx, base_plan: dict[str, Any]) -> tuple[Any, None]:
        # Without config the proposed content is the prior (possibly hand-edited)
        # one; recompute it from values so the plan reverts the edit.
        self._fill_plan(ctx, base_plan)
        return base_plan, None

    def _write(self, ctx: Ctx) -> ConfigFileState:
        planned = files.present(ctx.planned_state, "planned state")
        content = planned.content or ""
        mode = planned.mode or DEFAULT_MODE
        try:
            files.write_atomic(planned.path, content.encode("utf-8"), int(mode, 8))
        except OSError as exc:
            raise ResourceError(f"cannot write {planned.path}: {exc.strerror}") from exc
        return ConfigFileState(path=planned.path, values=planned.values, content=content, mode=mode)

    async def _create_apply(self, ctx: Ctx) -> tuple[ConfigFileState, None]:
        return self._write(ctx), None

    async def _update_apply(self, ctx: Ctx) -> tuple[ConfigFileState, None]:
        return self._write(ctx), None

    async def read(self, ctx: Ctx) -> ConfigFileState | None:
        prior = ctx.state
        if prior is None:
            return None
        return read_config_file(prior.path, with_values=prior.values is not None)

    async def import_state(self, ctx: Ctx, import_id: str) -> ConfigFileState | None:
        # The id is kept as written: it must equal the configured path, or the
        # next plan would replace the file it just adopted.
        state = read_config_file(import_id, with_values=True)
        if state is not None and not state.values:
            # Not a key = value file: adopt it as verbatim content.
            state.values = None
        return state

    async def _delete_apply(self, ctx: Ctx) -> None:
        if ctx.state is not None:
            files.remove_file(ctx.state.path)
