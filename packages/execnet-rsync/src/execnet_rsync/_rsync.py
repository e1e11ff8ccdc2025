"""RSync, the sending half: one walk, one pass over the files for every target."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Union

from . import _remote
from ._listing import Listing, scan
from ._protocols import SupportsRemoteExec
from ._reading import ChangedWhileReading, NotRegularFile, SourceFile
from ._remote import FILE, decode_ints, encode_ints, encode_listing

if TYPE_CHECKING:
    from execnet_channel import Channel

__all__ = ["RSync", "RSyncError"]

SMALL = 1 << 20  # files up to this size are read whole and batched; larger ones stream
BATCH_BYTES = 1 << 20  # a "files" message carries about this much
BATCH_FILES = 512
WINDOW = 8 << 20  # bytes a target may have unprocessed: bounds its memory, keeps it busy
LIST_PART = 256  # listing entries per part streamed to the targets during the walk
ATTEMPTS = 3  # reads of a file that keeps changing before it is reported and skipped
CLOSE_WAIT = 30.0  # for the error of a channel known to be closed (it is there already)

Callback = Callable[[str, int, "Channel"], object]
PathArg = Union[str, "os.PathLike[str]"]


class RSyncError(OSError):
    """Some targets of RSync.send() failed; the others completed.

    ``failures`` holds ``(gateway, destdir, exception)`` per failed target.

    >>> import execnet, tempfile
    >>> source = tempfile.TemporaryDirectory()
    >>> gateway = execnet.makegateway("popen")
    >>> rsync = RSync(source.name, verbose=False)
    >>> rsync.add_target(gateway, "/dev/null/not-a-directory")
    >>> try:
    ...     rsync.send()
    ... except RSyncError as error:
    ...     print(len(error.failures), error.failures[0][1])
    1 /dev/null/not-a-directory
    >>> gateway.exit(); source.cleanup()
    """

    def __init__(self, failures: list[tuple[SupportsRemoteExec, str, BaseException]]) -> None:
        lines = [f"{_name(gw)} -> {dest!r}: {_text(exc)}" for gw, dest, exc in failures]
        super().__init__(f"rsync failed for {'; '.join(lines)}")
        self.failures = failures


def _name(gateway: SupportsRemoteExec) -> str:
    gid = getattr(gateway, "id", None)
    return f"gateway {gid}" if isinstance(gid, str) else repr(gateway)


def _text(exc: BaseException) -> str:
    text = str(exc)
    if type(exc).__name__ == "RemoteError":  # a whole traceback: its last line says what
        text = text.strip().rpartition("\n")[2]
    return f"{type(exc).__name__}: {text}"


class _Target(NamedTuple):
    gateway: SupportsRemoteExec
    destdir: str
    finishedcallback: Callable[[], object] | None
    delete: bool


class _Run:
    """One target during one send(): its channel, what it wants, what is in flight."""

    def __init__(self, target: _Target, callback: Callback | None) -> None:
        self.target = target
        self.callback = callback
        self.channel: Channel | None = None
        self.failure: BaseException | None = None
        self.finished = False
        self.wanted: set[int] = set()
        self.sent = 0  # payload bytes sent
        self.consumed = 0  # payload bytes the receiver has processed
        self._meta: list[int] = []
        self._data: list[bytes] = []
        self._pending = 0

    @property
    def alive(self) -> bool:
        return self.failure is None and self.channel is not None

    def attempt(self, func: Callable[..., object], *args: Any) -> None:
        """Run func unless this target already failed; a failure ends this target only."""
        if self.failure is not None:
            return
        try:
            func(*args)
        except Exception as exc:
            self.failure = self._why(exc)
            self.close()

    def _why(self, exc: Exception) -> BaseException:
        """The remote half's error if it ended the channel (a send then fails with a
        mere "closed"): e.g. the path it refused."""
        channel = self.channel
        if channel is None or not isinstance(exc, OSError) or not channel.isclosed():
            return exc
        try:
            channel.waitclose(CLOSE_WAIT)  # the close has arrived: returns at once
        except Exception as remote:
            return remote
        return exc

    def open(self) -> None:
        """Start the remote half; it compiles while the sender walks the source."""
        self.channel = self.target.gateway.remote_exec(_remote)

    def start(self, listing: bytes, final: bool = True) -> None:
        """Send the listing, or its first part (``final=False``: ``more`` follows)."""
        if self.channel is None:
            self.open()
        self._chan().send(("start", self.target.destdir, self.target.delete, listing, final))

    def more(self, listing: bytes, final: bool) -> None:
        """The next part of the listing; the target plans it while the walk goes on."""
        self._chan().send(("list", listing, final))

    def _chan(self) -> Channel:
        assert self.channel is not None
        return self.channel

    def _send_data(self, message: tuple[object, ...], nbytes: int) -> None:
        self.sent += nbytes
        channel = self._chan()
        channel.send(message)
        while self.sent - self.consumed > WINDOW:
            self._handle(channel.receive())

    def _handle(self, message: Any) -> None:
        if not (isinstance(message, tuple) and len(message) == 3 and message[0] == "ack"):
            raise OSError(f"rsync protocol: expected an ack, got {message!r:.80}")
        if self.callback is not None:
            for size in message[1]:
                self.callback("ack", size, self._chan())
        self.consumed = message[2]

    def add_file(self, index: int, st: os.stat_result, data: bytes) -> None:
        self._meta += (index, stat.S_IMODE(st.st_mode), st.st_mtime_ns, len(data))
        self._data.append(data)
        self._pending += len(data)
        if self._pending >= BATCH_BYTES or len(self._meta) >= 4 * BATCH_FILES:
            self.flush()

    def flush(self) -> None:
        if not self._meta:
            return
        # the contents travel as a tuple: the serializer's one join is the only copy
        message = ("files", encode_ints(self._meta), tuple(self._data))
        nbytes = self._pending
        self._meta, self._data, self._pending = [], [], 0
        self._send_data(message, nbytes)

    def send_chunk(self, index: int, data: bytes) -> None:
        self._send_data(("chunk", index, data), len(data))

    def end(self, index: int, st: os.stat_result) -> None:
        self._chan().send(("end", index, stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_size))

    def abort(self, index: int) -> None:
        self._chan().send(("abort", index))

    def touch(self, fields: list[int]) -> None:
        self._chan().send(("touch", encode_ints(fields)))

    def finish(self) -> None:
        """Tell the receiver that all is sent; wait for its report."""
        self.flush()
        channel = self._chan()
        channel.send(("done",))
        while True:
            message = channel.receive()
            if isinstance(message, tuple) and message[:1] == ("done",):
                break
            self._handle(message)
        # The remote task has ended once its channel closes: a send() right after this
        # one then finds the remote free (main_thread_only refuses a second task).
        channel.waitclose()
        errors = message[1]
        if errors:
            raise OSError("the target could not store everything: " + "; ".join(errors))
        self.finished = True
        if self.target.finishedcallback is not None:
            self.target.finishedcallback()

    def close(self) -> None:
        """Close an unfinished channel so the remote half stops waiting and cleans up."""
        if self.channel is not None and not self.finished:
            # the connection may be gone already (OSError); then nobody is left to tell
            with contextlib.suppress(OSError):
                self.channel.close()


def _rounds(targets: list[_Target]) -> list[list[_Target]]:
    """Targets grouped so that no gateway appears twice in a group: a gateway then runs
    one remote task at a time (main_thread_only refuses a second concurrent one)."""
    rounds: list[list[_Target]] = []
    for target in targets:
        for group in rounds:
            if all(other.gateway is not target.gateway for other in group):
                group.append(target)
                break
        else:
            rounds.append([target])
    return rounds


class RSync:
    """Send a directory tree to any number of gateways, transferring only what changed.

    >>> import os, tempfile, execnet
    >>> source, dest = tempfile.TemporaryDirectory(), tempfile.TemporaryDirectory()
    >>> with open(os.path.join(source.name, "hello.txt"), "w") as file:
    ...     _ = file.write("hello")
    >>> gateway = execnet.makegateway("popen")
    >>> rsync = RSync(source.name, verbose=False)
    >>> rsync.add_target(gateway, os.path.join(dest.name, "copy"))
    >>> rsync.send()
    >>> os.listdir(os.path.join(dest.name, "copy"))
    ['hello.txt']
    >>> gateway.exit(); source.cleanup(); dest.cleanup()

    Subclasses may override ``filter(path)`` (False skips the path, and a directory's
    whole subtree) and ``_report_send_file(gateway, modified_rel_path)``.
    ``callback(kind, number, channel)`` hears ``("list", bytes to send, channel)`` once
    per target and ``("ack", file size, channel)`` per file the target stored.
    """

    def __init__(
        self, sourcedir: PathArg, callback: Callback | None = None, verbose: bool = True
    ) -> None:
        self._sourcedir = os.fspath(sourcedir)
        self._callback = callback
        self._verbose = verbose
        self._targets: list[_Target] = []

    def filter(self, path: str) -> bool:
        """Whether to send `path` (the source directory joined with the relative name)."""
        return True

    def add_target(
        self,
        gateway: SupportsRemoteExec,
        destdir: PathArg,
        finishedcallback: Callable[[], object] | None = None,
        delete: bool = False,
    ) -> None:
        """Sync to `destdir` on `gateway` (relative to the remote's working directory;
        created with its parents). delete=True removes what the source lacks there.
        finishedcallback() runs when this target is complete.

        The target is synced by the next send() only (as in execnet 2.1.2); adding the
        same gateway and destdir again before it replaces that target."""
        if not callable(getattr(gateway, "remote_exec", None)):
            raise TypeError(f"rsync target {gateway!r} has no remote_exec: not a gateway")
        target = _Target(gateway, os.fspath(destdir), finishedcallback, delete)
        self._targets = [
            t for t in self._targets if t.gateway is not gateway or t.destdir != target.destdir
        ]
        self._targets.append(target)

    def _report_send_file(self, gateway: SupportsRemoteExec, modified_rel_path: str) -> None:
        """Called per file sent to a target when verbose is set; prints a line."""
        print(
            f"{gateway}:{modified_rel_path} <= {os.path.join(self._sourcedir, modified_rel_path)}"
        )

    def _report_skip(self, name: str, reason: str) -> None:
        """A path that is not sent (a fifo, a file that kept changing): one line on stderr."""
        print(f"rsync: skipping {name!r} in {self._sourcedir!r}: {reason}", file=sys.stderr)

    def send(self, raises: bool = True) -> None:
        """Sync every target; RSyncError (an IOError) naming the targets that failed, after
        the others completed. raises=False prints the failures to stderr instead.

        Afterwards the targets are done (as in execnet 2.1.2): a second send() needs
        add_target() again, else it raises OSError (or returns with raises=False)."""
        targets, self._targets = self._targets, []  # done after this send, as in 2.1.2
        if not targets:
            if raises:
                raise OSError(
                    f"rsync of {self._sourcedir!r}: no targets; call add_target() first "
                    "(after a send() its targets are done: add them again to send again)"
                )
            return
        rounds = [[_Run(t, self._callback) for t in group] for group in _rounds(targets)]
        first = rounds[0]
        for run in first:
            run.attempt(run.open)
        streamed = 0

        def stream(listing: Listing, final: bool = False) -> None:
            # The first round's targets get the listing in parts as the walk goes on,
            # and plan each part while the next one is read here (two processes).
            nonlocal streamed
            if not final and len(listing.entries) - streamed < LIST_PART:
                return
            part = encode_listing(listing.entries[streamed:])
            for run in first:
                run.attempt(run.start if streamed == 0 else run.more, part, final)
            streamed = len(listing.entries)

        try:
            listing = scan(self._sourcedir, self.filter, self._report_skip, stream)
            stream(listing, final=True)
        except BaseException:
            for run in first:
                run.close()
            raise
        blob = encode_listing(listing.entries) if len(rounds) > 1 else b""
        digests: dict[int, bytes | None] = {}
        for runs in rounds:
            self._send_round(listing, blob, runs, digests, started=runs is first)
        runs = [run for group in rounds for run in group]
        failures = [(r.target.gateway, r.target.destdir, r.failure) for r in runs if r.failure]
        if failures:
            error = RSyncError(failures)
            if raises:
                raise error
            print(error, file=sys.stderr)

    def _send_round(
        self,
        listing: Listing,
        blob: bytes,
        runs: list[_Run],
        digests: dict[int, bytes | None],
        started: bool,
    ) -> None:
        """Sync these targets (on distinct gateways) at once; failures stay in the runs.
        ``started``: they have the listing already (streamed during the walk)."""
        try:
            if not started:
                for run in runs:
                    run.attempt(run.start, blob)
            for run in runs:
                run.attempt(self._negotiate, run, listing, digests)
            self._transfer(listing, runs)
            for run in runs:
                run.attempt(run.finish)
        finally:
            for run in runs:
                run.close()

    def _negotiate(self, run: _Run, listing: Listing, digests: dict[int, bytes | None]) -> None:
        """Read what the target needs; settle its hash checks; report the bytes to send."""
        channel = run._chan()
        message = channel.receive()
        if not (isinstance(message, tuple) and len(message) == 3 and message[0] == "need"):
            raise OSError(f"rsync protocol: expected the need list, got {message!r:.80}")
        entries = listing.entries
        wanted = decode_ints(message[1])
        touch: list[int] = []
        for index, theirs in message[2]:
            if not (isinstance(index, int) and 0 <= index < len(entries)):
                raise OSError(f"rsync protocol: the target asked to compare entry {index!r}")
            if index not in digests:
                digests[index] = self._digest(listing.paths[index])
            if digests[index] == theirs:
                entry = entries[index]
                touch += (index, entry.mode, entry.mtime_ns)
            else:
                wanted.append(index)
        for index in wanted:
            if not 0 <= index < len(entries) or entries[index].kind != FILE:
                raise OSError(f"rsync protocol: the target asked for entry {index}")
        if touch:
            run.touch(touch)
        run.wanted = set(wanted)
        if self._callback is not None:
            self._callback("list", sum(entries[i].size for i in run.wanted), channel)

    def _digest(self, path: str) -> bytes | None:
        try:
            with SourceFile(path) as f:
                return f.digest()
        except (OSError, NotRegularFile, ChangedWhileReading):
            return None  # send it: reading it then reports what is wrong

    def _transfer(self, listing: Listing, runs: list[_Run]) -> None:
        wanted: set[int] = set()
        for run in runs:
            if run.alive:
                wanted |= run.wanted
        for index in sorted(wanted):
            receivers = [run for run in runs if run.alive and index in run.wanted]
            if receivers:
                self._send_file(listing, index, receivers)
        for run in runs:
            run.attempt(run.flush)

    def _send_file(self, listing: Listing, index: int, runs: list[_Run]) -> None:
        name = listing.names[index]
        for _ in range(ATTEMPTS):
            try:
                with SourceFile(listing.paths[index]) as source:
                    st = source.stat
                    if st.st_size <= SMALL:
                        data = source.read_whole()
                        for run in runs:
                            run.attempt(run.add_file, index, st, data)
                    else:
                        self._stream(source, index, runs)
            except ChangedWhileReading:
                continue
            except (OSError, NotRegularFile) as exc:
                self._report_skip(name, f"cannot read it: {exc}")
                return
            if self._verbose:
                for run in runs:
                    if run.alive:
                        self._report_send_file(run.target.gateway, name)
            return
        self._report_skip(name, f"it changed while being read, {ATTEMPTS} times; not sent")

    def _stream(self, source: SourceFile, index: int, runs: list[_Run]) -> None:
        try:
            for piece in source.pieces():
                for run in runs:
                    run.attempt(run.send_chunk, index, piece)
        except BaseException:
            for run in runs:
                run.attempt(run.abort, index)
            raise
        for run in runs:
            run.attempt(run.end, index, source.stat)
