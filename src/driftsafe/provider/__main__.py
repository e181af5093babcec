"""Start the lab provider as a Terraform plugin: ``python -m driftsafe.provider``."""

from __future__ import annotations

import os
import sys


def main() -> None:
    # pyvider refuses to serve when argv[0] does not look like a Terraform
    # provider (it guards against a human running it by hand); under `-m`,
    # argv[0] is this file, so present the launcher's name instead.
    sys.argv = ["terraform-provider-lab", "provide", *sys.argv[1:]]
    # Logs must never reach stdout: that is go-plugin's handshake channel.
    os.environ.setdefault("PYVIDER_LOG_LEVEL", "WARNING")
    from pyvider.cli.__main__ import main as pyvider_main

    pyvider_main()


if __name__ == "__main__":
    main()
