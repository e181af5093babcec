"""Drift control: refresh-only checks, the drift report, resolution, alerts, CI.

Entry points (import the submodules; nothing runs at import time):
- ``driftsafe.drift.check.check_roots(roots, *, engine, env=None, ...) -> list[RootReport]``
- ``driftsafe.drift.resolve.resolve(root, *, codify=[...], revert=[...], engine, env=None)
  -> Resolution`` (every Terraform RunResult in ``Resolution.runs``)
- ``driftsafe.drift.notify`` (webhook, GitHub issue, history), ``driftsafe.drift.pr``
- ``driftsafe.drift.ci.init_ci(directory, ...)`` for ``driftsafe ci init``
"""
