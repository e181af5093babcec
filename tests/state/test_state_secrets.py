from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from labstate import instance, lab_state

from driftsafe.engine import Engine
from driftsafe.state.diff import diff_states
from driftsafe.state.secrets import (
    ASSIGNMENT_WORDS,
    KEYWORD_WORDS,
    SecretFinding,
    _Detectors,
    clip_runs,
    lines_with,
    scan_state,
    scan_text,
)

# Planted values: each must be found, and must never be echoed by a finding.
AWS_KEY = "AKIAZ7Q3XJ4KD2LMN5PB"
PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx7Q3\n-----END RSA PRIVATE KEY-----\n"
)
HIGH_ENTROPY = "q8Vx2LmZ9rT4wKp7NcY3bF6hJ1sDgE5u"
PASSWORD = "correct-horse-battery"


def _by_where(findings: list[SecretFinding]) -> dict[tuple[str, str], SecretFinding]:
    return {(f.address, f.path): f for f in findings}


def _assert_no_values(findings: list[SecretFinding], *values: str) -> None:
    rendered = json.dumps([f.to_json() for f in findings])
    for value in values:
        assert value not in rendered
        assert value[:12] not in rendered


def test_clean_lab_state_has_no_findings() -> None:
    assert scan_state(lab_state()) == []


def test_planted_secrets_are_found_without_their_values() -> None:
    state = lab_state()
    app = instance(state, "lab_config_file", "app")["attributes"]
    app["values"]["aws_access_key"] = AWS_KEY
    app["values"]["banner"] = HIGH_ENTROPY
    release = instance(state, "lab_release", "app")["attributes"]
    release["content"] = "release 1.4.2\n" + PRIVATE_KEY
    features = instance(state, "lab_config_file", "features")["attributes"]
    features["values"]["db_password"] = PASSWORD
    state["outputs"]["dsn"] = {"value": f"postgres://app:{PASSWORD}@db/app", "type": "string"}

    findings = scan_state(state)
    where = _by_where(findings)
    aws = where[("module.app.lab_config_file.app", "values.aws_access_key")]
    assert (aws.kind, aws.detector) == ("known_format", "detect-secrets:AWSKeyDetector")
    key = where[("module.app.lab_release.app", "content")]
    assert (key.kind, key.detector) == ("known_format", "detect-secrets:PrivateKeyDetector")
    entropy = where[("module.app.lab_config_file.app", "values.banner")]
    assert entropy.kind == "high_entropy"
    password = where[("module.app.lab_config_file.features", "values.db_password")]
    assert password.kind == "secret_name"
    assert ("output.dsn", "value") in where
    assert len(findings) == 5
    _assert_no_values(findings, AWS_KEY, PRIVATE_KEY.splitlines()[1], HIGH_ENTROPY, PASSWORD)


def test_terraform_sensitive_attribute_with_a_value() -> None:
    state = lab_state()
    secret = instance(state, "lab_secret_file", "app")
    # A provider that is not write-only keeps the value: the marking makes it a finding.
    secret["attributes"]["secret"] = "plain words"
    findings = scan_state(state)
    assert [(f.address, f.path, f.kind, f.detector) for f in findings] == [
        (
            "module.app.lab_secret_file.app",
            "secret",
            "sensitive",
            "terraform:sensitive_attributes",
        )
    ]
    _assert_no_values(findings, "plain words")


@pytest.mark.parametrize("empty", [None, ""])
def test_write_only_secret_is_not_a_finding(empty: Any) -> None:
    state = lab_state()
    instance(state, "lab_secret_file", "app")["attributes"]["secret"] = empty
    assert scan_state(state) == []


def test_sensitive_output_and_nested_marking() -> None:
    state = lab_state()
    state["outputs"]["token"] = {"value": "x", "type": "string", "sensitive": True}
    state["outputs"]["gone"] = {"value": None, "type": "string", "sensitive": True}
    inst = instance(state, "lab_delay", "rollout")
    inst["sensitive_attributes"] = [
        [
            {"type": "get_attr", "value": "triggers"},
            {"type": "index", "value": {"value": "release", "type": "string"}},
        ]
    ]
    where = _by_where(scan_state(state))
    assert set(where) == {
        ("output.token", "value"),
        ("module.app.lab_delay.rollout", "triggers.release"),
    }
    assert {f.kind for f in where.values()} == {"sensitive"}


def test_metadata_names_are_not_secrets() -> None:
    state = lab_state()
    attrs = instance(state, "lab_config_file", "app")["attributes"]["values"]
    attrs.update({"secret_version": "3", "token_ttl": "3600", "password_file": "/run/pw"})
    assert scan_state(state) == []


def test_scan_text() -> None:
    text = "\n".join(
        [
            "# app config",
            f"aws_key = {AWS_KEY}",
            "port = 8080",
            f"db_password = {PASSWORD}",
            f'banner = "{HIGH_ENTROPY}"',
            "build = 3f9a1c0b7d2e",
        ]
    )
    findings = scan_text(text)
    assert [(f.address, f.kind) for f in findings] == [
        ("line 2", "known_format"),
        ("line 4", "secret_name"),
        ("line 5", "high_entropy"),
    ]
    _assert_no_values(findings, AWS_KEY, PASSWORD, HIGH_ENTROPY)
    assert scan_text("env = staging\nmax_connections = 100\n") == []


