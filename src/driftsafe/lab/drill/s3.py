"""The drill on S3: ``driftsafe lab run --backend s3``.

The stack's state lives in a versioned, encrypted bucket, locked with ``use_lockfile``
(a ``.tflock`` object). By default the bucket is on moto, started here on a loopback
port; ``--s3-endpoint URL`` with the usual AWS_* variables uses a real S3 endpoint.
What S3 cannot do (a server-side wait, an admin-only force-unlock, fencing) is not
faked: those checks end as "backend limitation, reproduced" from captured output.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from driftsafe.backends import MotoServer, S3Backend, make_bucket, read_backend
from driftsafe.errors import ConfigError, DriftsafeError
from driftsafe.lab.drill.backends import DrillBackend, StepFunc
from driftsafe.lab.drill.records import ApiCall, DrillError

if TYPE_CHECKING:
    from driftsafe.lab.drill.context import Drill
    from driftsafe.lab.evidence import Transcript

# moto accepts any non-empty credentials; Terraform and boto3 both want some.
MOTO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "drill",
    "AWS_SECRET_ACCESS_KEY": "drill-not-a-secret",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}

BACKEND_TF = """\
# State lives in S3 ({where}), versioned and encrypted, locked with a .tflock object
# (use_lockfile). Credentials are not written here: they come from AWS_* variables.
terraform {{
  backend "s3" {{
    bucket                      = "{bucket}"
    key                         = "lab/{env}/terraform.tfstate"
    region                      = "{region}"
    endpoints                   = {{ s3 = "{url}" }}
    use_path_style              = true
{lockfile}    encrypt                     = true
    skip_credentials_validation = true
    skip_requesting_account_id  = true
    skip_metadata_api_check     = true
    skip_region_validation      = true
  }}
}}
"""


class S3Bucket(DrillBackend):
    """A bucket made for this run, on moto (default) or on ``endpoint``."""

    name = "s3"

    def __init__(self, endpoint: str | None) -> None:
        self.endpoint = endpoint
        self.moto: MotoServer | None = None
        self.url = ""
        self.bucket = f"driftsafe-drill-{secrets.token_hex(4)}"
        self.region = os.environ.get("AWS_REGION") or os.environ.get(
            "AWS_DEFAULT_REGION", "us-east-1"
        )
        self.credentials: dict[str, str] = {}
        self.description = (
            f"S3 at {endpoint} (use_lockfile)"
            if endpoint
            else "S3 on moto, a local S3 started on loopback (use_lockfile)"
        )

    # -- set-up ------------------------------------------------------------------------

    def setup(self, d: Drill, say: Callable[[str], None]) -> None:
        s = "backend"
        say(f"driftsafe lab run: drill in {d.root} (state in S3)")
        d.ev.step(s, "Backend evidence: S3, versioned, locked with use_lockfile, encrypted")
        started = time.time()
        if self.endpoint is None:
            self.moto = MotoServer.start()
            self.url = self.moto.url
            self.credentials = dict(MOTO_CREDENTIALS)
            self.region = MOTO_CREDENTIALS["AWS_REGION"]
            d.ev.capture(
                s,
                "moto: a local S3, started on a loopback port",
                argv=["moto_server", "-H", "127.0.0.1", "-p", "0"],
                cwd=str(d.root),
                returncode=0,
                stdout=f"listening on {self.url}\n",
                started_at=started,
                ended_at=time.time(),
            )
        else:
            if not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
                raise ConfigError(
                    "--s3-endpoint needs AWS credentials in the environment "
                    "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
                )
            self.url = self.endpoint.rstrip("/")
        secret = self.credentials.get("AWS_SECRET_ACCESS_KEY") or os.environ.get(
            "AWS_SECRET_ACCESS_KEY"
        )
        if secret:
            d.ev.redact(secret)
        made = make_bucket(
            self.bucket,
            endpoint=self.url,
            region=self.region,
            credentials=self.credentials or None,
        )
        d.ev.capture(
            s,
            f"Create the bucket {self.bucket}: versioning on, AES256 by default",
            argv=["aws", "s3api", "create-bucket", "--bucket", self.bucket],
            cwd=self.url,
            returncode=0,
            stdout=json.dumps(made, indent=2, default=str) + "\n",
            started_at=started,
            ended_at=time.time(),
        )
        r, _t = d.ds(s, ["lab", "init", "stack", "--name", "lab"], "driftsafe lab init", cwd=d.root)
        if r.returncode != 0:
            raise DrillError("driftsafe lab init failed")
        where = "moto on loopback" if self.moto else self.url
        for env in ("staging", "prod"):
            lockfile = "" if d.lock_disabled else "    use_lockfile                = true\n"
            (d.env_dir(env) / "backend.tf").write_text(
                BACKEND_TF.format(
                    where=where,
                    bucket=self.bucket,
                    env=env,
                    region=self.region,
                    url=self.url,
                    lockfile=lockfile,
                )
            )

    def stop(self, d: Drill) -> None:
        if self.moto is None:
            return
        result = self.moto.stop()
        if d.ev.steps:
            result.stdout = result.stdout[-4000:]
            result.stderr = result.stderr[-4000:]
            d.ev.record(d.ev.steps[-1].id, result, title="moto (the local S3's request log, tail)")

    def tf_env(self, d: Drill, token: str | None) -> dict[str, str]:
        return dict(self.credentials)

    def ds_env(self, d: Drill) -> dict[str, str]:
        # No driftsafe server here: a DRIFTSAFE_SERVER from the caller must not leak in.
        return {"DRIFTSAFE_SERVER": "", "DRIFTSAFE_TOKEN": ""}

    # -- reading the bucket -------------------------------------------------------------

    def s3(self, d: Drill, env: str = "staging") -> S3Backend:
        return S3Backend(read_backend(d.env_dir(env)), self.credentials or None)

    def key(self, env: str) -> str:
        return f"lab/{env}/terraform.tfstate"

    def capture(
        self, d: Drill, step: str, title: str, argv: list[str], call: Callable[[], Any]
    ) -> tuple[Any, Transcript]:
        """Run one S3 call and keep it as evidence, shown as the aws CLI command."""
        started = time.time()
        try:
            result = call()
            text, rc = json.dumps(result, indent=2, default=str) + "\n", 0
        except (DriftsafeError, ValueError) as exc:
            result, text, rc = None, f"{exc}\n", 1
        except Exception as exc:  # botocore's errors: kept as the command's failure
            if type(exc).__module__.split(".")[0] not in ("botocore", "boto3"):
                raise
            result, text, rc = None, f"{exc}\n", 1
        tr = d.ev.capture(
            step,
            title,
            argv=["aws", "s3api", *argv],
            cwd=self.url,
            returncode=rc,
            stdout=text if rc == 0 else "",
            stderr=text if rc else "",
            started_at=started,
            ended_at=time.time(),
        )
        return result, tr

    def lock_entry(self, d: Drill, step: str, env: str) -> ApiCall:
        key = f"{self.key(env)}.tflock"
        client = self.s3(d, env).s3()

        def read() -> dict[str, Any]:
            found = client.get_object(Bucket=self.bucket, Key=key)
            info: dict[str, Any] = json.loads(found["Body"].read())
            return info

        info, tr = self.capture(
            d,
            step,
            "The lock entry while the holder applies: the .tflock object",
            ["get-object", "--bucket", self.bucket, "--key", key, "/dev/stdout"],
            read,
        )
        lock = {
            "id": (info or {}).get("ID"),
            "who": (info or {}).get("Who"),
            "operation": (info or {}).get("Operation"),
            "created": (info or {}).get("Created"),
        }
        return ApiCall(200 if info else 404, {"locked": bool(info), "lock": lock}, tr)

    def object_versions(
        self, d: Drill, step: str, env: str, title: str
    ) -> tuple[list[dict[str, Any]], Transcript]:
        """ListObjectVersions of ``env``'s state, newest first, each with its serial."""
        s3 = self.s3(d, env)
        client = s3.s3()

        def listing() -> list[dict[str, Any]]:
            out = []
            for v in reversed(s3.object_versions("default")):
                body = client.get_object(
                    Bucket=self.bucket, Key=v["Key"], VersionId=v["VersionId"]
                )["Body"].read()
                try:
                    serial = json.loads(body).get("serial")
                except ValueError:
                    serial = None
                out.append(
                    {
                        "VersionId": v["VersionId"],
                        "LastModified": v["LastModified"],
                        "Size": v["Size"],
                        "IsLatest": v.get("IsLatest"),
                        "serial": serial,
                    }
                )
            return out

        found, tr = self.capture(
            d,
            step,
            title,
            ["list-object-versions", "--bucket", self.bucket, "--prefix", self.key(env)],
            listing,
        )
        return list(found or []), tr

    def save_version(self, d: Drill, env: str, version_id: str, name: str) -> str:
        """One object version of ``env``'s state saved as a file (for `state diff`)."""
        client = self.s3(d, env).s3()
        body = client.get_object(Bucket=self.bucket, Key=self.key(env), VersionId=version_id)[
            "Body"
        ].read()
        path = d.root / "s3-versions" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(body)
        return str(path)

    def mark_before_resolution(self, d: Drill, step: str) -> None:
        listed, _tr = self.object_versions(
            d, step, "staging", "Object versions of staging's state before the resolution"
        )
        if listed:
            d.figures["s3_before_resolution"] = listed[0]
            d.figures["serial_before_resolution"] = listed[0].get("serial")

    # -- steps -------------------------------------------------------------------------

    def step_overrides(self) -> dict[str, StepFunc]:
        from driftsafe.lab.drill import steps_s3

        return {
            "backend": steps_s3.step_backend,
            "waiting": steps_s3.step_waiting,
            "crash": steps_s3.step_crash,
            "secrets": steps_s3.step_secrets,
            "versions": steps_s3.step_versions,
            "reflection": steps_s3.step_reflection,
        }

    def finish(self, d: Drill) -> None:
        from driftsafe.lab.drill.steps_s3 import comparison_table

        d.ev.preface.append(comparison_table(d))
