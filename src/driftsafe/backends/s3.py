"""Terraform's ``s3`` backend, read through boto3: the ``.tflock`` object (``use_lockfile``)
or the DynamoDB lock item (``dynamodb_table``), object versions, bucket encryption."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from driftsafe.backends.base import HeldLock, LockState, Measured, parse_go_time
from driftsafe.backends.config import BackendConfig
from driftsafe.errors import BackendError


def _client_error() -> tuple[type[Exception], ...]:
    # Imported when used: importing this module must not import botocore.
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str((response.get("Error") or {}).get("Code") or type(exc).__name__)


@dataclass
class S3Backend:
    config: BackendConfig
    env: Mapping[str, str] | None = None

    # -- configuration ------------------------------------------------------------------

    @property
    def bucket(self) -> str:
        bucket = self.config.get("bucket")
        if not bucket:
            raise BackendError("the s3 backend block has no bucket")
        return str(bucket)

    @property
    def key(self) -> str:
        key = self.config.get("key")
        if not key:
            raise BackendError("the s3 backend block has no key")
        return str(key)

    @property
    def use_lockfile(self) -> bool:
        return bool(self.config.get("use_lockfile", False))

    @property
    def table(self) -> str | None:
        table = self.config.get("dynamodb_table")
        return str(table) if table else None

    def state_key(self, workspace: str) -> str:
        if workspace == "default":
            return self.key
        prefix = self.config.get("workspace_key_prefix", "env:")
        return f"{prefix}/{workspace}/{self.key}"

    def describe(self) -> str:
        locks = []
        if self.use_lockfile:
            locks.append("use_lockfile (a .tflock object)")
        if self.table:
            locks.append(f"DynamoDB table {self.table}")
        how = " and ".join(locks) if locks else "no locking configured"
        return f"s3 bucket {self.bucket}, key {self.key}: {how}"

    def _endpoint(self, service: str) -> str | None:
        endpoints = self.config.get("endpoints", {})
        if isinstance(endpoints, Mapping) and endpoints.get(service):
            return str(endpoints[service])
        legacy = {"s3": "endpoint", "dynamodb": "dynamodb_endpoint"}[service]
        if self.config.get(legacy):
            return str(self.config.get(legacy))
        env = os.environ if self.env is None else self.env
        return env.get(f"AWS_ENDPOINT_URL_{service.upper()}") or env.get("AWS_ENDPOINT_URL")

    def _client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        # Credentials as Terraform takes them: the block, else the given environment
        # (None: boto3's own chain, which reads this process's environment).
        env = self.env or {}
        session = boto3.session.Session(
            aws_access_key_id=self.config.get("access_key", env.get("AWS_ACCESS_KEY_ID")),
            aws_secret_access_key=self.config.get("secret_key", env.get("AWS_SECRET_ACCESS_KEY")),
            aws_session_token=self.config.get("token", env.get("AWS_SESSION_TOKEN")),
            profile_name=self.config.get("profile"),
            region_name=self.config.get("region", env.get("AWS_REGION")),
        )
        path_style = self.config.get("use_path_style", self.config.get("force_path_style", False))
        options = Config(
            s3={"addressing_style": "path" if path_style else "auto"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=30,
        )
        return session.client(service, endpoint_url=self._endpoint(service), config=options)

    def s3(self) -> Any:
        return self._client("s3")

    def dynamodb(self) -> Any:
        return self._client("dynamodb")

    def scratch_config(self, name: str) -> BackendConfig:
        return self.config

    # -- locks -----------------------------------------------------------------------

    def _lock_id(self, workspace: str) -> str:
        return f"{self.bucket}/{self.state_key(workspace)}"

    def read_lock(self, workspace: str) -> LockState:
        errors = _client_error()
        key = self.state_key(workspace)
        where = []
        held: HeldLock | None = None
        try:
            if self.use_lockfile:
                where.append(f"s3://{self.bucket}/{key}.tflock")
                try:
                    found = self.s3().get_object(Bucket=self.bucket, Key=f"{key}.tflock")
                except errors as exc:
                    if _code(exc) not in ("NoSuchKey", "404", "NotFound"):
                        raise
                else:
                    info = json.loads(found["Body"].read() or b"{}")
                    modified = found.get("LastModified")
                    held = HeldLock(
                        info,
                        parse_go_time(str(info.get("Created", "")))
                        or (modified.timestamp() if modified else None),
                        {"lock_object": f"s3://{self.bucket}/{key}.tflock"},
                    )
            if self.table and held is None:
                item_id = self._lock_id(workspace)
                where.append(f"DynamoDB {self.table} item LockID={item_id}")
                item = (
                    self.dynamodb()
                    .get_item(
                        TableName=self.table,
                        Key={"LockID": {"S": item_id}},
                        ConsistentRead=True,
                    )
                    .get("Item")
                )
                if item and "Info" in item:
                    info = json.loads(item["Info"]["S"])
                    held = HeldLock(
                        info,
                        parse_go_time(str(info.get("Created", ""))),
                        {"lock_item": {"table": self.table, "LockID": item_id}},
                    )
        except errors as exc:
            raise BackendError(f"cannot read the s3 backend's lock: {exc}") from exc
        except ValueError as exc:
            raise BackendError(f"the s3 backend's lock entry is not LockInfo JSON: {exc}") from exc
        note = "" if where else "this s3 backend has no locking (neither use_lockfile nor a table)"
        return LockState("s3", workspace, "; ".join(where) or "none", bool(where), held, note)

    def break_lock(self, workspace: str, lock_id: str | None) -> str:
        errors = _client_error()
        key = self.state_key(workspace)
        done = []
        try:
            current = self.read_lock(workspace).held
            if lock_id and current is not None and current.id != lock_id:
                raise BackendError(
                    f"the lock is now held by {current.info.get('Who')} (ID {current.id}), "
                    f"not {lock_id}: nothing broken"
                )
            if self.use_lockfile:
                self.s3().delete_object(Bucket=self.bucket, Key=f"{key}.tflock")
                done.append(f"deleted s3://{self.bucket}/{key}.tflock")
            if self.table:
                self.dynamodb().delete_item(
                    TableName=self.table, Key={"LockID": {"S": self._lock_id(workspace)}}
                )
                done.append(f"deleted DynamoDB item {self._lock_id(workspace)} from {self.table}")
        except errors as exc:
            raise BackendError(f"cannot break the s3 backend's lock: {exc}") from exc
        return "; ".join(done) or "nothing to break: no locking configured"

    # -- versions, encryption, cleanup --------------------------------------------------

    def object_versions(self, workspace: str) -> list[dict[str, Any]]:
        """ListObjectVersions of the state object, oldest first (delete markers left out).

        S3 lists a key's versions newest first, in the order they were stored; that
        order is kept (LastModified has whole-second precision: writes within one
        second tie)."""
        key = self.state_key(workspace)
        found: list[dict[str, Any]] = []
        paginator = self.s3().get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
            found += [v for v in page.get("Versions", []) if v.get("Key") == key]
        return found[::-1]

    def versions(self, workspace: str) -> list[bytes] | None:
        errors = _client_error()
        try:
            client = self.s3()
            listed = self.object_versions(workspace)
            return [
                client.get_object(Bucket=self.bucket, Key=v["Key"], VersionId=v["VersionId"])[
                    "Body"
                ].read()
                for v in listed
            ]
        except errors as exc:
            raise BackendError(f"cannot list the state's object versions: {exc}") from exc

    def bucket_versioning(self) -> str:
        return str(self.s3().get_bucket_versioning(Bucket=self.bucket).get("Status") or "Off")

    def encryption(self, workspace: str) -> Measured:
        errors = _client_error()
        client = self.s3()
        facts = []
        try:
            rules = client.get_bucket_encryption(Bucket=self.bucket)[
                "ServerSideEncryptionConfiguration"
            ]["Rules"]
            algos = [
                r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules
            ]
            facts.append(f"bucket default encryption: {', '.join(str(a) for a in algos)}")
        except errors as exc:
            if "ServerSideEncryptionConfigurationNotFound" not in _code(exc):
                raise BackendError(f"cannot read the bucket's encryption: {exc}") from exc
            algos = []
            facts.append("bucket default encryption: none")
        try:
            head = client.head_object(Bucket=self.bucket, Key=self.state_key(workspace))
            sse = head.get("ServerSideEncryption")
            facts.append(f"state object ServerSideEncryption: {sse or 'none'}")
        except errors as exc:
            sse = None
            facts.append(f"state object: {_code(exc)}")
        setting = bool(self.config.get("encrypt") or self.config.get("kms_key_id"))
        facts.append(f"backend encrypt = {str(setting).lower()}")
        ok = bool(sse or algos or setting)
        return Measured(ok, "; ".join(facts))

    def purge(self, workspace: str) -> list[str]:
        """Every object version and delete marker of the workspace, and its lock items."""
        if workspace == "default":
            raise BackendError("refusing to purge the default workspace")
        errors = _client_error()
        removed = []
        prefix = f"{self.config.get('workspace_key_prefix', 'env:')}/{workspace}/"
        try:
            client = self.s3()
            paginator = client.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    client.delete_object(Bucket=self.bucket, Key=v["Key"], VersionId=v["VersionId"])
                    removed.append(f"s3://{self.bucket}/{v['Key']}?versionId={v['VersionId']}")
            if self.table:
                lock_id = self._lock_id(workspace)
                for item in (lock_id, f"{lock_id}-md5"):
                    self.dynamodb().delete_item(TableName=self.table, Key={"LockID": {"S": item}})
                    removed.append(f"DynamoDB {self.table} item {item}")
        except errors as exc:
            raise BackendError(f"cannot remove the scratch workspace's objects: {exc}") from exc
        return removed
