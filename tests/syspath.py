"""A directory on this process's sys.path for a while (the import tests' packages)."""

from __future__ import annotations

import contextlib
import importlib
import sys
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def on_sys_path(root: Path) -> Iterator[Path]:
    """`root` first on sys.path for the block, the import system's caches invalidated
    on the way in and out (a package written just now is found, and forgotten after)."""
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        importlib.invalidate_caches()
