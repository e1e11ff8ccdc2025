"""Reach Python interpreters for execnet: XSpec, popen, ssh, vagrant_ssh, socket and via.

Also the bootstrap that starts the remote half, and the socket server.
"""

from __future__ import annotations

from .__about__ import __version__

__all__ = ["__version__"]
