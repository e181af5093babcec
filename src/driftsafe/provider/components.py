"""What pyvider's discovery loads (entry point ``pyvider: lab``).

``register_components`` is pyvider's fast path: registering explicitly avoids
walking and importing every submodule, which matters because Terraform starts
the provider several times per plan.
"""

from __future__ import annotations

from typing import Any

from pyvider.providers import BaseProvider, ProviderMetadata

PROVIDER_NAME = "lab"
PROVIDER_VERSION = "0.1.0"


class LabProvider(BaseProvider):
    """The provider itself: no configuration, everything lives in its resources."""

    def __init__(self) -> None:
        super().__init__(metadata=ProviderMetadata(name=PROVIDER_NAME, version=PROVIDER_VERSION))

    async def configure(self, config: Any) -> None:
        # A provider serving a whole run (a session) is configured once per
        # provider instance Terraform makes: a repeat is normal, and there is
        # nothing to configure anyway.
        if not self._configured:
            await super().configure(config)


def resource_classes() -> dict[str, type]:
    from driftsafe.provider.config_file import ConfigFile
    from driftsafe.provider.delay import Delay
    from driftsafe.provider.release import Release, Symlink
    from driftsafe.provider.secret_file import SecretFile

    return {
        "lab_config_file": ConfigFile,
        "lab_secret_file": SecretFile,
        "lab_release": Release,
        "lab_symlink": Symlink,
        "lab_delay": Delay,
    }


def register_components(hub: Any) -> None:
    hub.register("provider", PROVIDER_NAME, LabProvider)
    for name, cls in resource_classes().items():
        hub.register("resource", name, cls)
