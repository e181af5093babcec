"""Terraform roots on each kind of backend the suite starts."""

from __future__ import annotations

import uuid
from pathlib import Path

from driftsafe.backends import make_bucket, make_lock_table

S3_BLOCK = """
terraform {{
  backend "s3" {{
    bucket                      = "{bucket}"
    key                         = "team/app.tfstate"
    region                      = "us-east-1"
    endpoints                   = {{ s3 = "{url}", dynamodb = "{url}" }}
    use_path_style              = true
    skip_credentials_validation = true
    skip_requesting_account_id  = true
    skip_metadata_api_check     = true
    skip_region_validation      = true
{locking}
  }}
}}
"""

HTTP_BLOCK = """
terraform {{
  backend "http" {{
    address        = "{url}/v1/states/{ws}"
    lock_address   = "{url}/v1/locks/{ws}"
    unlock_address = "{url}/v1/locks/{ws}"
    lock_method    = "LOCK"
    unlock_method  = "UNLOCK"
    username       = "driftsafe"
  }}
}}
"""

PG_BLOCK = """
terraform {{
  backend "pg" {{
    conn_str    = "{conn}"
    schema_name = "{schema}"
  }}
}}
"""

LOCAL_BLOCK = """
terraform {
  backend "local" {}
}
"""

RESOURCE = """
resource "terraform_data" "app" {
  input = "v1"
}
"""


def write_root(path: Path, block: str, body: str = RESOURCE) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "backend.tf").write_text(block)
    (path / "main.tf").write_text(body)
    return path


def s3_root(
    path: Path, url: str, *, lockfile: bool, table: bool, encrypted: bool = True
) -> tuple[Path, str]:
    """A root on a new versioned bucket of the moto server at ``url``; (root, bucket)."""
    bucket = f"tfstate-{uuid.uuid4().hex[:10]}"
    make_bucket(bucket, endpoint=url, encryption=encrypted)
    lines = []
    if lockfile:
        lines.append("    use_lockfile                = true")
    if table:
        make_lock_table(f"{bucket}-locks", endpoint=url)
        lines.append(f'    dynamodb_table              = "{bucket}-locks"')
    block = S3_BLOCK.format(bucket=bucket, url=url, locking="\n".join(lines))
    return write_root(path, block), bucket


ROOTS = ("s3-lockfile", "s3-dynamodb", "driftsafe-sqlite", "driftsafe-pg", "tf-pg", "local")
