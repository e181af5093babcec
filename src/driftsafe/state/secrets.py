"""Find plaintext secrets in a Terraform state (or any text file).

Four signals, strongest first: Terraform's own ``sensitive_attributes`` marking (and
sensitive outputs), known secret formats and keyword assignments (detect-secrets'
plugins), attribute names that look secret, and high-entropy strings
(detect-secrets' entropy measures). A Finding names where a secret is, never what it
is: findings end up in the audit trail, API answers and CI logs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from detect_secrets.filters.heuristic import (
    is_potential_uuid,
    is_sequential_string,
    is_templated_secret,
)
from detect_secrets.plugins.artifactory import ArtifactoryDetector
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.cloudant import CloudantDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.high_entropy_strings import (
    Base64HighEntropyString,
    HexHighEntropyString,
    HighEntropyStringsPlugin,
)
from detect_secrets.plugins.ibm_cloud_iam import IbmCloudIamDetector
from detect_secrets.plugins.ibm_cos_hmac import IbmCosHmacDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.keyword import (
    CONFIG_DENYLIST_REGEX_TO_GROUP,
    QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
    KeywordDetector,
)
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.softlayer import SoftlayerDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

from driftsafe.state.paths import (
    Path,
    covering,
    flatten,
    format_path,
    get_path,
    instance_attributes,
    iter_instances,
    sensitive_paths,
)

# Public IPs are not secrets, so IPPublicDetector is deliberately absent.
_FORMAT_DETECTORS: tuple[type[RegexBasedDetector], ...] = (
    AWSKeyDetector,
    ArtifactoryDetector,
    AzureStorageKeyDetector,
    BasicAuthDetector,
    CloudantDetector,
    DiscordBotTokenDetector,
    GitHubTokenDetector,
    GitLabTokenDetector,
    IbmCloudIamDetector,
    IbmCosHmacDetector,
    JwtTokenDetector,
    MailchimpDetector,
    NpmDetector,
    OpenAIDetector,
    PrivateKeyDetector,
    PypiTokenDetector,
    SendGridDetector,
    SlackDetector,
    SoftlayerDetector,
    SquareOAuthDetector,
    StripeDetector,
    TelegramBotTokenDetector,
    TwilioKeyDetector,
)

_SECRET_NAME = re.compile(
    r"(pass(word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|private[_-]?key|"
    r"access[_-]?key|secret[_-]?key|credentials?|client[_-]?secret|auth[_-]?key|"
    r"connection[_-]?string|conn[_-]?str|dsn|signing[_-]?key|encryption[_-]?key)",
    re.IGNORECASE,
)
# Names that contain a secret word but hold metadata about the secret, not the secret.
_NOT_SECRET_NAME = re.compile(
    r"(_|^)(version|versions|id|ids|arn|name|names|length|len|path|file|dir|type|count|"
    r"enabled|expiry|expires|expiration|ttl|rotation|policy|hash|sha\d*|md5|checksum|"
    r"mode|format|url|uri|endpoint|header|location|kind|prefix)$",
    re.IGNORECASE,
)
# Attribute names whose values are random by design but public: identifiers, digests,
# filesystem locations. Entropy alone says nothing about them.
_RANDOM_BUT_PUBLIC = re.compile(
    r"^(id|arn|lineage|etag|path|target|release_id)$|(_id|_ids|_arn|_path|_dir)$|"
    r"(sha\d*|hash|digest|checksum|fingerprint|md5)",
    re.IGNORECASE,
)
_PLACEHOLDERS = {"", "true", "false", "null", "none", "changeme", "********", "<sensitive>"}

KINDS = ("sensitive", "known_format", "secret_name", "high_entropy")


@dataclass(frozen=True)
class Finding:
    address: str
    path: str
    kind: str
    detector: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {
            "address": self.address,
            "path": self.path,
            "kind": self.kind,
            "detector": self.detector,
            "message": self.message,
        }


def _has_value(value: Any) -> bool:
    """True when a sensitive attribute actually carries data (write-only ones are null)."""
    if value is None:
        return False
    if isinstance(value, str):
        return value != ""
    if isinstance(value, Mapping | list):
        leaves = (leaf for _, leaf in flatten(value) if not isinstance(leaf, Mapping | list))
        return any(_has_value(leaf) for leaf in leaves)
    return True


def _known_format(value: str) -> str | None:
    for cls in _FORMAT_DETECTORS:
        plugin = cls()
        if any(True for _ in plugin.analyze_string(value)):
            return cls.__name__
    return None


def _keyword_assignment(line: str, mapping: Mapping[Any, int]) -> bool:
    detector = KeywordDetector()
    for candidate in detector.analyze_string(line, denylist_regex_to_group=dict(mapping)):
        if not is_templated_secret(candidate) and candidate.lower() not in _PLACEHOLDERS:
            return True
    return False


def _entropy_plugins() -> tuple[HighEntropyStringsPlugin, ...]:
    return (HexHighEntropyString(), Base64HighEntropyString())


# Short hex strings in a state are almost always content-hash prefixes (release ids,
# trigger values); a hex-encoded secret is at least 128 bits, i.e. 32 characters.
_MIN_HEX_SECRET = 20


def _high_entropy(tokens: Sequence[str], plugin: HighEntropyStringsPlugin) -> bool:
    for token in tokens:
        if is_potential_uuid(token) or is_sequential_string(token):
            continue
        if isinstance(plugin, HexHighEntropyString) and len(token) < _MIN_HEX_SECRET:
            continue
        if plugin.calculate_shannon_entropy(token) > plugin.entropy_limit:
            return True
    return False


def _tokens(value: str, plugin: HighEntropyStringsPlugin) -> list[str]:
    return re.findall(f"[{re.escape(plugin.charset)}]+", value)


def _last_name(path: Path) -> str:
    for step in reversed(path):
        if isinstance(step, str) and step != "value":
            return step
    return ""


def _classify(path: Path, value: str) -> tuple[str, str, str] | None:
    """(kind, detector, message) for a plaintext string, or None when it looks harmless."""
    if value.strip().lower() in _PLACEHOLDERS:
        return None
    detector = _known_format(value)
    if detector is not None:
        return ("known_format", f"detect-secrets:{detector}", "a known secret format in plaintext")
    name = _last_name(path)
    if name and _SECRET_NAME.search(name) and not _NOT_SECRET_NAME.search(name):
        return ("secret_name", "name", f"attribute name {name!r} looks secret and holds a value")
    if "\n" in value or "=" in value or ":" in value:
        for line in value.splitlines():
            if _keyword_assignment(line, CONFIG_DENYLIST_REGEX_TO_GROUP):
                return (
                    "secret_name",
                    "detect-secrets:KeywordDetector",
                    "a line assigns a value to a secret-looking keyword",
                )
    if name and _RANDOM_BUT_PUBLIC.search(name):
        return None
    for plugin in _entropy_plugins():
        if _high_entropy(_tokens(value, plugin), plugin):
            return (
                "high_entropy",
                f"detect-secrets:{type(plugin).__name__}",
                f"a random-looking string (entropy above {plugin.entropy_limit})",
            )
    return None


def _scan_value(address: str, root: Any, skip: Sequence[Path]) -> Iterator[Finding]:
    for path, leaf in flatten(root, values_only=True):
        if not isinstance(leaf, str) or covering(path, skip) is not None:
            continue
        verdict = _classify(path, leaf)
        if verdict is not None:
            kind, detector, message = verdict
            yield Finding(address, format_path(path), kind, detector, message)


def scan_state(state: Mapping[str, Any]) -> list[Finding]:
    """Findings for every resource instance and output of a decoded tfstate."""
    findings: list[Finding] = []
    for address, instance in iter_instances(state):
        attrs = instance_attributes(instance)
        marked = sensitive_paths(instance)
        for path in marked:
            if _has_value(get_path(attrs, path)):
                findings.append(
                    Finding(
                        address,
                        format_path(path),
                        "sensitive",
                        "terraform:sensitive_attributes",
                        "Terraform marks this attribute sensitive; the state holds it in plaintext",
                    )
                )
        findings.extend(_scan_value(address, attrs, marked))
    outputs = state.get("outputs")
    if isinstance(outputs, Mapping):
        for name, output in outputs.items():
            if not isinstance(output, Mapping):
                continue
            address = f"output.{name}"
            value = output.get("value")
            if output.get("sensitive") is True:
                if _has_value(value):
                    findings.append(
                        Finding(
                            address,
                            "value",
                            "sensitive",
                            "terraform:sensitive_output",
                            "a sensitive output; the state holds it in plaintext",
                        )
                    )
                continue
            findings.extend(_scan_value(address, {"value": value}, ()))
    return findings


_QUOTED = re.compile(r"""(['"])(.+?)\1""")


def scan_text(text: str) -> list[Finding]:
    """Findings in a raw file, line by line; address is ``line N``."""
    findings: list[Finding] = []
    for number, line in enumerate(text.splitlines(), start=1):
        address = f"line {number}"
        detector = _known_format(line)
        if detector is not None:
            findings.append(
                Finding(
                    address,
                    "",
                    "known_format",
                    f"detect-secrets:{detector}",
                    "a known secret format in plaintext",
                )
            )
            continue
        if _keyword_assignment(line, CONFIG_DENYLIST_REGEX_TO_GROUP) or _keyword_assignment(
            line, QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP
        ):
            findings.append(
                Finding(
                    address,
                    "",
                    "secret_name",
                    "detect-secrets:KeywordDetector",
                    "a line assigns a value to a secret-looking keyword",
                )
            )
            continue
        # Like detect-secrets, only quoted strings count for entropy in free text:
        # unquoted words in prose and code are too often long identifiers.
        quoted = [m.group(2) for m in _QUOTED.finditer(line)]
        for plugin in _entropy_plugins():
            tokens = [t for q in quoted for t in _tokens(q, plugin) if t == q]
            if _high_entropy(tokens, plugin):
                message = f"a random-looking quoted string (entropy above {plugin.entropy_limit})"
                findings.append(
                    Finding(
                        address,
                        "",
                        "high_entropy",
                        f"detect-secrets:{type(plugin).__name__}",
                        message,
                    )
                )
                break
    return findings


def scan_bytes(body: bytes) -> list[Finding]:
    """Scan a file's content: as a state when it is one, else line by line as text."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, Mapping) and isinstance(data.get("resources"), list) and "lineage" in data:
        return scan_state(data)
    return scan_text(body.decode("utf-8", errors="replace"))
