"""``python -m driftsafe``: the same as the ``driftsafe`` command."""

from driftsafe.cli.main import main

main()
