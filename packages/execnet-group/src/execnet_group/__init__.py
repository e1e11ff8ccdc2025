"""Groups of execnet gateways: Group, MultiChannel, robust termination.

from execnet_group import Group

group = Group(["popen", "popen"])
print(group.remote_exec("import os; channel.send(os.getpid())").receive_each())
print(group.terminate(timeout=5))
"""

from __future__ import annotations

from .__about__ import __version__
from ._group import ATEXIT_TIMEOUT, Group, default_group, makegateway, set_execmodel
from ._multichannel import MultiChannel
from ._termination import GatewayTermination, TerminateReport

__all__ = [
    "Group",
    "MultiChannel",
    "default_group",
    "makegateway",
    "set_execmodel",
    "TerminateReport",
    "GatewayTermination",
    "ATEXIT_TIMEOUT",
    "__version__",
]
