"""The rsync receiver against a hostile sender: nothing outside the destination is touched.

The receiving half runs for real, in a popen gateway (`remote_exec(execnet_rsync._remote)`
as RSync starts it); the "sender" is this test writing the listing and messages a
hostile peer would. Paths that leave the destination (absolute, `..`), entries listed
twice or below something that is not a listed directory, contents or mode changes for
entries the receiver did not ask for: each fails that sync with an error naming the
path. A link in the destination is replaced or refused, never written, chmod'ed or
touched through. The Receiver class is also driven in this process where the
destination must change under it (a directory swapped for a link between the plan and
the write).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import pytest

from execnet_channel import RemoteError
from execnet_rsync import RSync, RSyncError, _remote, _rsync
from execnet_rsync._remote import (
    DIR,
    FILE,
    LINK,
    TREE_LINK,
    Entry,
    Receiver,
    decode_ints,
    encode_ints,
    encode_listing,
)

TIMEOUT = 60.0
MTIME = 1_600_000_000_000_000_000

ROOT = Entry(DIR, b"", 0, MTIME, 0o755, b"")


def _dir(relpath: bytes) -> Entry:
    return Entry(DIR, relpath, 0, MTIME, 0o755, b"")


def _file(relpath: bytes, size: int = 5) -> Entry:
    return Entry(FILE, relpath, size, MTIME, 0o644, b"")


def _link(relpath: bytes, target: bytes, kind: bytes = LINK) -> Entry:
    return Entry(kind, relpath, 0, MTIME, 0o777, target)


@pytest.fixture
def gw() -> Iterator[Any]:
    from execnet_group import Group

    group = Group()
    yield group.makegateway("popen")
    group.terminate(30)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A directory outside the destination, with a file worth protecting."""
    outside = tmp_path / "victim"
    outside.mkdir()
    (outside / "precious.txt").write_text("precious")
    os.chmod(outside / "precious.txt", 0o600)
    os.utime(outside / "precious.txt", ns=(MTIME, MTIME))
    return outside


