"""Find plaintext secrets in a Terraform state (or any text file).

Four signals, strongest first: Terraform's own ``sensitive_attributes`` marking (and
sensitive outputs), known secret formats and keyword assignments (detect-secrets'
plugins), attribute names that look secret, and high-entropy strings
(detect-secrets' entropy measures). A SecretFinding names where a secret is, never what it
is: findings end up in the audit trail, API answers and CI logs.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from detect_secrets.plugins.base import RegexBasedDetector
    from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin
    from detect_secrets.plugins.keyword import KeywordDetector


@dataclass(frozen=True)
class _Plugins:
    formats: tuple[type[RegexBasedDetector], ...]
    keyword: type[KeywordDetector]
    entropy: tuple[Callable[[], HighEntropyStringsPlugin], ...]
    config_denylist: Mapping[Any, int]
    quotes_denylist: Mapping[Any, int]
    is_potential_uuid: Callable[[str], bool]
    is_sequential_string: Callable[[str], bool]
    is_templated_secret: Callable[[str], bool]


@functools.cache
def _plugins() -> _Plugins:
    """detect-secrets' plugins and heuristics, imported on first use: importing them
    costs ~0.2 s, which every driftsafe command that never scans would pay."""
    from detect_secrets.filters.heuristic import (
        is_potential_uuid,
        is_sequential_string,
        is_templated_secret,
    )
    from detect_secrets.plugins.artifactory import ArtifactoryDetector
    from detect_secrets.plugins.aws import AWSKeyDetector
    from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
    from detect_secrets.plugins.basic_auth import BasicAuthDetector
    from detect_secrets.plugins.cloudant import CloudantDetector
    from detect_secrets.plugins.discord import DiscordBotTokenDetector
    from detect_secrets.plugins.github_token import GitHubTokenDetector
    from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
    from detect_secrets.plugins.high_entropy_strings import (
        Base64HighEntropyString,
        HexHighEntropyString,
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

    # Public IPs are not secrets, so IPPublicDetector is deliberately absent.
    formats = (
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

    return _Plugins(
        formats=formats,
        keyword=KeywordDetector,
        entropy=(HexHighEntropyString, Base64HighEntropyString),
        config_denylist=CONFIG_DENYLIST_REGEX_TO_GROUP,
        quotes_denylist=QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
        is_potential_uuid=is_potential_uuid,
        is_sequential_string=is_sequential_string,
        is_templated_secret=is_templated_secret,
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
    r"mode|format|url|uri|endpoint|location|kind|prefix)$",
    re.IGNORECASE,
)
# Attribute names whose values are random by design but public: identifiers, digests,
# filesystem locations. Entropy alone says nothing about them.
_RANDOM_BUT_PUBLIC = re.compile(
    r"^(id|arn|lineage|etag|path|target|release_id)$|(_id|_ids|_arn|_path|_dir)$|"
    r"(^|_)(sha\d*|hash|digest|checksum|fingerprint|md5)(_|$)",
    re.IGNORECASE,
)
_PLACEHOLDERS = {"", "true", "false", "null", "none", "changeme", "********", "<sensitive>"}

KINDS = ("sensitive", "known_format", "secret_name", "high_entropy")


@dataclass(frozen=True)
class SecretFinding:
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


# The lowest entropy limit is detect-secrets' hex one (3.0 bits) and base64's is 4.5:
# neither can be exceeded by a short token, and short hex strings in a state are almost
# always content-hash prefixes (release ids, trigger values). A hex-encoded secret is at
# least 128 bits, i.e. 32 characters; 20 leaves a margin.
_MIN_ENTROPY_TOKEN = 20
# Every KeywordDetector pattern needs a word of its DENYLIST, and each of those
# contains one of these (a test checks it): a plain substring test on casefolded text
# is ~100x faster than the case-insensitive alternation on a large value.
KEYWORD_WORDS = ("key", "pass", "pwd", "secret", "contrase")


# detect-secrets' "keyword = value" detectors (Cloudant, IBM, Softlayer) start with this
# lookbehind, which defeats the regex engine's literal search: on a 50 MiB state they
# take seconds. Each also requires (case-insensitively) key, pwd, pw, pass or token, so
# only the casefolded lines holding one of ASSIGNMENT_WORDS need their full pattern.
_ASSIGNMENT_PREFIX = "(?:(?<=\\W)|(?<=^))"
ASSIGNMENT_WORDS = ("key", "pw", "pass", "token")


def _has_any(text: str, words: Sequence[str]) -> bool:
    folded = text.casefold()
    return any(word in folded for word in words)


def lines_with(folded: str, words: Sequence[str]) -> str:
    """The lines of ``folded`` (casefolded text) that hold one of ``words``, in order."""
    spans: dict[tuple[int, int], None] = {}
    for word in words:
        at = folded.find(word)
        while at >= 0:
            start = folded.rfind("\n", 0, at) + 1
            end = folded.find("\n", at)
            end = len(folded) if end < 0 else end
            spans[(start, end)] = None
            at = folded.find(word, end)
    return "\n".join(folded[a:b] for a, b in sorted(spans))


# Patterns that start with a character class make Python's regex engine try every
# position: over a 50 MiB state each costs seconds. Each pattern below cannot match
# without its literal, so a blob without the literal skips the pattern. Keyed by a
# marker in the pattern's text: a changed pattern loses its hint and simply runs.
# (detector, marker in its pattern, literal any match contains, case-insensitive)
_LITERAL_HINTS: tuple[tuple[str, str, str, bool], ...] = (
    ("AWSKeyDetector", "aws.{0,20}", "aws", True),
    ("ArtifactoryDetector", "AKC[", "AKC", False),
    ("ArtifactoryDetector", "AP[", "AP", False),
    ("CloudantDetector", r"\.cloudant\.com", "cloudant", True),
    ("MailchimpDetector", "-us[", "-us", False),
    ("SlackDetector", "xox(", "xox", True),
    ("SlackDetector", r"hooks\.slack", "slack", True),
    ("SoftlayerDetector", "api.softlayer.com", "softlayer", True),
    ("StripeDetector", "k_live_", "k_live_", False),
    ("TwilioKeyDetector", "AC[", "AC", False),
    ("TwilioKeyDetector", "SK[", "SK", False),
)


def _literal_hint(plugin: RegexBasedDetector, pattern: str) -> tuple[str, bool] | None:
    name = type(plugin).__name__
    for detector, marker, literal, fold in _LITERAL_HINTS:
        if detector == name and marker in pattern and not pattern.startswith(_ASSIGNMENT_PREFIX):
            return literal, fold
    return None


# Some detect-secrets patterns backtrack over a whole unbroken run of characters
# (NpmDetector's ``//.+/:_authToken``, JwtTokenDetector's ``eyJ[...]+\.``): on a 50 MiB
# base64 value that is quadratic, i.e. hours. Format and keyword patterns therefore see
# only both ends of any run longer than _MAX_RUN; entropy still judges the whole value.
_MAX_RUN = 4096
# The lookbehind anchors each attempt at the start of a run, keeping the search linear.
_LONG_RUN = re.compile(rf"(?<!\S)\S{{{_MAX_RUN + 1},}}")


def clip_runs(text: str) -> str:
    """``text`` with each run of non-space characters longer than _MAX_RUN cut to its
    first and last _MAX_RUN/2 characters, separated by a space."""
    if len(text) <= _MAX_RUN:
        return text
    half = _MAX_RUN // 2
    return _LONG_RUN.sub(lambda m: f"{m.group(0)[:half]} {m.group(0)[-half:]}", text)


# Filesystem paths and URLs: judged segment by segment for entropy.
_PATH_LIKE = re.compile(r"^(~|\.{1,2})?/|^[A-Za-z][A-Za-z0-9+.-]*://")


class _Detectors:
    """detect-secrets plugin instances for one scan: built per call, never shared."""

    def __init__(self) -> None:
        self.plugins = _plugins()
        self.formats: list[RegexBasedDetector] = [cls() for cls in self.plugins.formats]
        self.keyword = self.plugins.keyword()
        self.entropy: list[tuple[HighEntropyStringsPlugin, re.Pattern[str]]] = []
        for plugin in (cls() for cls in self.plugins.entropy):
            run = re.compile(f"[{re.escape(plugin.charset)}]{{{_MIN_ENTROPY_TOKEN},}}")
            self.entropy.append((plugin, run))

    def candidates(
        self, blob: str, among: Sequence[RegexBasedDetector] | None = None
    ) -> list[RegexBasedDetector]:
        """Format detectors (of ``among``, default all) whose patterns occur anywhere in
        ``blob``: one pass over many strings instead of one per value."""
        pool = self.formats if among is None else among
        hinted: str | None = None
        folded: str | None = None
        found: list[RegexBasedDetector] = []
        for plugin in pool:
            for regex in plugin.denylist:
                literal = _literal_hint(plugin, regex.pattern)
                if literal is not None:
                    word, fold = literal
                    if fold:
                        # casefold, not lower: re.IGNORECASE also matches e.g. "ſ" to "s".
                        folded = blob.casefold() if folded is None else folded
                        haystack = folded
                    else:
                        haystack = blob
                    if word not in haystack:
                        continue
                if regex.pattern.startswith(_ASSIGNMENT_PREFIX):
                    # These patterns are case-insensitive and match ASCII only, so a
                    # match in the blob is also a match in its casefolded lines.
                    if hinted is None:
                        folded = blob.casefold() if folded is None else folded
                        hinted = lines_with(folded, ASSIGNMENT_WORDS)
                    text = hinted
                else:
                    text = blob
                if text and regex.search(text):
                    found.append(plugin)
                    break
        return found

    def known_format(self, value: str, among: Sequence[RegexBasedDetector]) -> str | None:
        for plugin in among:
            if any(True for _ in plugin.analyze_string(value)):
                return type(plugin).__name__
        return None

    def keyword_line(self, line: str, mapping: Mapping[Any, int]) -> bool:
        if not _has_any(line, KEYWORD_WORDS):
            return False
        for candidate in self.keyword.analyze_string(line, denylist_regex_to_group=dict(mapping)):
            if (
                not self.plugins.is_templated_secret(candidate)
                and candidate.lower() not in _PLACEHOLDERS
            ):
                return True
        return False

    def high_entropy(self, value: str, *, whole: bool = False) -> HighEntropyStringsPlugin | None:
        """The entropy plugin that finds a random-looking token in ``value`` (with
        ``whole``, only when the entire value is that token)."""
        for plugin, run in self.entropy:
            if whole:
                tokens = [value] * bool(run.fullmatch(value))
            elif _PATH_LIKE.match(value):
                # "/" is a base64 character, so a long path would be one "random" token.
                tokens = [t for part in value.split("/") for t in run.findall(part)]
            else:
                tokens = run.findall(value)
            for token in tokens:
                if self.plugins.is_potential_uuid(token) or self.plugins.is_sequential_string(
                    token
                ):
                    continue
                if plugin.calculate_shannon_entropy(token) > plugin.entropy_limit:
                    return plugin
        return None


def _last_name(path: Path) -> str:
    for step in reversed(path):
        if isinstance(step, str) and step != "value":
            return step
    return ""


def _classify(
    path: Path,
    value: str,
    detectors: _Detectors,
    formats: Sequence[RegexBasedDetector],
    owner: str = "",
) -> tuple[str, str, str] | None:
    """(kind, detector, message) for a plaintext string, or None when it looks harmless."""
    if value.strip().lower() in _PLACEHOLDERS:
        return None
    clipped = clip_runs(value)
    detector = detectors.known_format(clipped, formats)
    if detector is not None:
        return ("known_format", f"detect-secrets:{detector}", "a known secret format in plaintext")
    # An output's value has no attribute name of its own: the output's name stands in.
    name = _last_name(path) or owner
    if name and _SECRET_NAME.search(name) and not _NOT_SECRET_NAME.search(name):
        return ("secret_name", "name", f"attribute name {name!r} looks secret and holds a value")
    if ("=" in value or ":" in value) and _has_any(value, KEYWORD_WORDS):
        for line in clipped.splitlines():
            if detectors.keyword_line(line, detectors.plugins.config_denylist):
                return (
                    "secret_name",
                    "detect-secrets:KeywordDetector",
                    "a line assigns a value to a secret-looking keyword",
                )
    if name and _RANDOM_BUT_PUBLIC.search(name):
        return None
    plugin = detectors.high_entropy(value)
    if plugin is not None:
        return (
            "high_entropy",
            f"detect-secrets:{type(plugin).__name__}",
            f"a random-looking string (entropy above {plugin.entropy_limit})",
        )
    return None


Leaves = list[tuple[Path, str]]


def _string_leaves(root: Any, skip: Sequence[Path]) -> Leaves:
    return [
        (path, leaf)
        for path, leaf in flatten(root, values_only=True)
        if isinstance(leaf, str) and leaf and covering(path, skip) is None
    ]


def _blob(leaves: Leaves) -> str:
    # Newline-joined: every detector pattern that matches one value also matches here
    # (their boundaries accept whitespace), so a miss on the blob is a miss on each value.
    return "\n".join(dict.fromkeys(clip_runs(leaf) for _, leaf in leaves))


def scan_state(state: Mapping[str, Any]) -> list[SecretFinding]:
    """Findings for every resource instance and output of a decoded tfstate."""
    detectors = _Detectors()
    # (address, Terraform-marked findings, other string values) per instance/output
    units: list[tuple[str, list[SecretFinding], Leaves, str]] = []
    for address, instance in iter_instances(state):
        attrs = instance_attributes(instance)
        marked = sensitive_paths(instance)
        found = [
            SecretFinding(
                address,
                format_path(path),
                "sensitive",
                "terraform:sensitive_attributes",
                "Terraform marks this attribute sensitive; the state holds it in plaintext",
            )
            for path in marked
            if _has_value(get_path(attrs, path))
        ]
        units.append((address, found, _string_leaves(attrs, marked), ""))
    outputs = state.get("outputs")
    if isinstance(outputs, Mapping):
        for name, output in outputs.items():
            if not isinstance(output, Mapping):
                continue
            address = f"output.{name}"
            value = output.get("value")
            if output.get("sensitive") is not True:
                units.append((address, [], _string_leaves({"value": value}, ()), str(name)))
            elif _has_value(value):
                message = "a sensitive output; the state holds it in plaintext"
                detector = "terraform:sensitive_output"
                finding = SecretFinding(address, "value", "sensitive", detector, message)
                units.append((address, [finding], [], str(name)))
    # Known formats are rare: one pass over the whole state picks the few detectors
    # worth running per instance, and usually there are none.
    everywhere = detectors.candidates(_blob([leaf for unit in units for leaf in unit[2]]))
    findings: list[SecretFinding] = []
    for address, found, leaves, owner in units:
        findings.extend(found)
        formats = detectors.candidates(_blob(leaves), everywhere) if everywhere else []
        for path, leaf in leaves:
            verdict = _classify(path, leaf, detectors, formats, owner)
            if verdict is not None:
                kind, detector, message = verdict
                findings.append(SecretFinding(address, format_path(path), kind, detector, message))
    return findings


_QUOTED = re.compile(r"""(['"])(.+?)\1""")


def scan_text(text: str) -> list[SecretFinding]:
    """Findings in a raw file, line by line; address is ``line N``."""
    detectors = _Detectors()
    text = clip_runs(text)
    formats = detectors.candidates(text)
    findings: list[SecretFinding] = []
    for number, line in enumerate(text.splitlines(), start=1):
        address = f"line {number}"
        detector = detectors.known_format(line, formats)
        if detector is not None:
            message = "a known secret format in plaintext"
            kind = "known_format"
            name = f"detect-secrets:{detector}"
        elif detectors.keyword_line(line, detectors.plugins.config_denylist) or (
            detectors.keyword_line(line, detectors.plugins.quotes_denylist)
        ):
            message = "a line assigns a value to a secret-looking keyword"
            kind = "secret_name"
            name = "detect-secrets:KeywordDetector"
        else:
            # Like detect-secrets, only quoted strings count for entropy in free text:
            # unquoted words in prose and code are too often long identifiers.
            plugin = next(
                (
                    found
                    for quoted in _QUOTED.finditer(line)
                    if (found := detectors.high_entropy(quoted.group(2), whole=True))
                ),
                None,
            )
            if plugin is None:
                continue
            message = f"a random-looking quoted string (entropy above {plugin.entropy_limit})"
            kind = "high_entropy"
            name = f"detect-secrets:{type(plugin).__name__}"
        findings.append(SecretFinding(address, "", kind, name, message))
    return findings


def scan_bytes(body: bytes) -> list[SecretFinding]:
    """Scan a file's content: as a state when it is one, else line by line as text."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, Mapping) and isinstance(data.get("resources"), list) and "lineage" in data:
        return scan_state(data)
    return scan_text(body.decode("utf-8", errors="replace"))


class SecretPaths:
    """Where the secret scan would flag values, as JSON paths: what a viewer (the web
    console, a diff with values) must hide. One instance per request or diff (it
    holds detect-secrets plugin instances, which are not shared between threads)."""

    def __init__(self) -> None:
        self._detectors = _Detectors()

    def instance(self, instance: Mapping[str, Any]) -> list[Path]:
        """Paths under an instance's attributes to hide: every path Terraform marks
        sensitive (with or without a value) and every string the scan flags."""
        attrs = instance_attributes(instance)
        marked = sensitive_paths(instance)
        leaves = _string_leaves(attrs, marked)
        formats = self._detectors.candidates(_blob(leaves)) if leaves else []
        found = list(marked)
        for path, leaf in leaves:
            if _classify(path, leaf, self._detectors, formats) is not None:
                found.append(path)
        return found

    def output(self, name: str, output: Mapping[str, Any]) -> bool:
        """True when an output must be hidden: marked sensitive, or any string in its
        value is flagged."""
        if output.get("sensitive") is True:
            return True
        leaves = _string_leaves({"value": output.get("value")}, ())
        if not leaves:
            return False
        formats = self._detectors.candidates(_blob(leaves))
        return any(
            _classify(path, leaf, self._detectors, formats, name) is not None
            for path, leaf in leaves
        )
