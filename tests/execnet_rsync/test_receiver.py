"""The remote half's Receiver, driven in this process on real directories: what it asks
for, what it writes, what it deletes. (The same code runs remotely in test_rsync.py.)"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Callable

import pytest

from execnet_rsync._listing import Listing, scan
from execnet_rsync._reading import ChangedWhileReading, SourceFile
from execnet_rsync._remote import Receiver, file_digest, remove_path


def _listing(src: Path) -> Listing:
    return scan(str(src), lambda path: True, lambda name, why: None)


def _receiver(src: Path, dest: Path | str, delete: bool = False) -> tuple[Receiver, Listing]:
    listing = _listing(src)
    return Receiver(os.fsencode(str(dest)), listing.entries, delete), listing


def _meta(listing: Listing, index: int, length: int) -> bytes:
    entry = listing.entries[index]
    return b"%d %d %d %d" % (index, entry.mode, entry.mtime_ns, length)


def sync_locally(src: Path, dest: Path | str, delete: bool = False) -> dict[str, Any]:
    """What RSync does, without a channel: plan, send what is wanted, touch what matches."""
    receiver, listing = _receiver(src, dest, delete)
    wanted, checks = receiver.plan()
    touched = []
    for index, theirs in checks:
        if file_digest(os.fsencode(listing.paths[index])) == theirs:
            entry = listing.entries[index]
            receiver.touch(b"%d %d %d" % (index, entry.mode, entry.mtime_ns))
            touched.append(listing.names[index])
        else:
            wanted.append(index)
    for index in wanted:
        data = Path(listing.paths[index]).read_bytes()
        assert receiver.store_files(_meta(listing, index, len(data)), (data,)) == [len(data)]
    receiver.close()
    return {
        "sent": sorted(listing.names[i] for i in wanted),
        "checked": sorted(listing.names[i] for i, _ in checks),
        "touched": touched,
        "errors": receiver.errors,
    }


Snapshot = Callable[[Path | str], dict[bytes, tuple[object, ...]]]


def test_first_sync_sends_everything_then_nothing(
    tree: Path, tmp_path: Path, snapshot: Snapshot
) -> None:
    dest = tmp_path / "a" / "b" / "dest"
    first = sync_locally(tree, dest)
    assert len(first["sent"]) == 6
    assert first["errors"] == []
    assert snapshot(dest) == snapshot(tree)
    assert sync_locally(tree, dest) == {"sent": [], "checked": [], "touched": [], "errors": []}
    assert not [p for p in os.listdir(dest) if "rsync-tmp" in p]


def test_equal_size_and_other_mtime_is_settled_by_hash(
    tree: Path, tmp_path: Path, snapshot: Snapshot
) -> None:
    dest = tmp_path / "dest"
    sync_locally(tree, dest)
    os.utime(tree / "a.txt", ns=(1, 1_000_000_000))  # same content, other mtime
    (tree / "sub" / "deeper" / "c.py").write_text("print('C')\n")  # same size, other bytes
    os.utime(tree / "sub" / "deeper" / "c.py", ns=(1, 2_000_000_000))
    result = sync_locally(tree, dest)
    assert result["checked"] == ["a.txt", "sub/deeper/c.py"]
    assert result["touched"] == ["a.txt"]
    assert result["sent"] == ["sub/deeper/c.py"]
    assert snapshot(dest) == snapshot(tree)


def test_mode_only_change_needs_no_transfer(tree: Path, tmp_path: Path, snapshot: Snapshot) -> None:
    dest = tmp_path / "dest"
    sync_locally(tree, dest)
    os.chmod(tree / "a.txt", 0o751)
    assert sync_locally(tree, dest)["sent"] == []
    assert stat.S_IMODE(os.stat(dest / "a.txt").st_mode) == 0o751
    assert snapshot(dest) == snapshot(tree)


def test_delete_removes_what_the_source_lacks(
    tree: Path, tmp_path: Path, make_tree: Any, snapshot: Snapshot
) -> None:
    dest = tmp_path / "dest"
    make_tree(dest, {"stale.txt": "x", "old/dir/f": "y", "sub/gone": "z"})
    os.chmod(dest / "old" / "dir", 0o555)  # read-only: removed all the same
    os.symlink("/nowhere", dest / "deadlink")
    kept = sync_locally(tree, dest)
    assert (dest / "stale.txt").exists()
    assert kept["errors"] == []
    sync_locally(tree, dest, delete=True)
    assert snapshot(dest) == snapshot(tree)


def test_type_conflicts_are_replaced(tmp_path: Path, make_tree: Any, snapshot: Snapshot) -> None:
    src = make_tree(tmp_path / "src", {"was_dir": "now a file", "was_file/x": "now a dir"})
    os.symlink("was_dir", src / "was_link_dir")
    dest = make_tree(tmp_path / "dest", {"was_dir/inner": "old", "was_file": "old"})
    (dest / "was_link_dir").mkdir()
    (dest / "was_link_dir" / "f").write_text("old")
    assert sync_locally(src, dest)["errors"] == []
    assert snapshot(dest) == snapshot(src)


def test_links_are_recreated_and_kept(tmp_path: Path, make_tree: Any, snapshot: Snapshot) -> None:
    src = make_tree(tmp_path / "src", {"d/f": "x"})
    os.symlink(str(src / "d" / "f"), src / "abs_in")
    os.symlink("/etc/hostname", src / "abs_out")
    os.symlink(str(src / "d"), src / "dirlink")
    dest = tmp_path / "dest"
    sync_locally(src, dest)
    assert os.readlink(dest / "abs_in") == str(dest / "d" / "f")
    assert (dest / "abs_in").read_text() == "x"
    assert os.readlink(dest / "abs_out") == "/etc/hostname"
    assert os.readlink(dest / "dirlink") == str(dest / "d")
    before = os.lstat(dest / "abs_in").st_ino
    sync_locally(src, dest)
    assert os.lstat(dest / "abs_in").st_ino == before  # an equal link is left alone
    os.unlink(src / "abs_out")
    os.symlink("/etc/passwd", src / "abs_out")
    sync_locally(src, dest)
    assert os.readlink(dest / "abs_out") == "/etc/passwd"


def test_absolute_links_into_the_tree_become_absolute_links_into_the_destination(
    tmp_path: Path, make_tree: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_tree(tmp_path / "src", {"d/f": "x"})
    os.symlink(str(src), src / "root")  # the tree's root itself: the destination
    os.symlink(str(src) + "/d/../d/f", src / "d" / "dots")  # normalized
    os.symlink(str(src / "d" / "dots"), src / "chain")  # a link to a link inside
    os.symlink("../d/f", src / "d" / "relative")  # relative: as it is
    monkeypatch.chdir(tmp_path)
    assert sync_locally(src, "rel/dest/")["errors"] == []
    dest = tmp_path / "rel" / "dest"  # given relative: the links are absolute all the same
    assert os.readlink(dest / "root") == str(dest)
    assert os.readlink(dest / "d" / "dots") == str(dest / "d" / "f")
    assert os.readlink(dest / "chain") == str(dest / "d" / "dots")
    assert os.readlink(dest / "d" / "relative") == "../d/f"
    assert (dest / "chain").read_text() == "x"


def test_read_only_directories_sync_again(
    tmp_path: Path, make_tree: Any, snapshot: Snapshot
) -> None:
    src = make_tree(tmp_path / "src", {"ro/f": "1", "ro/deeper/g": "2"})
    os.chmod(src / "ro" / "deeper", 0o555)
    os.chmod(src / "ro", 0o555)
    dest = tmp_path / "dest"
    try:
        assert sync_locally(src, dest)["errors"] == []
        assert stat.S_IMODE(os.stat(dest / "ro").st_mode) == 0o555
        assert snapshot(dest) == snapshot(src)
        os.chmod(src / "ro", 0o755)
        (src / "ro" / "f").write_text("22")
        os.chmod(src / "ro", 0o555)
        assert sync_locally(src, dest)["sent"] == ["ro/f"]
        assert snapshot(dest) == snapshot(src)
    finally:
        for root in (src, dest):
            os.chmod(root / "ro", 0o755)
            os.chmod(root / "ro" / "deeper", 0o755)


def test_trailing_slash_and_relative_destdir(
    tree: Path, tmp_path: Path, snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert sync_locally(tree, "rel/dest/")["errors"] == []
    assert snapshot(tmp_path / "rel" / "dest") == snapshot(tree)


def test_destdir_that_is_a_link_to_a_directory(
    tree: Path, tmp_path: Path, snapshot: Snapshot
) -> None:
    (tmp_path / "real").mkdir()
    os.symlink("real", tmp_path / "dest")
    assert sync_locally(tree, tmp_path / "dest", delete=True)["errors"] == []
    assert os.readlink(tmp_path / "dest") == "real"
    assert snapshot(tmp_path / "real") == snapshot(tree)


def test_destdir_that_is_a_file(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "dest").write_text("in the way")
    receiver, _ = _receiver(tree, tmp_path / "dest")
    with pytest.raises(FileExistsError):
        receiver.plan()


def test_streamed_file_is_stored_only_when_complete(tmp_path: Path, make_tree: Any) -> None:
    src = make_tree(tmp_path / "src", {"big": b"x" * 10, "keep": b"old"})
    dest = tmp_path / "dest"
    sync_locally(src, dest)
    (src / "big").write_bytes(b"y" * 10)
    os.utime(src / "big", ns=(1, 5_000_000_000))
    receiver, listing = _receiver(src, dest)
    receiver.plan()
    index = listing.names.index("big")
    entry = listing.entries[index]
    # announced 10 bytes, 6 arrive: not stored, reported
    receiver.write_chunk(index, b"yyy")
    receiver.write_chunk(index, b"yyy")
    assert receiver.end_file(index, entry.mode, entry.mtime_ns, 10) is None
    assert "received 6 bytes, the sender announced 10" in receiver.errors[0]
    assert (dest / "big").read_bytes() == b"x" * 10
    # aborted by the sender: dropped
    receiver.write_chunk(index, b"yyyyy")
    receiver.abort_file(index)
    assert (dest / "big").read_bytes() == b"x" * 10
    # complete: stored with the mode and mtime sent
    receiver.write_chunk(index, b"yyyyy")
    receiver.write_chunk(index, b"yyyyy")
    assert receiver.end_file(index, 0o600, 5_000_000_000, 10) == 10
    receiver.write_chunk(index, b"partial, then the sender vanished")
    receiver.close()
    assert (dest / "big").read_bytes() == b"y" * 10
    st = os.stat(dest / "big")
    assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (0o600, 5_000_000_000)
    assert sorted(os.listdir(dest)) == ["big", "keep"]  # no temp file left behind
    assert receiver.consumed == 6 + 5 + 10 + 33


def test_store_reports_what_it_cannot_write(tmp_path: Path, make_tree: Any) -> None:
    src = make_tree(tmp_path / "src", {"d/f": "1", "g": "2"})
    dest = tmp_path / "dest"
    receiver, listing = _receiver(src, dest)
    receiver.plan()
    os.rmdir(dest / "d")  # gone under our feet (tests run as root: modes do not stop us)
    f, g = listing.names.index("d/f"), listing.names.index("g")
    meta = _meta(listing, f, 1) + b" " + _meta(listing, g, 1)
    assert receiver.store_files(meta, (b"1", b"2")) == [1]
    assert len(receiver.errors) == 1
    assert "dest/d/f: cannot store: FileNotFoundError" in receiver.errors[0]
    assert (dest / "g").read_text() == "2"


def test_store_refuses_contents_of_another_length(tmp_path: Path, make_tree: Any) -> None:
    src = make_tree(tmp_path / "src", {"f": "1234"})
    receiver, listing = _receiver(src, tmp_path / "dest")
    receiver.plan()
    assert receiver.store_files(_meta(listing, 1, 4), (b"12",)) == []
    assert "received 2 bytes, the sender announced 4: not stored" in receiver.errors[0]
    assert os.listdir(tmp_path / "dest") == []
    with pytest.raises(ValueError, match="1 contents for 8 fields"):
        receiver.store_files(_meta(listing, 1, 4) + b" " + _meta(listing, 1, 4), (b"1234",))


def test_source_file_notices_changes_while_read(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a" * 100)
    with SourceFile(str(path)) as source:
        assert source.read_whole() == b"a" * 100
    with SourceFile(str(path)) as source:
        with open(path, "ab") as f:
            f.write(b"more")
        with pytest.raises(ChangedWhileReading):
            source.read_whole()
    with SourceFile(str(path)) as source:
        pieces = source.pieces(size=10)
        first = next(pieces)
        with open(path, "r+b") as f:
            f.write(b"b" * 10)  # same size, new content: the mtime moves
        os.utime(path, ns=(1, 1))
        with pytest.raises(ChangedWhileReading):
            list(pieces)
        assert first in (b"a" * 10, b"b" * 10)


def test_recent_files_are_read_twice(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"fresh")
    with SourceFile(str(path)) as source:
        assert source.racy
        assert source.read_whole() == b"fresh"
    os.utime(path, ns=(1, 1_000_000_000))
    with SourceFile(str(path)) as source:
        assert not source.racy
        assert b"".join(source.pieces(size=2)) == b"fresh"


def test_remove_path_handles_read_only_trees(tmp_path: Path, make_tree: Any) -> None:
    root = make_tree(tmp_path / "t", {"a/b/c": "x"})
    os.chmod(root / "a" / "b", 0o500)
    os.chmod(root / "a", 0o500)
    remove_path(os.fsencode(str(root)))
    assert not root.exists()
