"""``lab_release`` (immutable, content-addressed) and ``lab_symlink`` (the mutable pointer).

A release is a read-only directory ``base_dir/releases/<release_id>`` whose name
is a hash prefix of its content: any content change is a new release (replacement,
meant for ``create_before_destroy``), and the symlink moves to it atomically.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from typing import Any

import attrs
from pyvider.cty import CtyValue
from pyvider.exceptions import ResourceError
from pyvider.resources import BaseResource, ResourceContext
from pyvider.schema import PvsSchema, a_str, s_resource

from driftsafe.provider import files

CONTENT_FILE = "content"
ID_LENGTH = 12


def release_id(content: str) -> str:
    return files.sha256_hex(content)[:ID_LENGTH]


def release_path(base_dir: str, rid: str) -> str:
    return os.path.join(base_dir, "releases", rid)


@attrs.define
class ReleaseConfig:
    base_dir: str
    content: str


@attrs.define
class ReleaseState:
    base_dir: str
    content: str | None = None
    release_id: str | None = None
    path: str | None = None


ReleaseCtx = ResourceContext[ReleaseConfig, ReleaseState, Any]


def _make_writable(path: str) -> None:
    # Releases are read-only on purpose; deleting one needs write permission back.
    for root, dirs, names in os.walk(path):
        os.chmod(root, 0o755)
        for name in names:
            os.chmod(os.path.join(root, name), 0o644)
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)


def _remove_tree(path: str) -> None:
    if not os.path.lexists(path):
        return
    _make_writable(path)
    shutil.rmtree(path)


class Release(BaseResource[Any, ReleaseState, ReleaseConfig]):
    config_class = ReleaseConfig
    state_class = ReleaseState

    @classmethod
    @functools.cache  # schemas are frozen; pyvider asks several times per RPC
    def get_schema(cls) -> PvsSchema:
        return s_resource(
            attributes={
                "base_dir": a_str(
                    "Directory holding releases/ ; changing it replaces the release.",
                    required=True,
                    requires_replace=True,
                ),
                "content": a_str(
                    "Release content; any change is a new release (replacement).",
                    required=True,
                    requires_replace=True,
                ),
                "release_id": a_str("Hash prefix of the content.", computed=True),
                "path": a_str("The read-only release directory.", computed=True),
            }
        )

    async def _validate_config(self, config: ReleaseConfig) -> list[str]:
        if config.base_dir is not None and not config.base_dir:
            return ["base_dir: must not be empty"]
        return []

    async def _create(self, ctx: ReleaseCtx, base_plan: dict[str, Any]) -> tuple[Any, None]:
        content, base_dir = base_plan.get("content"), base_plan.get("base_dir")
        if isinstance(content, str) and isinstance(base_dir, str):
            rid = release_id(content)
            base_plan["release_id"] = rid
            base_plan["path"] = release_path(base_dir, rid)
        else:
            schema = self.get_schema().block.attributes
            base_plan["release_id"] = CtyValue.unknown(schema["release_id"].type)
            base_plan["path"] = CtyValue.unknown(schema["path"].type)
        return base_plan, None

    async def _create_apply(self, ctx: ReleaseCtx) -> tuple[ReleaseState, None]:
        planned = files.present(ctx.planned_state, "planned state")
        content = files.present(planned.content, "planned content")
        rid = release_id(content)
        final = release_path(planned.base_dir, rid)
        try:
            if not (os.path.isdir(final) and self._matches(final, content)):
                self._build(final, rid, content)
        except OSError as exc:
            raise ResourceError(f"cannot create release {final}: {exc}") from exc
        return (
            ReleaseState(
                base_dir=planned.base_dir, content=planned.content, release_id=rid, path=final
            ),
            None,
        )

    @staticmethod
    def _build(final: str, rid: str, content: str) -> None:
        parent = os.path.dirname(final)
        os.makedirs(parent, exist_ok=True)
        # Built aside and renamed into place: a crash mid-create never leaves a
        # half-written release under its final name.
        staging = tempfile.mkdtemp(prefix=f".{rid}-", dir=parent)
        with open(os.path.join(staging, CONTENT_FILE), "w", encoding="utf-8") as fh:
            fh.write(content)
        os.chmod(os.path.join(staging, CONTENT_FILE), 0o444)
        os.chmod(staging, 0o555)
        if os.path.lexists(final):
            # A tampered release with the same id: move it aside first, so the
            # final name is missing only between two renames.
            trash = tempfile.mkdtemp(prefix=f".{rid}-old-", dir=parent)
            os.rename(final, os.path.join(trash, "release"))
            os.rename(staging, final)
            _remove_tree(trash)
        else:
            os.rename(staging, final)

    @staticmethod
    def _read_content(path: str) -> str | None:
        try:
            with open(os.path.join(path, CONTENT_FILE), encoding="utf-8") as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    def _matches(self, path: str, content: str) -> bool:
        return self._read_content(path) == content

    async def read(self, ctx: ReleaseCtx) -> ReleaseState | None:
        prior = ctx.state
        if prior is None or prior.path is None or not os.path.isdir(prior.path):
            return None
        actual = self._read_content(prior.path)
        # A tampered release reports its real content: it no longer matches its
        # hash, and since content forces replacement the next plan replaces it.
        return ReleaseState(
            base_dir=prior.base_dir,
            content=actual if actual is not None else "",
            release_id=prior.release_id,
            path=prior.path,
        )

    async def _delete_apply(self, ctx: ReleaseCtx) -> None:
        state = ctx.state
        if state is None or state.path is None:
            return
        actual = self._read_content(state.path)
        if actual is not None and state.content is not None and actual != state.content:
            # Replacing a tampered release rebuilds the same content-addressed
            # directory before the old object is destroyed; that directory now
            # belongs to the new object, so the old one leaves it alone.
            return
        try:
            _remove_tree(state.path)
        except OSError as exc:
            raise ResourceError(f"cannot remove release {state.path}: {exc}") from exc


@attrs.define
class SymlinkConfig:
    path: str
    target: str


@attrs.define
class SymlinkState:
    path: str
    target: str | None = None


SymlinkCtx = ResourceContext[SymlinkConfig, SymlinkState, Any]


def point_symlink(path: str, target: str) -> None:
    """Make ``path`` a symlink to ``target`` by renaming a fresh link over it.

    rename(2) is atomic, so a reader sees the old target or the new one, never
    a missing or dangling ``current``.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    if os.path.isdir(path) and not os.path.islink(path):
        raise ResourceError(f"path: {path} is a real directory, not a symlink; remove it first")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, path)


