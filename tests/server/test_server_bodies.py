"""Big state bodies through the real server: read into one buffer when their length
is declared, joined from chunks when it is not; stored and served byte for byte."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator

import httpx
from srvhelpers import Srv


def big_state(serial: int) -> bytes:
    filler = os.urandom(1024 * 1024).hex()  # 2 MiB of hex: over the preallocation size
    return json.dumps(
        {
            "version": 4,
            "terraform_version": "1.15.5",
            "serial": serial,
            "lineage": "big",
            "outputs": {"blob": {"value": filler, "type": "string"}},
            "resources": [],
        }
    ).encode()


def test_big_bodies_with_and_without_content_length(srv: Srv) -> None:
    declared, chunked = big_state(1), big_state(2)

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(chunked), 100_000):
            yield chunked[start : start + 100_000]

    with httpx.Client(base_url=srv.url, auth=("t", srv.writer), timeout=60) as client:
        md5 = base64.b64encode(hashlib.md5(declared).digest()).decode()
        client.post(
            "/v1/states/bodies", content=declared, headers={"Content-MD5": md5}
        ).raise_for_status()
        assert client.get("/v1/states/bodies").content == declared
        # A generator body goes out chunked, without Content-Length.
        sent = client.post("/v1/states/bodies", content=pieces())
        sent.raise_for_status()
        assert client.get("/v1/states/bodies").content == chunked
        # A body whose Content-MD5 does not match is refused: nothing written.
        bad = client.post("/v1/states/bodies", content=big_state(3), headers={"Content-MD5": md5})
        assert bad.status_code == 400
        assert client.get("/v1/states/bodies").content == chunked