def test_real_terraform_state(engine: Engine, tmp_path: Path) -> None:
    """A state written by real Terraform: sensitive marking on a dynamic attribute."""
    (tmp_path / "main.tf").write_text(
        'variable "pw" {\n  type = string\n  sensitive = true\n}\n'
        'resource "terraform_data" "db" {\n'
        '  input = { user = "app", password = var.pw }\n}\n'
    )
    env = {"TF_VAR_pw": PASSWORD}
    assert engine.run(["init", "-no-color"], cwd=tmp_path, timeout=120).returncode == 0
    first = engine.run(["apply", "-auto-approve", "-no-color"], cwd=tmp_path, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    old = json.loads((tmp_path / "terraform.tfstate").read_text())
    findings = scan_state(old)
    where = _by_where(findings)
    assert where[("terraform_data.db", "input.value.password")].kind == "sensitive"
    _assert_no_values(findings, PASSWORD)

    env["TF_VAR_pw"] = PASSWORD + "-rotated"
    second = engine.run(["apply", "-auto-approve", "-no-color"], cwd=tmp_path, env=env, timeout=120)
    assert second.returncode == 0, second.stderr
    new = json.loads((tmp_path / "terraform.tfstate").read_text())
    diff = diff_states(old, new).to_json()
    # By meaning: the dynamic-type wrapper of terraform_data.input is not in the path.
    assert "input.password" in diff["changed"]["terraform_data.db"]
    assert PASSWORD not in json.dumps(diff)


def test_keyword_assignment_formats_in_file_content() -> None:
    """detect-secrets' "keyword = value" detectors, found inside a rendered config file."""
    state = lab_state()
    app = instance(state, "lab_config_file", "app")["attributes"]
    app["content"] = 'env = staging\nsoftlayer_api_key = "' + "a1b2c3d4" * 8 + '"\n'
    release = instance(state, "lab_release", "app")["attributes"]
    release["content"] = 'ibm_cos_secret_access_key: "' + "fedcba9876543210" * 3 + '"'
    where = _by_where(scan_state(state))
    assert where[("module.app.lab_config_file.app", "content")].detector == (
        "detect-secrets:SoftlayerDetector"
    )
    assert where[("module.app.lab_release.app", "content")].detector == (
        "detect-secrets:IbmCosHmacDetector"
    )
    assert len(where) == 2


planted = st.sampled_from(
    [
        AWS_KEY,
        'softlayer_api_key = "' + "a1b2c3d4" * 8 + '"',
        'cloudant_password: "' + "0a" * 32 + '"',
        "xoxb-1234567890-abcdefghij",
        "AKC" + "p8Qz" * 4,
        "https://user:pw1234@example.com/x",
        "sk_live_" + "aB3dE6gH9jK2mN5pQ8sT1vW4",
    ]
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text(alphabet=" =:\n\"'abkeyp_0123456789", max_size=30), min_size=1, max_size=6),
    planted,
    st.integers(min_value=0, max_value=5),
)
def test_blob_prefilter_loses_nothing(noise: list[str], secret: str, where: int) -> None:
    """Each value is classified exactly as it would be alone in a state."""
    values = list(noise)
    values.insert(min(where, len(values)), f"x {secret} y")
    attrs = {f"v{i}": v for i, v in enumerate(values)}
    state = lab_state()
    instance(state, "lab_delay", "rollout")["attributes"]["triggers"] = attrs
    together = {
        f.path: f.kind for f in scan_state(state) if f.address == "module.app.lab_delay.rollout"
    }
    for i, value in enumerate(values):
        alone_state = lab_state()
        instance(alone_state, "lab_delay", "rollout")["attributes"]["triggers"] = {f"v{i}": value}
        alone = {f.path: f.kind for f in scan_state(alone_state)}
        assert together.get(f"triggers.v{i}") == alone.get(f"triggers.v{i}")
    assert together[f"triggers.v{values.index(f'x {secret} y')}"] == "known_format"


@pytest.mark.slow
def test_real_lab_stack(engine: Engine, tmp_path: Path) -> None:
    """The real lab stack applied by real Terraform: its state is clean (the app secret
    is write-only), and a change of max_connections diffs as exactly that path."""
    from driftsafe.lab.scaffold import init_stack

    staging = init_stack(tmp_path / "lab").envs["staging"]
    env = {"TF_VAR_app_secret": "Lab-" + HIGH_ENTROPY}
    init = engine.run(["init", "-no-color", "-input=false"], cwd=staging, env=env, timeout=180)
    assert init.returncode == 0, init.stderr
    first = engine.run(["apply", "-auto-approve", "-no-color"], cwd=staging, env=env, timeout=180)
    assert first.returncode == 0, first.stderr
    before = json.loads((staging / "terraform.tfstate").read_text())
    assert HIGH_ENTROPY not in json.dumps(before)
    assert scan_state(before) == []

    second = engine.run(
        ["apply", "-auto-approve", "-no-color", "-var=max_connections=77"],
        cwd=staging,
        env=env,
        timeout=180,
    )
    assert second.returncode == 0, second.stderr
    after = json.loads((staging / "terraform.tfstate").read_text())
    changed = diff_states(before, after).to_json()["changed"]
    assert "values.max_connections" in changed["module.app.lab_config_file.app"]
    assert set(changed) == {"module.app.lab_config_file.app"}