class Symlink(BaseResource[Any, SymlinkState, SymlinkConfig]):
    config_class = SymlinkConfig
    state_class = SymlinkState

    @classmethod
    @functools.cache  # schemas are frozen; pyvider asks several times per RPC
    def get_schema(cls) -> PvsSchema:
        return s_resource(
            attributes={
                "path": a_str(
                    "Where the link lives; changing it replaces the link.",
                    required=True,
                    requires_replace=True,
                ),
                "target": a_str("What the link points to; moved atomically.", required=True),
            }
        )

    async def _validate_config(self, config: SymlinkConfig) -> list[str]:
        errors = []
        if config.path is not None and not config.path:
            errors.append("path: must not be empty")
        if config.target is not None and not config.target:
            errors.append("target: must not be empty")
        return errors

    def _apply(self, ctx: SymlinkCtx) -> SymlinkState:
        planned = files.present(ctx.planned_state, "planned state")
        try:
            point_symlink(planned.path, files.present(planned.target, "planned target"))
        except OSError as exc:
            raise ResourceError(f"cannot point {planned.path} at {planned.target}: {exc}") from exc
        return SymlinkState(path=planned.path, target=planned.target)

    async def _create_apply(self, ctx: SymlinkCtx) -> tuple[SymlinkState, None]:
        return self._apply(ctx), None

    async def _update_apply(self, ctx: SymlinkCtx) -> tuple[SymlinkState, None]:
        return self._apply(ctx), None

    async def read(self, ctx: SymlinkCtx) -> SymlinkState | None:
        prior = ctx.state
        if prior is None:
            return None
        try:
            target = os.readlink(prior.path)
        except OSError:
            # Missing, or replaced by a regular file: either way the link is gone.
            return None
        return SymlinkState(path=prior.path, target=target)

    async def _delete_apply(self, ctx: SymlinkCtx) -> None:
        state = ctx.state
        if state is not None and os.path.islink(state.path):
            os.unlink(state.path)
