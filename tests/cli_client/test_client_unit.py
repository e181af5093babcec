from __future__ import annotations

import httpx
import pytest
from click.testing import CliRunner

from driftsafe import errors
from driftsafe.cli.main import cli
from driftsafe.client import Client, check_workspace, error_from_response


def _response(status: int, **kwargs: object) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", "http://x/api"), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "bad_request", errors.BadRequest),
        (401, "unauthorized", errors.AuthError),
        (403, "forbidden", errors.Forbidden),
        (404, "not_found", errors.NotFound),
        (409, "conflict", errors.Conflict),
        (423, "locked", errors.LockHeld),
        (413, "payload_too_large", errors.PayloadTooLarge),
        (503, "store_error", errors.StoreError),
        (409, "something_new", errors.Conflict),  # unknown code: fall back on the status
        (500, "internal", errors.DriftsafeError),
    ],
)
def test_error_shape_maps_to_classes(status: int, code: str, cls: type) -> None:
    body = {"error": {"code": code, "message": "it went wrong", "detail": {"serial": 3}}}
    err = error_from_response(_response(status, json=body))
    assert type(err) is cls
    assert err.message.startswith("it went wrong")
    assert err.detail == {"serial": 3}


def test_non_json_error_says_status_and_body() -> None:
    err = error_from_response(_response(502, text="<html>Bad gateway</html>\n"))
    assert type(err) is errors.DriftsafeError
    assert err.message == "server answered HTTP 502: <html>Bad gateway</html>"
    assert type(error_from_response(_response(404, text=""))) is errors.NotFound
    auth = error_from_response(_response(401, text="no"))
    assert isinstance(auth, errors.AuthError) and "DRIFTSAFE_TOKEN" in auth.message


@pytest.mark.parametrize("name", ["", "a//b", "../x", "a/./b", "a b", "ws/", "é"])
def test_bad_workspace_names(name: str) -> None:
    with pytest.raises(errors.ConfigError):
        check_workspace(name)


def test_good_workspace_names() -> None:
    assert check_workspace("lab/staging") == "lab/staging"
    assert check_workspace("a.b_c-1") == "a.b_c-1"


def test_server_url_must_be_http() -> None:
    with pytest.raises(errors.ConfigError):
        Client("127.0.0.1:8787")


@pytest.mark.parametrize(
    "args",
    [
        ["state"],
        ["state", "versions"],
        ["state", "show"],
        ["state", "diff"],
        ["state", "restore"],
        ["lock"],
        ["lock", "status"],
        ["lock", "unlock"],
        ["audit"],
        ["secrets"],
        ["secrets", "scan"],
    ],
)
def test_help_has_an_example(args: list[str]) -> None:
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0
    example = result.stdout.split("Example:\n", 1)[1].split("\n\n", 1)[0]
    assert any(line.strip().startswith("driftsafe ") for line in example.splitlines())
