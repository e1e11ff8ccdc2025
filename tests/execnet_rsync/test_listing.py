"""The sender's walk, link rewriting, the listing codec and the receiver's decisions:
pure functions over real directories, no gateway."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import Callable

import pytest

from execnet_rsync._listing import link_target, scan, special_kind
from execnet_rsync._remote import (
    CHECK,
    DIR,
    FILE,
    LINK,
    MODE,
    NEED,
    SAME,
    TREE_LINK,
    Entry,
    decode_ints,
    decode_listing,
    encode_ints,
    encode_listing,
    file_action,
)

MakeTree = Callable[[Path, dict], Path]


def _scan(root: Path, accept=lambda path: True):  # type: ignore[no-untyped-def]
    skipped: list[tuple[str, str]] = []
    listing = scan(str(root), accept, lambda name, why: skipped.append((name, why)))
    return listing, skipped


def test_scan_lists_parents_before_children_sorted(tree: Path) -> None:
    listing, skipped = _scan(tree)
    names = listing.names
    assert names[0] == ""
    assert listing.entries[0].kind == DIR
    assert sorted(names[1:]) == sorted(
        [
            "a.txt", "empty", "new\nline", "sub", "sub/b.bin", "sub/deeper",
            "sub/deeper/c.py", "with space", "with space/ü ni c😀de",
        ]
    )  # fmt: skip
    for i, name in enumerate(names):
        parent = name.rpartition("/")[0]
        assert names.index(parent) < i or name == ""
    assert skipped == []
    by_name = dict(zip(names, listing.entries))
    assert by_name["sub/b.bin"].kind == FILE
    assert by_name["sub/b.bin"].size == 2560
    assert by_name["sub/b.bin"].relpath == b"sub/b.bin"
    assert by_name["with space/ü ni c😀de"].relpath == "with space/ü ni c😀de".encode()
    assert listing.paths[names.index("sub/b.bin")] == os.path.join(str(tree), "sub", "b.bin")


def test_filter_sees_full_paths_and_prunes_directories(tree: Path) -> None:
    seen: list[str] = []

    def accept(path: str) -> bool:
        seen.append(path)
        return os.path.basename(path) != "sub"

    listing, _ = _scan(tree, accept)
    assert not any(name.startswith("sub") for name in listing.names)
    assert os.path.join(str(tree), "a.txt") in seen
    assert not any("deeper" in path for path in seen)


def test_special_files_are_skipped_with_a_reason(tmp_path: Path, make_tree: MakeTree) -> None:
    root = make_tree(tmp_path / "src", {"keep": "x"})
    os.mkfifo(root / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(root / "sock"))
        listing, skipped = _scan(root)
    finally:
        sock.close()
    assert listing.names == ["", "keep"]
    reasons = dict(skipped)
    assert reasons["pipe"].startswith("a fifo")
    assert reasons["sock"].startswith("a socket")
    assert "only files, directories and links" in reasons["pipe"]
    assert special_kind(stat.S_IFCHR) == "a character device"
    assert special_kind(stat.S_IFREG) is None


def test_absolute_links_inside_are_listed_as_tree_links(
    tmp_path: Path, make_tree: MakeTree
) -> None:
    root = make_tree(tmp_path / "src", {"dir/file": "x", "top": "y"})
    outside = make_tree(tmp_path / "outside", {"o": "z"})
    os.symlink(str(root / "top"), root / "dir" / "abs_in")
    os.symlink("../top", root / "dir" / "rel_in")
    os.symlink(str(outside / "o"), root / "abs_out")
    os.symlink("../outside/o", root / "rel_out")
    os.symlink(str(root / "dir"), root / "dirlink")
    os.symlink(str(root / "dirlink"), root / "chain")
    listing, _ = _scan(root)
    links = {
        n: (e.kind, e.target)
        for n, e in zip(listing.names, listing.entries)
        if e.kind in (LINK, TREE_LINK)
    }
    assert links == {
        "dir/abs_in": (TREE_LINK, b"top"),
        "dir/rel_in": (LINK, b"../top"),
        "abs_out": (LINK, os.fsencode(str(outside / "o"))),
        "rel_out": (LINK, b"../outside/o"),
        "dirlink": (TREE_LINK, b"dir"),
        "chain": (TREE_LINK, b"dirlink"),  # a link to a link: each keeps its own kind
    }
    # a link to a directory is not followed: nothing is listed under it
    assert not any(name.startswith("dirlink/") for name in listing.names)


def test_link_target_rules() -> None:
    assert link_target("/s", "/s/a/x") == (TREE_LINK, "a/x")
    assert link_target("/s", "/s") == (TREE_LINK, "")  # the tree's root is inside it
    assert link_target("/s", "/s/") == (TREE_LINK, "")
    assert link_target("/s", "/s/./a//x") == (TREE_LINK, "a/x")
    assert link_target("/s", "/s/a/../b") == (TREE_LINK, "b")
    assert link_target("/s", "/s/../t") == (LINK, "/s/../t")  # leaves the tree: as it is
    assert link_target("/s", "/sx/y") == (LINK, "/sx/y")  # a sibling with a common prefix
    assert link_target("/s", "/etc/hosts") == (LINK, "/etc/hosts")
    assert link_target("/s", "relative/anything") == (LINK, "relative/anything")
    assert link_target("/s", "../s/inside") == (LINK, "../s/inside")  # relative: as it is


def test_source_that_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        _scan(tmp_path / "f")
    with pytest.raises(FileNotFoundError):
        _scan(tmp_path / "missing")


def test_listing_codec_round_trips_any_name() -> None:
    entries = [
        Entry(DIR, b"", 0, 1, 0o755, b""),
        Entry(FILE, b"with space/new\nline \xff\xfe", 12, 1_700_000_000_123_456_789, 0o644, b""),
        Entry(LINK, "ü😀".encode(), 0, 5, 0o777, b"../x y"),
    ]
    assert decode_listing(encode_listing(entries)) == entries
    assert decode_listing(b"") == []
    with pytest.raises(ValueError, match="not a multiple of 6"):
        decode_listing(b"d\0x")
    assert decode_ints(encode_ints([0, 1, 2**40, 7])) == [0, 1, 2**40, 7]
    assert decode_ints(b"") == []


def test_file_action_decides_from_size_mtime_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"1234")
    os.chmod(path, 0o640)
    st = os.lstat(path)

    def entry(size: int = 4, mtime: int = st.st_mtime_ns, mode: int = 0o640) -> Entry:
        return Entry(FILE, b"f", size, mtime, mode, b"")

    assert file_action(entry(), None) == NEED
    assert file_action(entry(), os.lstat(tmp_path)) == NEED  # a directory is in the way
    assert file_action(entry(size=5), st) == NEED
    assert file_action(entry(mtime=st.st_mtime_ns + 1), st) == CHECK
    assert file_action(entry(mode=0o600), st) == MODE
    assert file_action(entry(), st) == SAME


def test_the_remote_half_is_self_contained() -> None:
    """_remote.py travels as remote_exec source: standard library imports only."""
    import ast
    import sys

    from execnet_rsync import _remote

    tree = ast.parse(Path(_remote.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports in travelling code"
            assert node.module != "__future__", "the source may run after other text"
            imported.add((node.module or "").split(".")[0])
    assert imported
    assert imported <= set(sys.stdlib_module_names)
