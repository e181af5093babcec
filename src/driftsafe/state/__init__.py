"""Pure functions on Terraform state JSON: parsing, write rules, diff, secret scan.

Nothing in this package does I/O, so the server, the CLI and tests share one truth.
Other packages import only the names below.
"""

from driftsafe.state.diff import StateDiff, changed_paths, diff_states
from driftsafe.state.model import EncryptedState, TfState, parse_body, parse_state, state_from_json
from driftsafe.state.paths import flatten, instance_address, iter_instances, sensitive_paths
from driftsafe.state.rules import VersionMeta, check_write
from driftsafe.state.secrets import SecretFinding, scan_bytes, scan_state, scan_text

__all__ = [
    "EncryptedState",
    "SecretFinding",
    "StateDiff",
    "TfState",
    "VersionMeta",
    "changed_paths",
    "check_write",
    "diff_states",
    "flatten",
    "instance_address",
    "iter_instances",
    "parse_body",
    "parse_state",
    "scan_bytes",
    "scan_state",
    "scan_text",
    "sensitive_paths",
    "state_from_json",
]
