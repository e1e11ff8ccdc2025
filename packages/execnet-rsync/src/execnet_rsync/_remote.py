"""The receiving half of RSync; it runs in the remote interpreter.

This module travels: RSync sends its whole source with ``gateway.remote_exec(module)``
and the remote runs it with a global ``channel`` and ``__name__ == "__channelexec__"``.
So it imports only the standard library and runs on CPython 3.8-3.13 and PyPy3. It has
no ``from __future__`` import (the source may be run as-is after other text), which is
why its annotations use ``typing.List`` and friends. Imported locally, it provides the
listing codec shared by both halves, and tests drive ``Receiver`` on real directories.

Protocol, one channel per target and send() (S: sender, R: this receiver):

    S ("start", destdir: str, delete: bool, listing: bytes)
    R ("need", wanted: bytes, checks: [(index, sha256 of the copy here), ...])
    S ("touch", meta: bytes)        same content after all: set mode and mtime only
    S ("files", meta: bytes, (content: bytes, ...))   whole files, about 1 MiB a message
    S ("chunk", index, data) ... then ("end", index, mode, mtime_ns, size) or ("abort", index)
    R ("ack", [stored file size, ...], bytes consumed so far)   after every data message
    S ("done",)
    R ("done", [error text, ...], bytes consumed)

Paths are bytes on both sides, so any name the file system holds (spaces, newlines,
undecodable bytes) arrives unchanged. Integers travel as ASCII in bytes blobs: one
``split`` decodes thousands of them, far cheaper than one serializer item each.

Nothing from the sender is trusted (see check_entries and Receiver): a listing entry must
name a path strictly inside the destination ("a/b", no absolute path, no "." or ".."
or empty component, listed once, below a directory listed before it); contents and
touches are accepted only for the entries this receiver asked for. A bad entry or
message fails the whole sync with an UnsafeEntry naming it. Nothing is ever written,
chmod'ed or touched through a symlink: every directory a write goes through is lstat'ed
to be a real directory, links are created as links, temp files are opened with
O_NOFOLLOW, and modes and times are changed only on what lstat shows to be the expected
file type (links are never chmod'ed: Linux has no lchmod).
"""

import contextlib
import hashlib
import os
import stat
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

DIR = b"d"
FILE = b"f"
LINK = b"l"  # a link whose target is recreated as it is
TREE_LINK = b"t"  # an absolute link into the source tree: its target is the path inside
# the tree ("" for the tree's root), made absolute inside the destination by the receiver
_KINDS = (DIR, FILE, LINK, TREE_LINK)
_PLAIN_KINDS = (FILE, DIR, LINK)  # TREE_LINK targets need a check of their own
_FIELDS = 6
_INT64 = 1 << 63
HASH_BLOCK = 1 << 20


class Entry(NamedTuple):
    """One path of the source tree, as listed by the sender."""

    kind: bytes  # DIR, FILE, LINK or TREE_LINK
    relpath: bytes  # b"" for the root, else "a/b/c" with "/" separators
    size: int
    mtime_ns: int
    mode: int  # stat.S_IMODE bits
    target: bytes  # link target (LINK), path inside the tree (TREE_LINK), else b""


def encode_listing(entries: Iterable[Entry]) -> bytes:
    """The listing as one blob: six NUL-separated fields per entry (no name holds NUL)."""
    parts: List[bytes] = []
    for e in entries:
        parts += (e.kind, e.relpath, b"%d" % e.size, b"%d" % e.mtime_ns, b"%d" % e.mode, e.target)
    return b"\0".join(parts)


def decode_listing(blob: bytes) -> List[Entry]:
    """The inverse of encode_listing; ValueError for a blob it did not write."""
    if not blob:
        return []
    parts = blob.split(b"\0")
    if len(parts) % _FIELDS:
        raise ValueError(f"rsync listing: {len(parts)} fields is not a multiple of 6")
    return [
        Entry(parts[i], parts[i + 1], int(parts[i + 2]), int(parts[i + 3]), int(parts[i + 4]),
              parts[i + 5])
        for i in range(0, len(parts), _FIELDS)
    ]  # fmt: skip


