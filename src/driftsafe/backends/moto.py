"""A local S3 and DynamoDB: moto in server mode on a loopback port, and the bucket and
lock table a Terraform ``s3`` backend needs (made through boto3, as on AWS)."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from driftsafe.engine import Process, RunResult
from driftsafe.errors import BackendError

# Any non-empty values do for moto; Terraform and boto3 both insist on having some.
TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "driftsafe-test",
    "AWS_SECRET_ACCESS_KEY": "driftsafe-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
_LISTENING = re.compile(r"Running on (http://127\.0\.0\.1:\d+)")


@dataclass
class MotoServer:
    """``moto_server -H 127.0.0.1 -p 0`` as a child process; stop it with :meth:`stop`."""

    url: str
    process: Process

    @classmethod
    def start(cls, *, timeout: float = 60) -> MotoServer:
        env = dict(os.environ)
        env.update(TEST_CREDENTIALS)
        proc = Process(
            [
                sys.executable,
                "-c",
                "from moto.server import main; main()",
                "-H",
                "127.0.0.1",
                "-p",
                "0",
            ],
            cwd=os.getcwd(),
            env=env,
            shown_env={},
        )
        if not proc.wait_for_output(_LISTENING, timeout=timeout):
            proc.kill()
            result = proc.wait(timeout=10)
            raise BackendError("moto server did not start:\n" + result.output[-2000:])
        match = next(m for line in proc.lines() if (m := _LISTENING.search(line.text)))
        return cls(match.group(1), proc)

    def stop(self) -> RunResult:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)

    def __enter__(self) -> MotoServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _client(
    service: str, endpoint: str | None, region: str, creds: Mapping[str, str] | None
) -> Any:
    import boto3

    creds = creds or {}
    return boto3.session.Session(
        aws_access_key_id=creds.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=creds.get("AWS_SECRET_ACCESS_KEY"),
        region_name=region,
    ).client(service, endpoint_url=endpoint)


def make_bucket(
    bucket: str,
    *,
    endpoint: str | None,
    region: str = "us-east-1",
    versioning: bool = True,
    encryption: bool = True,
    credentials: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Create ``bucket`` (versioned and AES256-encrypted by default); returns what
    GetBucketVersioning and GetBucketEncryption say afterwards."""
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = _client("s3", endpoint, region, credentials)
    try:
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region}
            )
        if versioning:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        if encryption:
            s3.put_bucket_encryption(
                Bucket=bucket,
                ServerSideEncryptionConfiguration={
                    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
                },
            )
        found: dict[str, Any] = {"Bucket": bucket}
        found["Versioning"] = s3.get_bucket_versioning(Bucket=bucket).get("Status", "Off")
        if encryption:
            found["Encryption"] = s3.get_bucket_encryption(Bucket=bucket)[
                "ServerSideEncryptionConfiguration"
            ]
        return found
    except (ClientError, BotoCoreError) as exc:
        raise BackendError(f"cannot make bucket {bucket}: {exc}") from exc


def make_lock_table(
    table: str,
    *,
    endpoint: str | None,
    region: str = "us-east-1",
    credentials: Mapping[str, str] | None = None,
) -> None:
    """The DynamoDB table Terraform's s3 backend locks in (hash key ``LockID``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        _client("dynamodb", endpoint, region, credentials).create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except (ClientError, BotoCoreError) as exc:
        raise BackendError(f"cannot make DynamoDB table {table}: {exc}") from exc
