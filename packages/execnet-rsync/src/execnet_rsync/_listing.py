"""The sender's view of the source tree: one walk, one listing for every target."""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass, field
from typing import Callable

from ._remote import DIR, FILE, LINK, TREE_LINK, Entry

_SPECIAL = (
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISFIFO, "a fifo"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


@dataclass
class Listing:
    """Entries in walk order (parents first), with the local path and the relative name
    of each: ``paths[i]`` reads ``entries[i]``, ``names[i]`` is what reports show."""

    root: str
    entries: list[Entry] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def add(self, entry: Entry, path: str, name: str) -> None:
        self.entries.append(entry)
        self.paths.append(path)
        self.names.append(name)


def special_kind(mode: int) -> str | None:
    """'a socket', 'a fifo', ... for file types RSync does not send, else None."""
    for test, what in _SPECIAL:
        if test(mode):
            return what
    return None


def link_target(root: str, raw: str) -> tuple[bytes, str]:
    """What a link to ``raw`` becomes on the target: ``(kind, target)``.

    An absolute target inside the source tree (the tree's root included) is
    ``(TREE_LINK, path inside the tree)``: the receiver makes it an absolute link to the
    same path inside the destination. Anything else (relative targets, absolute ones
    outside the tree) is ``(LINK, raw)``, recreated as it is. Each link of a chain keeps
    its own kind. `root` is the absolute source directory; its realpath counts as the
    same place.
    """
    if not os.path.isabs(raw):
        return LINK, raw
    resolved = os.path.normpath(raw)
    for base in dict.fromkeys((os.path.normpath(root), os.path.realpath(root))):
        prefix = base.rstrip("/") + "/"
        if resolved == base:
            return TREE_LINK, ""
        if resolved.startswith(prefix):
            return TREE_LINK, resolved[len(prefix) :]
    return LINK, raw


def scan(
    sourcedir: str,
    accept: Callable[[str], bool],
    skipped: Callable[[str, str], None],
    progress: Callable[[Listing], object] | None = None,
) -> Listing:
    """Walk sourcedir without following links; `accept(path)` filters (a rejected
    directory is not entered), `skipped(name, reason)` hears about what cannot be sent,
    `progress(listing)` is called after each directory (the listing so far)."""
    st = os.stat(sourcedir)  # the root may be reached through a link
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"rsync source {sourcedir!r} is not a directory")
    root_abs = os.path.abspath(sourcedir)
    encoding, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
    listing = Listing(sourcedir)
    listing.add(Entry(DIR, b"", 0, st.st_mtime_ns, stat.S_IMODE(st.st_mode), b""), sourcedir, "")
    pending = [("", sourcedir)]
    while pending:
        reldir, dirpath = pending.pop()
        try:
            with os.scandir(dirpath) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            skipped(reldir or ".", f"cannot list the directory: {exc}")
            continue
        subdirs = []
        for child in children:
            path = child.path
            if not accept(path):
                continue
            name = f"{reldir}/{child.name}" if reldir else child.name
            try:
                st = child.stat(follow_symlinks=False)
            except OSError as exc:
                skipped(name, f"cannot stat: {exc}")
                continue
            mode = st.st_mode
            bname = name.encode(encoding, errors)  # os.fsencode, without its type checks
            if stat.S_ISREG(mode):
                entry = Entry(FILE, bname, st.st_size, st.st_mtime_ns, stat.S_IMODE(mode), b"")
            elif stat.S_ISDIR(mode):
                entry = Entry(DIR, bname, 0, st.st_mtime_ns, stat.S_IMODE(mode), b"")
                subdirs.append((name, path))
            elif stat.S_ISLNK(mode):
                try:
                    raw = os.readlink(path)
                except OSError as exc:
                    skipped(name, f"cannot read the link: {exc}")
                    continue
                kind, target = link_target(root_abs, raw)
                entry = Entry(
                    kind, bname, 0, st.st_mtime_ns, stat.S_IMODE(mode), os.fsencode(target)
                )
            else:
                what = special_kind(mode) or f"of unknown type {stat.S_IFMT(mode):o}"
                skipped(name, f"{what}: only files, directories and links are synced")
                continue
            listing.add(entry, path, name)
        pending.extend(reversed(subdirs))
        if progress is not None:
            progress(listing)
    return listing
