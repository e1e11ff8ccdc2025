"""Groups of execnet gateways: Group, MultiChannel, robust termination.

    >>> from execnet_group import Group
    >>> group = Group(["popen", "popen"])
    >>> len(set(group.remote_exec("import os; channel.send(os.getpid())").receive_each()))
    2
    >>> print(group.terminate(timeout=30))
    terminated: exited ['gw0', 'gw1']

``default_group`` is the Group that the module-level ``makegateway`` and
``set_execmodel`` use (``execnet.makegateway`` too). Every group still alive at
interpreter exit is terminated with ``ATEXIT_TIMEOUT`` seconds to end before its
children are killed:

    >>> from execnet_group import ATEXIT_TIMEOUT, default_group
    >>> type(default_group).__name__, ATEXIT_TIMEOUT
    ('Group', 1.0)
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
