"""Rapid multi-Python deployment: the execnet API, rebuilt as small typed packages."""

from __future__ import annotations

from .__about__ import __version__

__all__ = ["__version__"]
