from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner

from driftsafe import errors
from driftsafe.cli.main import cli
from driftsafe.client import Client, ServerUnreachable, check_workspace, error_from_response
from driftsafe.settings import Settings


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


# --- the Client over httpx.MockTransport: what goes out, what comes back ----------


class Recorder:
    """A MockTransport handler that answers from a table and records every request."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0)

    def client(self, token: str | None = "dst_secret") -> Client:
        return Client("http://ds.test:8787/", token, transport=httpx.MockTransport(self))


def test_requests_carry_token_and_accept_and_quote_the_workspace() -> None:
    rec = Recorder(httpx.Response(200, json={"versions": [{"serial": 2}]}))
    with rec.client() as client:
        assert client.base_url == "http://ds.test:8787"
        assert client.versions("lab/staging") == [{"serial": 2}]
    (sent,) = rec.requests
    assert sent.method == "GET"
    assert str(sent.url) == "http://ds.test:8787/api/v1/workspaces/lab/staging/versions"
    assert sent.headers["authorization"] == "Bearer dst_secret"
    assert sent.headers["accept"] == "application/json"


def test_no_token_sends_no_authorization() -> None:
    rec = Recorder(httpx.Response(200, json={"status": "ok"}))
    with rec.client(token=None) as client:
        assert client.health() == {"status": "ok"}
    assert "authorization" not in rec.requests[0].headers


def test_bad_workspace_is_refused_before_any_request() -> None:
    rec = Recorder()
    with rec.client() as client:
        for call in (
            lambda: client.versions("a/../b"),
            lambda: client.lock_status("bad name"),
            lambda: client.audit(workspace="x//y"),
        ):
            with pytest.raises(errors.ConfigError, match="invalid workspace name"):
                call()
    assert rec.requests == []


def test_query_and_body_of_writes() -> None:
    released = {"id": "L1", "who": "a@b"}
    version = {"serial": 7, "restored_from": 3}
    rec = Recorder(
        httpx.Response(200, json={"released": released}),
        httpx.Response(200, json={"released": released}),
        httpx.Response(201, json={"version": version}),
        httpx.Response(200, json={"added": [], "removed": [], "changed": {}}),
        httpx.Response(200, json={"events": []}),
        httpx.Response(201, json={"id": 1}),
    )
    with rec.client() as client:
        assert client.force_unlock("ws", if_stale=True, max_age=60) == released
        assert client.force_unlock("ws") == released
        assert client.restore("ws", 3) == version
        assert client.diff("ws", 1, 2)["added"] == []
        assert client.audit(workspace="ws", limit=5) == []
        assert client.post_drift("ws", {"summary": {"drifted": 0}}) == {"id": 1}
    unlock, force, restore, diff, audit, drift = rec.requests
    assert (unlock.method, unlock.url.path) == ("DELETE", "/api/v1/workspaces/ws/lock")
    assert dict(unlock.url.params) == {"if_stale": "true", "max_age": "60"}
    assert dict(force.url.params) == {}
    assert (restore.method, json.loads(restore.content)) == ("POST", {"serial": 3})
    assert dict(diff.url.params) == {"from": "1", "to": "2"}
    assert (audit.url.path, dict(audit.url.params)) == (
        "/api/v1/audit",
        {"workspace": "ws", "limit": "5"},
    )
    assert json.loads(drift.content) == {"summary": {"drifted": 0}}


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, "unauthorized", errors.AuthError),
        (403, "forbidden", errors.Forbidden),
        (404, "not_found", errors.NotFound),
        (409, "conflict", errors.Conflict),
        (423, "locked", errors.LockHeld),
        (503, "store_error", errors.StoreError),
    ],
)
def test_error_answers_raise_their_class_with_detail(status: int, code: str, cls: type) -> None:
    body = {"error": {"code": code, "message": "refused here", "detail": {"lock_id": "L9"}}}
    rec = Recorder(httpx.Response(status, json=body))
    with rec.client() as client, pytest.raises(errors.DriftsafeError) as raised:
        client.lock_status("ws")
    assert type(raised.value) is cls
    assert raised.value.message.startswith("refused here")
    assert raised.value.detail == {"lock_id": "L9"}


def test_non_json_answers() -> None:
    rec = Recorder(
        httpx.Response(502, text="<html>proxy error</html>"),
        httpx.Response(200, text="<html>not the API</html>"),
    )
    with rec.client() as client:
        with pytest.raises(errors.DriftsafeError) as gateway:
            client.workspaces()
        assert type(gateway.value) is errors.DriftsafeError
        assert gateway.value.message == "server answered HTTP 502: <html>proxy error</html>"
        with pytest.raises(errors.DriftsafeError) as html:
            client.workspaces()
        assert html.value.message == (
            "server at http://ds.test:8787 answered GET /api/v1/workspaces with non-JSON (HTTP 200)"
        )


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ConnectTimeout("timed out"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
def test_transport_failures_say_unreachable_with_the_url(exc: httpx.TransportError) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    client = Client("http://ds.test:8787", "t", transport=httpx.MockTransport(handler))
    with client, pytest.raises(ServerUnreachable) as raised:
        client.health()
    assert raised.value.message == f"cannot reach driftsafe server at http://ds.test:8787: {exc}"
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_transport_failure_without_text_names_its_type() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("")

    client = Client("http://ds.test", transport=httpx.MockTransport(handler))
    with client, pytest.raises(ServerUnreachable, match="at http://ds.test: ReadError$"):
        client.workspaces()


def test_version_defaults_to_latest_and_empty_workspace_is_not_found() -> None:
    rec = Recorder(
        httpx.Response(200, json={"versions": [{"serial": 5}, {"serial": 4}]}),
        httpx.Response(200, json={"version": {"serial": 5}, "state": {"serial": 5}}),
        httpx.Response(200, json={"versions": []}),
        httpx.Response(200, json={"workspaces": [{"name": "other"}]}),
        httpx.Response(200, json={"versions": []}),
        httpx.Response(200, json={"workspaces": [{"name": "ws"}]}),
    )
    with rec.client() as client:
        assert client.version("ws")["state"] == {"serial": 5}
        # No versions and unknown to the server: the one "does not exist" message.
        with pytest.raises(errors.NotFound, match="workspace 'ws' does not exist on http"):
            client.version("ws")
        # Known (locked before its first write) but without versions yet.
        with pytest.raises(errors.NotFound, match="'ws' has no versions yet"):
            client.version("ws")
    assert [r.url.path for r in rec.requests] == [
        "/api/v1/workspaces/ws/versions",
        "/api/v1/workspaces/ws/versions/5",
        "/api/v1/workspaces/ws/versions",
        "/api/v1/workspaces",
        "/api/v1/workspaces/ws/versions",
        "/api/v1/workspaces",
    ]


def test_scan_workspace_scans_what_the_server_returns() -> None:
    secret = {"id": "1", "password": "hunter2-is-not-a-good-password"}
    state = {
        "version": 4,
        "serial": 2,
        "lineage": "l",
        "outputs": {},
        "resources": [
            {
                "mode": "managed",
                "type": "terraform_data",
                "name": "x",
                "provider": 'provider["terraform.io/builtin/terraform"]',
                "instances": [{"schema_version": 0, "attributes": secret}],
            }
        ],
    }
    rec = Recorder(
        httpx.Response(200, json={"versions": [{"serial": 2}, {"serial": 1}]}),
        httpx.Response(200, json={"version": {"serial": 2}, "state": state}),
    )
    with rec.client() as client:
        ((serial, findings),) = client.scan_workspace("ws")
    assert serial == 2
    assert any(f.path.endswith("password") for f in findings)


def test_from_settings_passes_server_token_and_transport(settings: Settings) -> None:
    rec = Recorder(httpx.Response(200, json={"workspaces": []}))
    configured = settings.with_(server="http://configured.test", token="dst_from_env")
    with Client.from_settings(configured, transport=httpx.MockTransport(rec)) as client:
        assert client.workspaces() == []
    assert str(rec.requests[0].url) == "http://configured.test/api/v1/workspaces"
    assert rec.requests[0].headers["authorization"] == "Bearer dst_from_env"
    flags = Recorder(httpx.Response(200, json={"status": "ok"}))
    with Client.from_settings(
        configured,
        server="http://flag.test",
        token="dst_flag",
        transport=httpx.MockTransport(flags),
    ) as client:
        assert client.health() == {"status": "ok"}
    assert str(flags.requests[0].url) == "http://flag.test/healthz"
    assert flags.requests[0].headers["authorization"] == "Bearer dst_flag"
    assert settings.server is None
    with pytest.raises(errors.ConfigError, match="DRIFTSAFE_SERVER"):
        Client.from_settings(settings, transport=httpx.MockTransport(Recorder()))
