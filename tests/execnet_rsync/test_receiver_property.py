"""Any source tree over any existing destination: after a sync with delete=True the
destination equals the source (types, contents, modes, links), whatever was in the way.
Driven in this process through the same Receiver the remote half runs."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Union

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from execnet_rsync._listing import scan
from execnet_rsync._remote import Receiver, file_digest

Node = Union[bytes, str, dict]  # file content, link target, directory

names = st.sampled_from(["a", "b", "c d", "é", "new\nline"])
leaves = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(["a", "../b", "/etc/hostname", "missing"]),  # link targets
)
trees = st.recursive(
    leaves, lambda children: st.dictionaries(names, children, max_size=4), max_leaves=12
)
roots = st.dictionaries(names, trees, max_size=5)
modes = st.sampled_from([0o644, 0o600, 0o755, 0o444])


def build(path: Path, node: Node, mode: int) -> None:
    if isinstance(node, dict):
        path.mkdir()
        for name, child in node.items():
            build(path / name, child, mode)
    elif isinstance(node, str):
        os.symlink(node, path)
    else:
        path.write_bytes(node)
        os.chmod(path, mode)


def snapshot(root: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st_ = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISLNK(st_.st_mode):
                found[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st_.st_mode):
                found[rel] = ("dir", stat.S_IMODE(st_.st_mode))
            else:
                found[rel] = ("file", Path(path).read_bytes(), stat.S_IMODE(st_.st_mode))
    return found


def sync(src: Path, dest: Path, delete: bool) -> list[str]:
    listing = scan(str(src), lambda path: True, lambda name, why: None)
    receiver = Receiver(os.fsencode(str(dest)), listing.entries, delete)
    wanted, checks = receiver.plan()
    for index, theirs in checks:
        entry = listing.entries[index]
        if file_digest(os.fsencode(listing.paths[index])) == theirs:
            receiver.touch(b"%d %d %d" % (index, entry.mode, entry.mtime_ns))
        else:
            wanted.append(index)
    for index in wanted:
        entry = listing.entries[index]
        data = Path(listing.paths[index]).read_bytes()
        meta = b"%d %d %d %d" % (index, entry.mode, entry.mtime_ns, len(data))
        receiver.store_files(meta, (data,))
    receiver.close()
    return receiver.errors


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=roots, existing=roots, mode=modes, delete=st.booleans())
def test_any_tree_over_any_destination(
    source: dict[str, Node], existing: dict[str, Node], mode: int, delete: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src, dest = Path(tmp) / "src", Path(tmp) / "dest"
        build(src, source, mode)
        build(dest, existing, 0o644)
        assert sync(src, dest, delete) == []
        want, got = snapshot(src), snapshot(dest)
        if delete:
            assert got == want
        else:
            # every source path is there as in the source; what the source lacks may stay
            assert {k: v for k, v in got.items() if k in want} == want
        assert sync(src, dest, delete) == []  # and again: a fixed point
        assert snapshot(dest) == got
