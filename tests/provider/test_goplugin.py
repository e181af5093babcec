"""The pieces of a provider start that Terraform never shows: the launcher's request,
protocol negotiation, the TLS certificate, and socket housekeeping."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from driftsafe.provider import goplugin, launcher


def test_a_request_carries_argv_env_and_cwd_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = tmp_path / "dir with spaces"
    odd.mkdir()
    monkeypatch.chdir(odd)
    monkeypatch.setenv("TF_VAR_x", "a=b=c")
    os.environb[b"NOT_UTF8"] = b"\xff\xfe"
    try:
        body = launcher.encode_request(["provide", "--flag=1", "two words"], 12.5)
        args, cwd, started, env = launcher.decode_request(body)
    finally:
        del os.environb[b"NOT_UTF8"]
    assert args == ["provide", "--flag=1", "two words"]
    assert cwd == str(odd) and started == 12.5
    assert env["TF_VAR_x"] == "a=b=c"
    assert os.fsencode(env["NOT_UTF8"]) == b"\xff\xfe"
    with pytest.raises(ValueError):
        launcher.decode_request(b"other\0" + body)


def test_protocol_6_is_negotiated_or_refused_clearly() -> None:
    assert goplugin.negotiate_version({"PLUGIN_PROTOCOL_VERSIONS": "5,6"}) == 6
    assert goplugin.negotiate_version({}) == 6
    with pytest.raises(goplugin.PluginError, match="protocol 6"):
        goplugin.negotiate_version({"PLUGIN_PROTOCOL_VERSIONS": "4,5"})


def test_each_start_gets_its_own_certificate_for_localhost() -> None:
    first, second = goplugin.new_server_cert(), goplugin.new_server_cert()
    assert first.key_pem != second.key_pem
    cert = x509.load_pem_x509_certificate(first.cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    # go-plugin reads the handshake field as unpadded base64 of the DER.
    field = first.handshake
    assert "=" not in field
    assert base64.b64decode(field + "=" * (-len(field) % 4)) == first.der
    key = serialization.load_pem_private_key(first.key_pem, password=None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()


def test_sockets_of_killed_providers_are_swept(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for pid in (dead.pid, os.getpid()):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(tmp_path / f"plugin-{pid}.sock"))
    (tmp_path / "provider-abc.sock.lock").write_text("")
    goplugin.sweep_sockets(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"plugin-{os.getpid()}.sock",
        "provider-abc.sock.lock",
    ]


def test_the_socket_directory_must_be_private(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    env = {"TMPDIR": str(base)}
    directory = launcher.private_dir(env)
    assert directory is not None and os.stat(directory).st_mode & 0o777 == 0o700
    os.chmod(directory, 0o755)
    assert launcher.private_dir(env) is None
    with pytest.raises(goplugin.PluginError):
        goplugin.socket_dir(env)
