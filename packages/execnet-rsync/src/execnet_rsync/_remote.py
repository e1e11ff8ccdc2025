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
"""

import contextlib
import hashlib
import os
import stat
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

DIR = b"d"
FILE = b"f"
LINK = b"l"
_FIELDS = 6
HASH_BLOCK = 1 << 20


class Entry(NamedTuple):
    """One path of the source tree, as listed by the sender."""

    kind: bytes  # DIR, FILE or LINK
    relpath: bytes  # b"" for the root, else "a/b/c" with "/" separators
    size: int
    mtime_ns: int
    mode: int  # stat.S_IMODE bits
    target: bytes  # link target (LINK only), else b""


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


def file_digest(path: bytes) -> bytes:
    """sha256 of a file, read in blocks so memory stays flat."""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
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

    plan() makes directories and links, removes what is in the way (and, with delete,
    what the source lacks), and returns which files must be sent and which must first
    be compared by hash. store_files/write_chunk/end_file/touch apply what the sender
    sends; close() removes unfinished temp files and gives directories their modes and
    mtimes last, so read-only source directories still receive their files.
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
        self._dirs: Dict[bytes, int] = {}  # relpath -> index, for marking parents dirty
        self._dirty: Set[int] = set()  # directories whose mode/mtime are set at close
        self._partial: Dict[int, Optional[Tuple[int, bytes, int]]] = {}  # fd, temp, written
        self._planned = -1  # entries planned so far (-1: destdir not made yet)
        self._wanted: List[int] = []
        self._checks: List[Tuple[int, bytes]] = []

    # -- paths and bookkeeping

    def path(self, relpath: bytes) -> bytes:
        return self.root + b"/" + relpath if relpath else self.root

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

    # -- phase 1: the plan

    def plan(self) -> Tuple[List[int], List[Tuple[int, bytes]]]:
        """Prepare the tree; return (indices to send, [(index, digest of the copy here)])."""
        return self.plan_end()

    def plan_more(self, entries: List[Entry]) -> None:
        """Prepare the tree for the entries so far and these (the listing may arrive in
        parts, in walk order, while the sender is still walking its tree)."""
        if self._planned < 0:
            os.makedirs(self.root, exist_ok=True)  # FileExistsError if not a directory
            self._planned = 0
        self.entries.extend(entries)
        wanted, checks = self._wanted, self._checks
        for index in range(self._planned, len(self.entries)):
            entry = self.entries[index]
            try:
                if entry.kind == DIR:
                    self._plan_dir(index, entry)
                elif entry.kind == LINK:
                    self._plan_link(entry)
                elif entry.kind == FILE:
                    self._plan_file(index, entry, wanted, checks)
                else:
                    raise ValueError(f"unknown entry kind {entry.kind!r}")
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
        path = self.path(entry.relpath)
        self._dirs[entry.relpath] = index
        # destdir itself may be a link to a directory (a user's choice): follow that one
        st = self._lstat(path) if entry.relpath else os.stat(path)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            remove_path(path)
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

    def _plan_link(self, entry: Entry) -> None:
        path = self.path(entry.relpath)
        st = self._lstat(path)
        if st is not None and stat.S_ISLNK(st.st_mode) and os.readlink(path) == entry.target:
            return
        if st is not None and stat.S_ISDIR(st.st_mode):
            remove_path(path)
            st = None
        if st is None:
            os.symlink(entry.target, path)
        else:
            temp = self._temp_name(path)
            self._discard(temp)  # left by a killed run
            os.symlink(entry.target, temp)
            os.replace(temp, path)
        self._touched(entry.relpath)

    def _plan_file(
        self, index: int, entry: Entry, wanted: List[int], checks: List[Tuple[int, bytes]]
    ) -> None:
        path = self.path(entry.relpath)
        st = self._lstat(path)
        action = file_action(entry, st)
        if action == NEED:
            if st is not None and stat.S_ISDIR(st.st_mode):
                remove_path(path)
                self._touched(entry.relpath)
            wanted.append(index)
        elif action == CHECK:
            try:
                checks.append((index, file_digest(path)))
            except OSError:
                wanted.append(index)
        elif action == MODE:
            os.chmod(path, entry.mode)

    def _delete_extraneous(self) -> None:
        listed = {e.relpath for e in self.entries}
        stack = [b""]
        while stack:
            reldir = stack.pop()
            try:
                with os.scandir(self.path(reldir)) as it:
                    children = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
            except OSError as exc:
                self._error(reldir, "cannot list for delete", exc)
                continue
            for name, is_dir in children:
                rel = reldir + b"/" + name if reldir else name
                if rel in listed:
                    if is_dir:
                        stack.append(rel)
                    continue
                try:
                    remove_path(self.path(rel))
                    self._touched(rel)
                except OSError as exc:
                    self._error(rel, "cannot delete", exc)

    # -- phase 2: contents

    def _temp_name(self, path: bytes) -> bytes:
        head, _, name = path.rpartition(b"/")
        return b"%s/.%s.%d.rsync-tmp" % (head, name[:120], os.getpid())

    def _open_temp(self, path: bytes) -> Tuple[int, bytes]:
        temp = self._temp_name(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        for attempt in range(100):
            candidate = temp if not attempt else b"%s%d" % (temp, attempt)
            try:
                return os.open(candidate, flags, 0o600), candidate
            except FileExistsError:
                continue  # left behind by a crashed run: leave it, take another name
        raise FileExistsError(f"no free temporary name near {path!r}")

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
        os.replace(temp, self.path(relpath))
        self._touched(relpath)

    def store_files(self, meta: bytes, contents: Sequence[bytes]) -> List[int]:
        """Write whole files (meta: index, mode, mtime_ns, length per file); their sizes."""
        fields = decode_ints(meta)
        if len(fields) != 4 * len(contents):
            raise ValueError(f"rsync receiver: {len(contents)} contents for {len(fields)} fields")
        stored: List[int] = []
        for i, content in enumerate(contents):
            index, mode, mtime_ns, length = fields[4 * i : 4 * i + 4]
            self.consumed += len(content)
            relpath = self.entries[index].relpath
            if length != len(content):
                self.errors.append(
                    f"{os.fsdecode(self.path(relpath))}: received {len(content)} bytes, "
                    f"the sender announced {length}: not stored"
                )
                continue
            temp = b""
            try:
                fd, temp = self._open_temp(self.path(relpath))
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
        self.consumed += len(data)
        if index not in self._partial:
            relpath = self.entries[index].relpath
            try:
                fd, temp = self._open_temp(self.path(relpath))
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
            self._error(self.entries[index].relpath, "cannot store", exc)
            self._abandon(index)
            return
        self._partial[index] = (fd, temp, written + len(data))

    def end_file(self, index: int, mode: int, mtime_ns: int, size: int) -> Optional[int]:
        """Complete a streamed file; its size, or None if it was not stored."""
        state = self._partial.pop(index, None)
        if state is None:
            return None  # never opened here, or failed (the error is recorded)
        fd, temp, written = state
        relpath = self.entries[index].relpath
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
        self._abandon(index)
        self._partial.pop(index, None)

    def touch(self, meta: bytes) -> None:
        """Files whose content matched by hash: only mode and mtime are brought over."""
        fields = decode_ints(meta)
        for i in range(0, len(fields), 3):
            index, mode, mtime_ns = fields[i : i + 3]
            relpath = self.entries[index].relpath
            path = self.path(relpath)
            try:
                os.chmod(path, mode)
                os.utime(path, ns=(mtime_ns, mtime_ns))
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
            path = self.path(entry.relpath)
            try:
                os.chmod(path, entry.mode)
                os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns))
            except OSError as exc:
                self._error(entry.relpath, "cannot set mode and mtime", exc)
        self._dirty.clear()


def serve(channel: Any) -> None:
    """The remote loop: "start" and "list" parts planned as they come, the need list,
    contents until "done", then the report."""
    try:
        start = channel.receive()
    except EOFError:
        return  # the sender gave up before starting (its walk failed)
    if not (isinstance(start, tuple) and len(start) == 5 and start[0] == "start"):
        raise ValueError(f"rsync receiver: expected a start message, got {start!r:.80}")
    _, destdir, delete, listing, final = start
    receiver = Receiver(os.fsencode(destdir), [], bool(delete))
    try:
        receiver.plan_more(decode_listing(listing))
        while not final:
            try:
                part = channel.receive()
            except EOFError:
                return  # the sender's walk failed midway: clean up below, quietly
            if not (isinstance(part, tuple) and len(part) == 3 and part[0] == "list"):
                raise ValueError(f"rsync receiver: expected a listing part, got {part!r:.80}")
            receiver.plan_more(decode_listing(part[1]))
            final = part[2]
        wanted, checks = receiver.plan_end()
        channel.send(("need", encode_ints(wanted), checks))
        while True:
            try:
                message = channel.receive()
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
            elif op == "done":
                break
            else:
                raise ValueError(f"rsync receiver: unknown message {op!r}")
    finally:
        receiver.close()
    channel.send(("done", receiver.errors, receiver.consumed))


if __name__ == "__channelexec__":
    serve(globals()["channel"])
