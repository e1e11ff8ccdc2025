"""Old module path: `execnet.xspec.XSpec`."""

from __future__ import annotations

from execnet_transport import XSpec

__all__ = ["XSpec"]
