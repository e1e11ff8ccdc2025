"""Fixtures shared by every package's tests. Real parts are found through `parts`."""

from __future__ import annotations

from socketservers import pki, servers  # noqa: F401  (real socket servers, throwaway CA)
from sshd import sshd, sshd_hosts  # noqa: F401  (the real-OpenSSH fixtures, tests/sshd.py)