def encode_ints(values: Iterable[int]) -> bytes:
    return b" ".join([b"%d" % v for v in values])


def decode_ints(blob: bytes) -> List[int]:
    return [int(v) for v in blob.split()]


class UnsafeEntry(ValueError):
    """The sender sent a listing entry or message this receiver refuses (a path that
    would leave the destination, a duplicate, contents it did not ask for...); it ends
    the sync."""

    def __init__(self, what: str) -> None:
        super().__init__(f"rsync receiver: {what}; the sync stops here")


# separators other than "/" that the file system here would honour in a name
_OTHER_SEPARATORS = tuple(
    sep.encode() for sep in (os.sep, os.altsep) if sep is not None and sep != "/"
)


def path_problem(relpath: bytes) -> Optional[str]:
    """Why ``relpath`` does not name a path strictly inside the tree, or None."""
    if not relpath:
        return "an empty path (only the first entry is the destination itself)"
    if relpath.startswith(b"/"):
        return "an absolute path"
    if b"\0" in relpath:
        return "a NUL byte"
    for part in relpath.split(b"/"):
        if not part:
            return "an empty component"
        if part in (b".", b".."):
            return f"a {part.decode()!r} component"
        if any(sep in part for sep in _OTHER_SEPARATORS) or (
            _OTHER_SEPARATORS and part[1:2] == b":"  # a drive letter on Windows
        ):
            return "a path separator or drive of this system in a name"
    return None


def check_entries(
    entries: List[Entry], start: int, dirs: Dict[bytes, int], seen: Set[bytes]
) -> None:
    """Refuse an entry (from ``start`` on) that could make the receiver act outside the
    destination: UnsafeEntry naming it.

    ``dirs`` holds the directories listed so far (relpath -> index) and ``seen`` every
    relpath listed so far; both are updated. An entry's parent must be in ``dirs``.
    """
    for index in range(start, len(entries)):
        kind, relpath, size, mtime_ns, mode, _ = entries[index]
        if not (  # the common case in one expression: thousands of entries a sync
            index
            and kind in _PLAIN_KINDS
            and relpath[:1] not in b"/."  # (b"" is in it: the root takes the long way)
            and relpath[-1:] != b"/"
            and b"//" not in relpath
            and b"/." not in relpath  # no component is empty or starts with "."
            and b"\0" not in relpath
            and not _OTHER_SEPARATORS
            and relpath not in seen
            and relpath.rpartition(b"/")[0] in dirs
            and 0 <= size < _INT64
            and 0 <= mode <= 0o7777
            and -_INT64 <= mtime_ns < _INT64
        ):
            problem = entry_problem(index, entries[index], dirs, seen)
            if problem is not None:
                raise UnsafeEntry(
                    f"refusing listing entry {index} {os.fsdecode(relpath)!r}: {problem}"
                )
        seen.add(relpath)
        if kind == DIR:
            dirs[relpath] = index


def entry_problem(
    index: int, entry: Entry, dirs: Dict[bytes, int], seen: Set[bytes]
) -> Optional[str]:
    """What is wrong with listing entry ``index`` (see check_entries), or None."""
    kind, relpath, size, mtime_ns, mode, target = entry
    if kind not in _KINDS:
        return f"an unknown kind {kind!r}"
    if index == 0:
        if kind != DIR or relpath:
            return "the first entry must be the destination directory itself"
    else:
        problem = path_problem(relpath)
        if problem is not None:
            return problem
        if relpath in seen:
            return "listed twice"
        if relpath.rpartition(b"/")[0] not in dirs:
            return "its parent is not a directory listed before it"
    if not (0 <= size < _INT64 and 0 <= mode <= 0o7777):
        return f"size {size} or mode {mode:o} out of range"
    if not -_INT64 <= mtime_ns < _INT64:
        return f"mtime {mtime_ns} out of range"
    if kind == TREE_LINK and target:
        inner = path_problem(target)
        if inner is not None:
            return f"a link into the tree whose target has {inner}"
    return None


def file_digest(path: bytes) -> bytes:
    """sha256 of a file (not through a link), read in blocks so memory stays flat."""
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with open(fd, "rb", buffering=0) as f:
        while True:
            block = f.read(HASH_BLOCK)
            if not block:
                return h.digest()
            h.update(block)


