"""The state server: Terraform's http backend, the JSON API, metrics and health.

``create_app(settings, store)`` is the ASGI app; ``serve(...)`` runs it in the
foreground (the ``driftsafe serve`` command); ``start_server(...)`` runs it on a
free loopback port in a background thread (tests, benchmarks).
Other packages import only the names below.
"""

from driftsafe.server.app import create_app
from driftsafe.server.serving import RunningServer, is_loopback, serve, start_server

__all__ = ["RunningServer", "create_app", "is_loopback", "serve", "start_server"]
