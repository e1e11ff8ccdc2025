"""Old module path: `execnet.rsync.RSync`."""

from __future__ import annotations

from execnet_rsync import RSync

__all__ = ["RSync"]
