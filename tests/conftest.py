"""Fixtures shared by every package's tests. Real parts are found through `parts`."""

from __future__ import annotations
