"""Real trees on disk for the rsync tests, and a comparison of two trees."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable

import pytest


def _make_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    """Create `files` (relative name -> content) under root; returns root."""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def _snapshot(root: Path | str) -> dict[bytes, tuple[object, ...]]:
    """relative name -> (kind, content or link target, mode, mtime_ns) for every path
    under root, links not followed; names as bytes so any name compares exactly."""
    base = os.fsencode(str(root))
    found: dict[bytes, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, base)
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", mode)
            else:
                with open(path, "rb") as f:
                    found[rel] = ("file", f.read(), mode, st.st_mtime_ns)
    return found


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small source tree with nested directories, an empty file and odd names."""
    return _make_tree(
        tmp_path / "src",
        {
            "a.txt": "alpha\n",
            "empty": b"",
            "sub/b.bin": bytes(range(256)) * 10,
            "sub/deeper/c.py": "print('c')\n",
            "with space/ü ni c😀de": "unicode\n",
            "new\nline": "newline in the name\n",
        },
    )


@pytest.fixture
def make_tree() -> Callable[[Path, dict[str, bytes | str]], Path]:
    """make_tree(root, {name: content}) creates the files and their directories."""
    return _make_tree


@pytest.fixture
def snapshot() -> Callable[[Path | str], dict[bytes, tuple[object, ...]]]:
    """snapshot(root): {name: (kind, content or target, mode, mtime_ns)} of a whole tree."""
    return _snapshot
