"""execnet's channel protocol: execution models, framing, channels and the gateway endpoint."""

from __future__ import annotations

from .__about__ import __version__

__all__ = ["__version__"]
