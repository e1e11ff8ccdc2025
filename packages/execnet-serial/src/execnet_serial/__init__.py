"""Safe, cross-interpreter dumps/loads in execnet's wire format (no code, no pickle)."""

from __future__ import annotations

from .__about__ import __version__

__all__ = ["__version__"]
