"""Start the lab provider as a Terraform plugin: ``python -m driftsafe.provider``.

This is what the launcher in driftsafe's provider mirror runs, for every start.
It hands the start to the warm fork server when one runs (``launcher.py``), else
serves it cold here (``plugin.py``). Only the cold path imports pyvider.
"""

from __future__ import annotations

import os
import sys
import time

from driftsafe.provider import launcher


def main() -> None:
    started = time.time()
    args = sys.argv[1:]
    code = launcher.launch(args, started) if launcher.enabled(os.environ) else None
    if code is not None:
        # Terraform waits for this process to end; it has nothing to clean up.
        os._exit(code)
    from driftsafe.provider.plugin import serve_cold

    sys.exit(serve_cold(args, started))


if __name__ == "__main__":
    main()
