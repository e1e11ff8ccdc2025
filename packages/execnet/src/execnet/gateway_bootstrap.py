"""Old module path: `execnet.gateway_bootstrap.HostNotFound`."""

from __future__ import annotations

from execnet_transport import HostNotFound

__all__ = ["HostNotFound"]