# What the receiver does with one listed file, given the lstat of its copy (None: absent).
NEED = "need"  # send the content
CHECK = "check"  # same size, other mtime: compare hashes first
MODE = "mode"  # same content, other mode: chmod here
SAME = "same"


def file_action(entry: Entry, st: Optional[os.stat_result]) -> str:
    """Decide from size and mtime alone; only CHECK costs a hash on both sides."""
    if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != entry.size:
        return NEED
    if st.st_mtime_ns != entry.mtime_ns:
        return CHECK
    if stat.S_IMODE(st.st_mode) != entry.mode:
        return MODE
    return SAME


def remove_path(path: bytes) -> None:
    """Remove a file, link or whole directory tree, making read-only directories writable."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    if stat.S_IMODE(st.st_mode) & 0o700 != 0o700:
        os.chmod(path, stat.S_IMODE(st.st_mode) | 0o700)
    with os.scandir(path) as it:
        children = [e.path for e in it]
    for child in children:
        remove_path(child)
    os.rmdir(path)


class Receiver:
    """Brings one destination directory in line with a listing.

    plan_more() checks each part of the listing (check_entries: an UnsafeEntry stops the
    sync before anything of that part is done), makes directories and links, and
    removes what is in the way; plan_end() (with delete, removes what the source lacks)
    returns which files must be sent and which must first be compared by hash.
    store_files/write_chunk/end_file/touch apply what the sender sends, for the entries
    asked for only; close() removes unfinished temp files and gives directories their
    modes and mtimes last, so read-only source directories still receive their files.
    Nothing is done through a link below the destination (see _real_dirs_to).
    """

    def __init__(self, destdir: bytes, entries: List[Entry], delete: bool = False) -> None:
        root = destdir.rstrip(b"/") or destdir[:1]
        if not root:
            raise ValueError("rsync: empty destination directory")
        self.root = root
        self.entries = entries
        self.delete = delete
        self.errors: List[str] = []
        self.consumed = 0
        self._dirs: Dict[bytes, int] = {}  # listed directories: relpath -> index
        self._seen: Set[bytes] = set()  # every relpath listed so far
        self._checked = 0  # entries that passed check_entries
        # Directories below the root that lstat showed to be real directories (not
        # links) since the last link was made here (a link may take a directory's place
        # on a case-insensitive file system): what writes may go through.
        self._real_dirs: Set[bytes] = set()
        self._dirty: Set[int] = set()  # directories whose mode/mtime are set at close
        self._partial: Dict[int, Optional[Tuple[int, bytes, int]]] = {}  # fd, temp, written
        self._planned = -1  # entries planned so far (-1: destdir not made yet)
        self._wanted: List[int] = []
        self._checks: List[Tuple[int, bytes]] = []
        self._sendable: Set[int] = set()  # files asked for: wanted or hash-checked
        self._hashed: Set[int] = set()  # files whose hash was sent: "touch" may come

    # -- paths and bookkeeping

    def path(self, relpath: bytes) -> bytes:
        return self.root + b"/" + relpath if relpath else self.root

    def _real_dirs_to(self, reldir: bytes) -> bytes:
        """The path of directory ``reldir`` once it and every directory above it (below
        the root) are known to be real directories; NotADirectoryError (an OSError,
        reported for the entry at hand) if one is a link or anything else. The root
        itself may be a link: the user chose it as the destination."""
        if reldir and reldir not in self._real_dirs:
            prefix = b""
            for part in reldir.split(b"/"):
                prefix = prefix + b"/" + part if prefix else part
                if prefix in self._real_dirs:
                    continue
                st = os.lstat(self.path(prefix))
                if not stat.S_ISDIR(st.st_mode):
                    what = "a link" if stat.S_ISLNK(st.st_mode) else "not a directory"
                    raise NotADirectoryError(
                        f"{os.fsdecode(self.path(prefix))} is {what}: nothing is written through it"
                    )
                self._real_dirs.add(prefix)
        return self.path(reldir)

    def _real_path(self, relpath: bytes) -> bytes:
        """The path of ``relpath``, reached through real directories only."""
        self._real_dirs_to(relpath.rpartition(b"/")[0])
        return self.path(relpath)

    def _error(self, relpath: bytes, what: str, exc: BaseException) -> None:
        shown = os.fsdecode(self.path(relpath))
        self.errors.append(f"{shown}: {what}: {type(exc).__name__}: {exc}")

    def _touched(self, relpath: bytes) -> None:
        """A child of relpath's directory was created, replaced or removed."""
        index = self._dirs.get(relpath.rpartition(b"/")[0])
        if index is not None:
            self._dirty.add(index)

    def _lstat(self, path: bytes) -> Optional[os.stat_result]:
        try:
            return os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _asked(self, index: object, asked: Set[int], what: str) -> Entry:
        """The entry the sender sends ``what`` for; UnsafeEntry unless it was asked for."""
        if not (isinstance(index, int) and index in asked):
            name = ""
            if isinstance(index, int) and 0 <= index < len(self.entries):
                name = f" {os.fsdecode(self.entries[index].relpath)!r}"
            raise UnsafeEntry(
                f"the sender sent {what} for entry {index!r}{name}, which this receiver "
                "did not ask for"
            )
        return self.entries[index]

    # -- phase 1: the plan

    def plan(self) -> Tuple[List[int], List[Tuple[int, bytes]]]:
        """Prepare the tree; return (indices to send, [(index, digest of the copy here)])."""
        return self.plan_end()

    def plan_more(self, entries: List[Entry]) -> None:
        """Prepare the tree for the entries so far and these (the listing may arrive in
        parts, in walk order, while the sender is still walking its tree). The new
        entries are checked first: UnsafeEntry, and nothing of this part is done."""
        self.entries.extend(entries)
        check_entries(self.entries, self._checked, self._dirs, self._seen)
        self._checked = len(self.entries)
        if self._planned < 0:
            os.makedirs(self.root, exist_ok=True)  # FileExistsError if not a directory
            self._planned = 0
        wanted, checks = self._wanted, self._checks
        for index in range(self._planned, len(self.entries)):
            entry = self.entries[index]
            try:
                if entry.kind == DIR:
                    self._plan_dir(index, entry)
                elif entry.kind == FILE:
                    self._plan_file(index, entry, wanted, checks)
                else:
                    self._plan_link(entry)
            except OSError as exc:
                self._error(entry.relpath, "cannot prepare", exc)
        self._planned = len(self.entries)

    def plan_end(self) -> Tuple[List[int], List[Tuple[int, bytes]]]:
        """The whole listing is planned: delete what it lacks (if asked) and return
        (indices to send, [(index, digest of the copy here)])."""
        self.plan_more([])
        if self.delete:
            self._delete_extraneous()
        return self._wanted, self._checks

    def _plan_dir(self, index: int, entry: Entry) -> None:
        st: Optional[os.stat_result]
        if not entry.relpath:  # destdir may be a link to a directory (a user's choice)
            path, st = self.root, os.stat(self.root)
        else:
            path = self._real_path(entry.relpath)
            st = self._lstat(path)
            if st is not None and not stat.S_ISDIR(st.st_mode):
                remove_path(path)  # a link is removed, not followed
                st = None
        if st is None:
            os.mkdir(path, 0o700)  # owner-writable until close() sets the source's mode
            self._touched(entry.relpath)
            self._dirty.add(index)
        elif stat.S_IMODE(st.st_mode) & 0o700 != 0o700:
            os.chmod(path, stat.S_IMODE(st.st_mode) | 0o700)
            self._dirty.add(index)
        elif stat.S_IMODE(st.st_mode) != entry.mode or st.st_mtime_ns != entry.mtime_ns:
            self._dirty.add(index)
        if entry.relpath:
            self._real_dirs.add(entry.relpath)  # lstat'ed or made just now

    def link_target(self, entry: Entry) -> bytes:
        """Where the link of ``entry`` points here. An absolute link into the source
        tree points to the same path inside this destination, as an absolute path (also
        when destdir was given relative to the remote's working directory)."""
        if entry.kind != TREE_LINK:
            return entry.target
        root = self.root if os.path.isabs(self.root) else os.path.join(os.getcwdb(), self.root)
        if not entry.target:
            return root
        return root.rstrip(b"/") + b"/" + entry.target

    def _plan_link(self, entry: Entry) -> None:
        path = self._real_path(entry.relpath)
        target = self.link_target(entry)
        st = self._lstat(path)
        if st is not None and stat.S_ISLNK(st.st_mode) and os.readlink(path) == target:
            return
        self._real_dirs.clear()  # the link may take the place of a checked directory
        if st is not None and stat.S_ISDIR(st.st_mode):
            remove_path(path)
            st = None
        if st is None:
            os.symlink(target, path)
        else:
            temp = self._temp_name(path)
            self._discard(temp)  # left by a killed run
            os.symlink(target, temp)
            os.replace(temp, path)
        self._touched(entry.relpath)

    def _plan_file(
        self, index: int, entry: Entry, wanted: List[int], checks: List[Tuple[int, bytes]]
    ) -> None:
        path = self._real_path(entry.relpath)
        st = self._lstat(path)
        action = file_action(entry, st)
        if action == NEED:
            if st is not None and stat.S_ISDIR(st.st_mode):
                remove_path(path)
                self._touched(entry.relpath)
            wanted.append(index)
            self._sendable.add(index)
        elif action == CHECK:
            try:
                checks.append((index, file_digest(path)))
                self._hashed.add(index)
            except OSError:
                wanted.append(index)
            self._sendable.add(index)
        elif action == MODE:
            os.chmod(path, entry.mode)  # lstat just showed a regular file, not a link

    def _delete_extraneous(self) -> None:
        stack = [b""]
        while stack:
            reldir = stack.pop()
            try:
                with os.scandir(self._real_dirs_to(reldir)) as it:
                    children = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
            except OSError as exc:
                self._error(reldir, "cannot list for delete", exc)
                continue
            for name, is_dir in children:
                rel = reldir + b"/" + name if reldir else name
                if rel in self._seen:
                    if is_dir:
                        stack.append(rel)
                    continue
                try:
                    remove_path(self.path(rel))  # a link is unlinked, not followed
                    self._touched(rel)
                except OSError as exc:
                    self._error(rel, "cannot delete", exc)

    # -- phase 2: contents

    def _temp_name(self, path: bytes) -> bytes:
        head, _, name = path.rpartition(b"/")
        return b"%s/.%s.%d.rsync-tmp" % (head, name[:120], os.getpid())

    def _open_temp(self, relpath: bytes) -> Tuple[int, bytes]:
        temp = self._temp_name(self._real_path(relpath))
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        for attempt in range(100):
            candidate = temp if not attempt else b"%s%d" % (temp, attempt)
            try:
                return os.open(candidate, flags, 0o600), candidate
            except FileExistsError:
                continue  # left behind by a crashed run: leave it, take another name
        raise FileExistsError(f"no free temporary name near {os.fsdecode(temp)!r}")

    def _finish(self, index: int, fd: int, temp: bytes, mode: int, mtime_ns: int) -> None:
        """Set mode and mtime on the complete temp file, then rename it into place."""
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, mode)
            else:
                os.chmod(temp, mode)
            os.utime(fd if os.utime in os.supports_fd else temp, ns=(mtime_ns, mtime_ns))
        finally:
            os.close(fd)
        relpath = self.entries[index].relpath
        # rename replaces a link standing at the path; it never writes through one
        os.replace(temp, self._real_path(relpath))
        self._touched(relpath)

    def store_files(self, meta: bytes, contents: Sequence[bytes]) -> List[int]:
        """Write whole files (meta: index, mode, mtime_ns, length per file); their sizes."""
        fields = decode_ints(meta)
        if len(fields) != 4 * len(contents):
            raise ValueError(f"rsync receiver: {len(contents)} contents for {len(fields)} fields")
        stored: List[int] = []
        for i, content in enumerate(contents):
            index, mode, mtime_ns, length = fields[4 * i : 4 * i + 4]
            relpath = self._asked(index, self._sendable, "contents").relpath
            _check_meta(index, relpath, mode, mtime_ns)
            if not isinstance(content, bytes):
                raise UnsafeEntry(f"the contents of entry {index} are not bytes")
            self.consumed += len(content)
            if length != len(content):
                self.errors.append(
                    f"{os.fsdecode(self.path(relpath))}: received {len(content)} bytes, "
                    f"the sender announced {length}: not stored"
                )
                continue
            temp = b""
            try:
                fd, temp = self._open_temp(relpath)
                try:
                    written = os.write(fd, content)
                    if written < length:
                        view = memoryview(content)
                        while written < length:
                            written += os.write(fd, view[written:])
                except BaseException:
                    os.close(fd)
                    raise
                self._finish(index, fd, temp, mode, mtime_ns)
                stored.append(length)
            except OSError as exc:
                self._error(relpath, "cannot store", exc)
                self._discard(temp)
        return stored

    def write_chunk(self, index: int, data: bytes) -> None:
        """Append one piece of a streamed file to its temp file (opened on the first)."""
        relpath = self._asked(index, self._sendable, "a piece of a file").relpath
        if not isinstance(data, bytes):
            raise UnsafeEntry(f"a piece of entry {index} is not bytes")
        self.consumed += len(data)
        if index not in self._partial:
            try:
                fd, temp = self._open_temp(relpath)
            except OSError as exc:
                self._error(relpath, "cannot store", exc)
                self._partial[index] = None
                return
            self._partial[index] = (fd, temp, 0)
        state = self._partial[index]
        if state is None:
            return  # already failed: swallow the rest of this file
        fd, temp, written = state
        try:
            view = memoryview(data)
            done = 0
            while done < len(data):
                done += os.write(fd, view[done:])
        except OSError as exc:
            self._error(relpath, "cannot store", exc)
            self._abandon(index)
            return
        self._partial[index] = (fd, temp, written + len(data))

    def end_file(self, index: int, mode: int, mtime_ns: int, size: int) -> Optional[int]:
        """Complete a streamed file; its size, or None if it was not stored."""
        relpath = self._asked(index, self._sendable, "the end of a file").relpath
        _check_meta(index, relpath, mode, mtime_ns)
        state = self._partial.pop(index, None)
        if state is None:
            return None  # never opened here, or failed (the error is recorded)
        fd, temp, written = state
        if written != size:
            os.close(fd)
            self._discard(temp)
            self.errors.append(
                f"{os.fsdecode(self.path(relpath))}: received {written} bytes, "
                f"the sender announced {size}: not stored"
            )
            return None
        try:
            self._finish(index, fd, temp, mode, mtime_ns)
        except OSError as exc:
            self._error(relpath, "cannot store", exc)
            self._discard(temp)
            return None
        return size

    def abort_file(self, index: int) -> None:
        """The sender saw the file change while reading it: drop what arrived."""
        self._asked(index, self._sendable, "an abort")
        self._abandon(index)
        self._partial.pop(index, None)

    def touch(self, meta: bytes) -> None:
        """Files whose content matched by hash: only mode and mtime are brought over."""
        fields = decode_ints(meta)
        if len(fields) % 3:
            raise ValueError(f"rsync receiver: {len(fields)} touch fields, not triples")
        for i in range(0, len(fields), 3):
            index, mode, mtime_ns = fields[i : i + 3]
            relpath = self._asked(index, self._hashed, "a mode and mtime").relpath
            _check_meta(index, relpath, mode, mtime_ns)
            try:
                set_mode_and_mtime(self._real_path(relpath), mode, mtime_ns, stat.S_IFREG)
            except OSError as exc:
                self._error(relpath, "cannot set mode and mtime", exc)

    def _abandon(self, index: int) -> None:
        state = self._partial.get(index)
        if state is not None:
            os.close(state[0])
            self._discard(state[1])
            self._partial[index] = None

    def _discard(self, temp: bytes) -> None:
        if temp:
            with contextlib.suppress(OSError):
                os.unlink(temp)

    # -- phase 3: close

    def close(self) -> None:
        """Drop unfinished temp files; set directory modes and mtimes, deepest first."""
        for index in list(self._partial):
            self._abandon(index)
        self._partial.clear()
        for index in sorted(self._dirty, reverse=True):
            entry = self.entries[index]
            try:
                if entry.relpath:
                    path = self._real_dirs_to(entry.relpath)
                    set_mode_and_mtime(path, entry.mode, entry.mtime_ns, stat.S_IFDIR)
                else:  # the destination itself, which may be a link the user chose
                    os.chmod(self.root, entry.mode)
                    os.utime(self.root, ns=(entry.mtime_ns, entry.mtime_ns))
            except OSError as exc:
                self._error(entry.relpath, "cannot set mode and mtime", exc)
        self._dirty.clear()


