"""Old module path: `execnet.gateway.Gateway`."""

from __future__ import annotations

from execnet_transport import Gateway

__all__ = ["Gateway"]
