"""Pure functions on Terraform state JSON: parsing, write rules, diff, secret scan.

Nothing in this package does I/O, so the server, the CLI and tests share one truth.
Other packages import only the names below.
"""

from driftsafe.state.diff import (
    SENSITIVE,
    OutputChange,
    ResourceChange,
    StateDiff,
    ValueChange,
    change_counts,
    changed_paths,
    diff_bodies,
    diff_loaded,
    diff_states,
)
from driftsafe.state.model import EncryptedState, TfState, parse_body, parse_state, state_from_json
from driftsafe.state.paths import flatten, instance_address, iter_instances, sensitive_paths
from driftsafe.state.rules import VersionMeta, check_write
from driftsafe.state.secrets import SecretFinding, SecretPaths, scan_bytes, scan_state, scan_text
from driftsafe.state.view import ResourceRow, attribute_rows, output_rows, resource_rows

__all__ = [
    "EncryptedState",
    "SENSITIVE",
    "OutputChange",
    "ResourceChange",
    "ResourceRow",
    "SecretFinding",
    "SecretPaths",
    "StateDiff",
    "TfState",
    "ValueChange",
    "VersionMeta",
    "attribute_rows",
    "change_counts",
    "changed_paths",
    "check_write",
    "diff_bodies",
    "diff_loaded",
    "diff_states",
    "flatten",
    "instance_address",
    "iter_instances",
    "parse_body",
    "output_rows",
    "parse_state",
    "resource_rows",
    "scan_bytes",
    "scan_state",
    "scan_text",
    "sensitive_paths",
    "state_from_json",
]