def _state(top: Path, skip: Path) -> Dict[str, Tuple[object, ...]]:
    """Every path under `top` but `skip`'s subtree: type, mode, mtime, content/target.
    (Not `top` itself, whose mtime moves when `skip` is made.)"""
    found: Dict[str, Tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            if Path(path) == skip:
                continue
            st = os.lstat(path)
            detail: object = None
            if stat.S_ISLNK(st.st_mode):
                detail = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                detail = Path(path).read_bytes()
            found[os.path.relpath(path, top)] = (st.st_mode, st.st_mtime_ns, detail)
    return found


@pytest.fixture
def outside_untouched(tmp_path: Path, victim: Path) -> Iterator[Path]:
    """The destination (tmp_path/dest); asserts afterwards that nothing else changed."""
    dest = tmp_path / "dest"
    before = _state(tmp_path, dest)
    yield dest
    assert _state(tmp_path, dest) == before


def hostile_sync(
    gw: Any,
    dest: Path,
    entries: Sequence[Entry],
    then: Sequence[Tuple[object, ...]] = (),
    delete: bool = False,
) -> List[Any]:
    """Play a sender: the listing, then contents for whatever the receiver wants, then
    the messages `then`, then "done". Returns what the receiver sent; its error (a
    RemoteError) propagates."""
    channel = gw.remote_exec(_remote)

    def send(message: object) -> None:
        try:
            channel.send(message)
        except OSError:  # the receiver ended the channel: raise its error
            channel.waitclose(TIMEOUT)
            raise

    send(("start", str(dest), delete, encode_listing(entries), True))
    heard = [channel.receive(TIMEOUT)]
    need = heard[0]
    for index in decode_ints(need[1]) + [index for index, _ in need[2]]:
        size = entries[index].size
        meta = encode_ints([index, 0o644, MTIME, size])
        send(("files", meta, (b"x" * size,)))
        heard.append(channel.receive(TIMEOUT))
    for message in then:
        send(message)
    send(("done",))
    while heard[-1][0] != "done":
        heard.append(channel.receive(TIMEOUT))
    channel.waitclose(TIMEOUT)
    return heard


def refused(gw: Any, dest: Path, entries: Sequence[Entry], *then: Tuple[object, ...]) -> str:
    """The text of the error the receiver ended the sync with."""
    with pytest.raises(RemoteError) as info:
        hostile_sync(gw, dest, entries, then)
    text = str(info.value)
    last = text.strip().splitlines()[-1]
    assert "UnsafeEntry: rsync receiver: " in last
    assert last.endswith("; the sync stops here")
    return last


def _escape(tmp_path: Path) -> bytes:
    return os.fsencode(str(tmp_path / "escaped.txt"))


BAD_PATHS = [
    (b"../escaped.txt", "a '..' component"),
    (b"sub/../../escaped.txt", "a '..' component"),
    (b"sub/./x", "a '.' component"),
    (b"sub//x", "an empty component"),
    (b"sub/", "an empty component"),
]


@pytest.mark.parametrize("kind", [FILE, DIR, LINK])
@pytest.mark.parametrize(("relpath", "problem"), BAD_PATHS)
def test_a_path_leaving_the_destination_is_refused(
    gw: Any, outside_untouched: Path, kind: bytes, relpath: bytes, problem: str
) -> None:
    entry = Entry(kind, relpath, 5 if kind == FILE else 0, MTIME, 0o644, b"target")
    text = refused(gw, outside_untouched, [ROOT, _dir(b"sub"), entry])
    assert f"refusing listing entry 2 {os.fsdecode(relpath)!r}: {problem}" in text
    assert not outside_untouched.exists()  # the part was refused before any of it ran


def test_an_absolute_path_is_refused(gw: Any, outside_untouched: Path, tmp_path: Path) -> None:
    escape = _escape(tmp_path)
    text = refused(gw, outside_untouched, [ROOT, _file(escape)])
    assert f"refusing listing entry 1 {os.fsdecode(escape)!r}: an absolute path" in text


def test_a_second_root_is_refused(gw: Any, outside_untouched: Path) -> None:
    # an entry naming the destination itself could replace it (by a link, a file...)
    text = refused(gw, outside_untouched, [ROOT, _link(b"", b"/")])
    assert "refusing listing entry 1 '': an empty path" in text


def test_a_bad_first_entry_is_refused(gw: Any, outside_untouched: Path) -> None:
    text = refused(gw, outside_untouched, [_file(b"x")])
    assert "the first entry must be the destination directory itself" in text


def test_a_file_below_a_listed_link_is_refused(
    gw: Any, outside_untouched: Path, victim: Path
) -> None:
    entries = [ROOT, _link(b"sub", os.fsencode(str(victim))), _file(b"sub/planted.txt")]
    text = refused(gw, outside_untouched, entries)
    assert "'sub/planted.txt': its parent is not a directory listed before it" in text
    assert not (victim / "planted.txt").exists()


def test_a_path_listed_twice_is_refused(gw: Any, outside_untouched: Path, victim: Path) -> None:
    # first a directory (a valid parent), then a link in its place, then a file below
    entries = [
        ROOT,
        _dir(b"sub"),
        _link(b"sub", os.fsencode(str(victim))),
        _file(b"sub/planted.txt"),
    ]
    text = refused(gw, outside_untouched, entries)
    assert "refusing listing entry 2 'sub': listed twice" in text


def test_a_link_already_in_the_destination_is_not_written_through(
    gw: Any, outside_untouched: Path, victim: Path
) -> None:
    dest = outside_untouched
    dest.mkdir()
    os.symlink(str(victim), dest / "sub")
    # the file alone, its directory not listed: refused
    text = refused(gw, dest, [ROOT, _file(b"sub/planted.txt")])
    assert "'sub/planted.txt': its parent is not a directory listed before it" in text
    # the directory listed: the link is replaced by a real directory, never followed
    hostile_sync(gw, dest, [ROOT, _dir(b"sub"), _file(b"sub/planted.txt")])
    assert not (dest / "sub").is_symlink()
    assert (dest / "sub" / "planted.txt").read_bytes() == b"xxxxx"


def test_delete_unlinks_links_without_following_them(
    gw: Any, outside_untouched: Path, victim: Path
) -> None:
    dest = outside_untouched
    dest.mkdir()
    os.symlink(str(victim), dest / "to_a_dir")
    os.symlink(str(victim / "precious.txt"), dest / "to_a_file")
    hostile_sync(gw, dest, [ROOT], delete=True)
    assert os.listdir(dest) == []


@pytest.mark.parametrize(
    "target",
    [b"../escaped", b"/etc", b"a/../../b"],
)
def test_a_tree_link_must_point_inside_the_tree(
    gw: Any, outside_untouched: Path, target: bytes
) -> None:
    text = refused(gw, outside_untouched, [ROOT, _link(b"link", target, TREE_LINK)])
    assert "'link': a link into the tree whose target has" in text


def test_a_link_is_made_as_a_link_wherever_it_points(
    gw: Any, outside_untouched: Path, victim: Path
) -> None:
    # links may point anywhere (a link outside the source is copied as it is): the
    # receiver makes them, and never writes or chmods through them
    entries = [
        ROOT,
        _link(b"out", os.fsencode(str(victim / "precious.txt"))),
        _link(b"in", b"sub/f", TREE_LINK),
        _dir(b"sub"),
        _file(b"sub/f"),
    ]
    hostile_sync(gw, outside_untouched, entries)
    assert os.readlink(outside_untouched / "out") == str(victim / "precious.txt")
    assert os.readlink(outside_untouched / "in") == str(outside_untouched / "sub" / "f")


def test_a_mode_change_for_an_entry_not_asked_for_is_refused(
    gw: Any, outside_untouched: Path, victim: Path
) -> None:
    # the link exists as listed, so nothing is asked for; a "touch" for it would chmod
    # and utime the file it points to
    entries = [ROOT, _link(b"link", os.fsencode(str(victim / "precious.txt")))]
    text = refused(gw, outside_untouched, entries, ("touch", encode_ints([1, 0o777, 0])))
    assert "a mode and mtime for entry 1 'link', which this receiver did not ask for" in text


@pytest.mark.parametrize(
    "message",
    [
        ("files", encode_ints([1, 0o644, MTIME, 4]), (b"evil",)),
        ("chunk", 1, b"evil"),
        ("end", 1, 0o644, MTIME, 4),
        ("abort", 1),
        ("chunk", 99, b"evil"),
        ("chunk", "1", b"evil"),
    ],
)
def test_contents_for_an_entry_not_asked_for_are_refused(
    gw: Any, outside_untouched: Path, victim: Path, message: Tuple[object, ...]
) -> None:
    entries = [ROOT, _link(b"link", os.fsencode(str(victim / "precious.txt")))]
    text = refused(gw, outside_untouched, entries, message)
    assert "which this receiver did not ask for" in text
    assert os.readlink(outside_untouched / "link") == str(victim / "precious.txt")


@pytest.mark.parametrize(
    "message",
    [["files"], ("files", b"1 2"), ("rm", b"-rf"), ("chunk", 1), "done", None],
)
def test_a_malformed_message_is_refused(gw: Any, outside_untouched: Path, message: object) -> None:
    text = refused(gw, outside_untouched, [ROOT], message)  # type: ignore[arg-type]
    assert "unexpected message" in text


@pytest.mark.parametrize(
    ("mode", "mtime"), [(0o10000, MTIME), (-1, MTIME), (0o644, 1 << 63), (0o644, -(1 << 64))]
)
def test_modes_and_mtimes_out_of_range_are_refused(
    gw: Any, outside_untouched: Path, mode: int, mtime: int
) -> None:
    text = refused(gw, outside_untouched, [ROOT, Entry(FILE, b"f", 1, mtime, mode, b"")])
    assert "'f': size 1 or mode" in text or "'f': mtime" in text


def test_rsync_reports_the_refused_path(
    gw: Any,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    outside_untouched: Path,
) -> None:
    """The real sender, made hostile: its listing gains '../escaped.txt'. send()
    raises RSyncError naming the target and the path the receiver refused."""
    src = tmp_path_factory.mktemp("src")
    (src / "fine.txt").write_text("fine")
    honest = _rsync.encode_listing

    def with_an_escape(entries: List[Entry]) -> bytes:
        return honest([*entries, _file(b"../escaped.txt")])

    monkeypatch.setattr(_rsync, "encode_listing", with_an_escape)
    rsync = RSync(src, verbose=False)
    rsync.add_target(gw, outside_untouched)
    with pytest.raises(RSyncError) as info:
        rsync.send()
    message = str(info.value)
    assert f"rsync failed for gateway {gw.id} -> {str(outside_untouched)!r}" in message
    assert "refusing listing entry 2 '../escaped.txt': a '..' component" in message
    assert not (tmp_path / "escaped.txt").exists()


# -- the Receiver in this process: the destination changes between plan and write ----


def _swap_for_a_link(path: Path, target: Path) -> None:
    """What a case-insensitive file system, or another process, may do meanwhile."""
    if path.is_dir() and not path.is_symlink():
        os.rmdir(path)
    else:
        path.unlink()
    os.symlink(str(target), path)


def test_a_directory_swapped_for_a_link_is_not_written_through(
    outside_untouched: Path, victim: Path
) -> None:
    # Each directory a write goes through is lstat'ed once, and again after any link
    # was made here (on a case-insensitive file system a link may take the place of a
    # listed directory): here another process swaps it while the listing arrives.
    dest = outside_untouched
    receiver = Receiver(os.fsencode(str(dest)), [])
    receiver.plan_more([ROOT, _dir(b"sub"), _file(b"sub/f")])
    _swap_for_a_link(dest / "sub", victim)
    receiver.plan_more([_link(b"later", b"anywhere")])  # a link made: directories rechecked
    wanted, _ = receiver.plan_end()
    assert wanted == [2]
    assert receiver.store_files(encode_ints([2, 0o644, MTIME, 5]), (b"xxxxx",)) == []
    receiver.write_chunk(2, b"xxxxx")
    assert receiver.end_file(2, 0o644, MTIME, 5) is None
    receiver.close()  # sub's mode and mtime are not set through the link either
    assert not (victim / "f").exists()
    assert len(receiver.errors) == 3
    for error in receiver.errors[:2]:
        assert f"{dest}/sub/f: cannot store: NotADirectoryError: {dest}/sub is a link" in error
        assert error.endswith("nothing is written through it")
    assert receiver.errors[2].startswith(f"{dest}/sub: cannot set mode and mtime")
    assert "is a link: nothing is written through it" in receiver.errors[2]


def test_a_file_swapped_for_a_link_keeps_the_linked_file_as_it_is(
    outside_untouched: Path, victim: Path
) -> None:
    dest = outside_untouched
    dest.mkdir()
    (dest / "f").write_bytes(b"xxxxx")  # same size, another mtime: compared by hash
    receiver = Receiver(os.fsencode(str(dest)), [ROOT, _file(b"f")])
    wanted, checks = receiver.plan()
    assert (wanted, [index for index, _ in checks]) == ([], [1])
    _swap_for_a_link(dest / "f", victim / "precious.txt")
    receiver.touch(encode_ints([1, 0o777, 0]))  # the hashes matched: mode and mtime only
    receiver.close()
    assert len(receiver.errors) == 1
    assert f"{dest}/f: cannot set mode and mtime" in receiver.errors[0]
    assert "is a link now" in receiver.errors[0]
    # the file stored for it replaces the link, it is not written through it
    assert receiver.store_files(encode_ints([1, 0o644, MTIME, 5]), (b"yyyyy",)) == [5]
    assert not (dest / "f").is_symlink()
    assert (dest / "f").read_bytes() == b"yyyyy"