@pytest.mark.parametrize(
    "base",
    [
        "/tmp/pytest-of-root/pytest-31/popen-gw1/test_real_lab_stack0/lab/runtime/staging",
        "/home/runner/work/QxZ7-deploy_k8s/W9v2Lm/lab-run/runtime/prod",
        "./envs/staging/runtime",
        "file:///srv/driftsafe/Kp3x9-ZQ/runtime",
    ],
)
def test_long_paths_are_not_secrets(base: str) -> None:
    state = lab_state()
    release = f"{base}/releases/3f9a1c0b7d2e"
    state["outputs"].update(
        {
            "release_path": {"value": release, "type": "string"},
            "paths": {"value": [release, f"{base}/app.conf"], "type": ["list", "string"]},
            "banner": {"value": HIGH_ENTROPY, "type": "string"},
        }
    )
    instance(state, "lab_config_file", "app")["attributes"]["values"]["log"] = f"{base}/log"
    where = _by_where(scan_state(state))
    assert set(where) == {("output.banner", "value")}
    assert where[("output.banner", "value")].kind == "high_entropy"


@pytest.mark.parametrize(
    ("value", "detector"),
    [
        (
            'aws_secret_key = "' + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"[:40] + '"',
            "AWSKeyDetector",
        ),
        ("artifactory: AKCp5bueTFpfypEqQbGJPp7BHWwCWhmZ", "ArtifactoryDetector"),
        ("artifactory: AP6xxxxxxxxxx", "ArtifactoryDetector"),
        ("https://admin:" + "abcdefghijklmnopqrstuvwx" + "@team.Cloudant.com", "CloudantDetector"),
        ("mailchimp " + "0123456789abcdef0123456789abcdef-us12", "MailchimpDetector"),
        ("xoxb-123456789012-abcdefghijkl", "SlackDetector"),
        ("https://hooks.slack.com/services/T0ABCDEF/B0ABCDEF/abcdefghijklmn", "SlackDetector"),
        ("https://api.softlayer.com/soap/v3/" + "a1b2c3d4" * 8, "SoftlayerDetector"),
        ("sk_live_" + "aB3dE6gH9jK2mN5pQ8sT1vW4", "StripeDetector"),
        ("AWſ_token = '" + "A" * 19 + "b" * 21 + "'", "AWSKeyDetector"),
    ],
)
def test_hinted_detectors_still_fire(value: str, detector: str) -> None:
    """Every detector behind a literal pre-check still sees its own format."""
    assert detector in {type(p).__name__ for p in _Detectors().candidates(f"x\n{value}\ny")}
    state = lab_state()
    instance(state, "lab_delay", "rollout")["attributes"]["triggers"] = {"note": value}
    assert [f.kind for f in scan_state(state)] == ["known_format"]


def test_pre_check_words_cover_detect_secrets_keywords() -> None:
    """The substring pre-checks never hide a keyword detect-secrets looks for."""
    from detect_secrets.plugins.keyword import DENYLIST

    for entry in DENYLIST:
        for spelled in {entry.replace("_?", ""), entry.replace("_?", "_")}:
            assert any(word in spelled.casefold() for word in KEYWORD_WORDS), entry
    text = "a = 1\nDB_PASSWORD: x\nb\nToken=abc"
    assert lines_with(text.casefold(), ASSIGNMENT_WORDS) == "db_password: x\ntoken=abc"


def test_clip_runs() -> None:
    short = "key = value " + "x" * 4000
    assert clip_runs(short) == short
    long_run = "A" * 3000 + "MIDDLE" + "B" * 3000
    clipped = clip_runs(f"first {long_run} last")
    assert clipped == f"first {long_run[:2048]} {long_run[-2048:]} last"
    assert "MIDDLE" not in clipped


def test_huge_unbroken_value_scans_in_linear_time() -> None:
    """A 4 MiB single-line value full of '//' and 'eyJ' made NpmDetector's and
    JwtTokenDetector's patterns backtrack quadratically (hours); now it takes seconds,
    and a secret at the start of the line is still found."""
    state = lab_state()
    chunk = "eyJhbGciOi//" + "q8Vx2LmZ9rT4wKp7NcY3bF6hJ1sDgE5uQ2w" * 3
    body = (chunk * (4 * 2**20 // len(chunk)))[: 4 * 2**20]
    release = instance(state, "lab_release", "app")["attributes"]
    release["content"] = f"{AWS_KEY} {body}"
    started = time.monotonic()
    findings = scan_state(state)
    assert time.monotonic() - started < 60
    where = _by_where(findings)
    assert where[("module.app.lab_release.app", "content")].detector == (
        "detect-secrets:AWSKeyDetector"
    )
