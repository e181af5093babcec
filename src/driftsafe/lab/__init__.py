"""The lab: the staging/prod stack scaffold, the drill that walks it, and its report.

Other packages import only the names below.
"""

from driftsafe.lab.drill.scenario import STEP_NAMES, DrillOutcome, run_drill, summary_line
from driftsafe.lab.evidence import Artifact, Check, Evidence, Step, Transcript, load_transcript
from driftsafe.lab.report import ReportPaths, write_report
from driftsafe.lab.scaffold import Stack, init_stack

__all__ = [
    "STEP_NAMES",
    "Artifact",
    "Check",
    "DrillOutcome",
    "Evidence",
    "ReportPaths",
    "Stack",
    "Step",
    "Transcript",
    "init_stack",
    "load_transcript",
    "run_drill",
    "summary_line",
    "write_report",
]
