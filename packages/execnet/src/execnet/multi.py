"""Old module path: groups of gateways (`execnet.multi.Group`, ...)."""

from __future__ import annotations

from execnet_group import Group, MultiChannel, default_group, makegateway, set_execmodel

__all__ = ["Group", "MultiChannel", "default_group", "makegateway", "set_execmodel"]
