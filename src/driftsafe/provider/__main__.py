"""Start the lab provider as a Terraform plugin: ``python -m driftsafe.provider``.

This is what the launcher in driftsafe's provider mirror runs. It hands the start
to the warm fork server when one runs (see ``launcher.py``), else serves it cold.
"""

from __future__ import annotations

from driftsafe.provider.launcher import main

if __name__ == "__main__":
    main()