def _check_meta(index: int, relpath: bytes, mode: int, mtime_ns: int) -> None:
    if not (0 <= mode <= 0o7777 and -_INT64 <= mtime_ns < _INT64):
        raise UnsafeEntry(
            f"mode {mode:o} or mtime {mtime_ns} of entry {index} {os.fsdecode(relpath)!r} "
            "out of range"
        )


def set_mode_and_mtime(path: bytes, mode: int, mtime_ns: int, kind: int) -> None:
    """chmod and utime ``path`` if lstat shows it is of ``kind`` (stat.S_IFREG or
    S_IFDIR); never through a link: a link there is an error, left as it is (Linux has
    no lchmod to change a link's own mode, and it would mean nothing)."""
    st = os.lstat(path)
    if stat.S_IFMT(st.st_mode) != kind:
        what = "a link" if stat.S_ISLNK(st.st_mode) else "of another type"
        raise OSError(f"{os.fsdecode(path)} is {what} now: mode and mtime left as they are")
    if os.chmod in os.supports_follow_symlinks:
        os.chmod(path, mode, follow_symlinks=False)
    else:
        os.chmod(path, mode)  # lstat just showed it is not a link
    if os.utime in os.supports_follow_symlinks:
        os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
    else:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def _message(channel: Any, arity: Dict[str, int]) -> Any:
    """The next message: a tuple whose first item names one of ``arity``'s kinds and
    whose length is that kind's; UnsafeEntry for anything else."""
    message = channel.receive()
    if not (
        isinstance(message, tuple)
        and message
        and isinstance(message[0], str)
        and arity.get(message[0]) == len(message)
    ):
        raise UnsafeEntry(f"unexpected message {message!r:.80}")
    return message


