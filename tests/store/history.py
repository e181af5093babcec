"""A state history for store tests: resources with realistic, incompressible values
(ids, hashes), each new version changing one resource's attributes."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any


class History:
    def __init__(self, resources: int = 60, seed: int = 1, lineage: str = "L") -> None:
        self.rng = random.Random(seed)
        self.lineage = lineage
        self.serial = 0
        self.resources = [self._resource(i) for i in range(resources)]

    def _resource(self, i: int) -> dict[str, Any]:
        rng = self.rng
        rid = f"i-{rng.getrandbits(64):016x}"
        return {
            "mode": "managed",
            "type": "aws_instance",
            "name": f"app_{i}",
            "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
            "instances": [
                {
                    "schema_version": 1,
                    "attributes": {
                        "id": rid,
                        "arn": f"arn:aws:ec2:eu-west-1:123456789012:instance/{rid}",
                        "ami": f"ami-{rng.getrandbits(48):012x}",
                        "instance_type": "t3.micro",
                        "private_ip": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}",
                        "tags": {"Name": f"app-{i}", "env": "prod"},
                        "user_data_hash": hashlib.sha256(str(rng.random()).encode()).hexdigest(),
                    },
                    "sensitive_attributes": [],
                }
            ],
        }

    def next(self) -> bytes:
        """The next version: serial + 1, one resource's attributes changed."""
        self.serial += 1
        if self.serial > 1:
            attrs = self.rng.choice(self.resources)["instances"][0]["attributes"]
            attrs["tags"]["revision"] = str(self.serial)
            attrs["user_data_hash"] = hashlib.sha256(str(self.serial).encode()).hexdigest()
        state = {
            "version": 4,
            "terraform_version": "1.15.5",
            "serial": self.serial,
            "lineage": self.lineage,
            "outputs": {},
            "resources": self.resources,
        }
        return json.dumps(state, indent=2).encode() + b"\n"
