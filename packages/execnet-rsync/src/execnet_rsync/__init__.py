"""Directory synchronisation to any number of execnet gateways.

    rsync = RSync("src/mypkg")
    rsync.add_target(gateway, "/tmp/mypkg", delete=True)
    rsync.send()

(``RSync``'s docstring has the same as an example that runs.)
"""

from __future__ import annotations

from .__about__ import __version__
from ._protocols import SupportsRemoteExec
from ._rsync import RSync, RSyncError

__all__ = ["RSync", "RSyncError", "SupportsRemoteExec", "__version__"]