_CONTENTS = {"files": 3, "chunk": 3, "end": 5, "abort": 2, "touch": 2, "done": 1}


def serve(channel: Any) -> None:
    """The remote loop: "start" and "list" parts planned as they come, the need list,
    contents until "done", then the report. An UnsafeEntry (or any other error) ends
    the task with it: the sender's RSync reports it for this target."""
    try:
        start = _message(channel, {"start": 5})
    except EOFError:
        return  # the sender gave up before starting (its walk failed)
    _, destdir, delete, listing, final = start
    receiver = Receiver(os.fsencode(destdir), [], bool(delete))
    try:
        receiver.plan_more(decode_listing(listing))
        while not final:
            try:
                part = _message(channel, {"list": 3})
            except EOFError:
                return  # the sender's walk failed midway: clean up below, quietly
            receiver.plan_more(decode_listing(part[1]))
            final = part[2]
        wanted, checks = receiver.plan_end()
        channel.send(("need", encode_ints(wanted), checks))
        while True:
            try:
                message = _message(channel, _CONTENTS)
            except EOFError:
                return  # the sender went away (interrupted): clean up below, quietly
            op = message[0]
            if op == "files":
                stored = receiver.store_files(message[1], message[2])
                channel.send(("ack", stored, receiver.consumed))
            elif op == "chunk":
                receiver.write_chunk(message[1], message[2])
                channel.send(("ack", [], receiver.consumed))
            elif op == "end":
                size = receiver.end_file(message[1], message[2], message[3], message[4])
                channel.send(("ack", [] if size is None else [size], receiver.consumed))
            elif op == "abort":
                receiver.abort_file(message[1])
            elif op == "touch":
                receiver.touch(message[1])
            else:
                break  # "done"
    finally:
        receiver.close()
    channel.send(("done", receiver.errors, receiver.consumed))


if __name__ == "__channelexec__":
    serve(globals()["channel"])
