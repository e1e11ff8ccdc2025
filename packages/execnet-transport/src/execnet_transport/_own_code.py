"""The code of the travelling packages for a child of this very interpreter.

A popen child of the interpreter running this code imports the installed packages from
their files as usual, but takes each module's code from what the parent sends right
after the bootstrap frame: the code of the ``.pyc`` file this interpreter's import
system would use (or the source compiled here when there is none). The child then skips
the search of sys.path and the file reads; about 0.5 ms of CPU of a popen gateway's start
(benchmarks/README.md, "Start-up tricks we keep"). The child's side is
``_stage.OwnCode``.
"""

from __future__ import annotations

import marshal
import os
from importlib.util import MAGIC_NUMBER, cache_from_source, source_hash
from typing import Dict, Optional, Tuple

from execnet_channel import trace

from ._bundle import TRAVELLING_PACKAGES, package_files

__all__ = ["OwnEntry", "own_code", "own_entry"]

# The flags field of a .pyc header (PEP 552): bit 0 hash-based, bit 1 check the source.
_PYC_HASH_BASED = 0b01
_PYC_CHECK_SOURCE = 0b10
_PYC_HEADER_SIZE = 16  # magic, flags, then mtime and size or the source hash

# path -> (mtime_ns, size, marshal'd code): what own_code read or compiled for a source.
_code_cache: Dict[str, Tuple[int, int, bytes]] = {}

# What config["own"] holds: (magic number, {module name: (path, start, end)}, length).
OwnEntry = Tuple[bytes, Dict[str, Tuple[str, int, int]], int]
# The last own_entry(), and the (path, (mtime_ns, size)) of each file it was made from.
_last_entry: Optional[Tuple[object, Tuple[OwnEntry, bytes]]] = None


def _code_from_pyc(path: str, stat: os.stat_result) -> Optional[bytes]:
    """The marshal'd code of `path`'s .pyc (optimization level 0), if it is current.

    Checked as the import system checks it: the magic number, then the source's mtime
    and size (a timestamp .pyc) or, for a hash-based one that asks for it, the source's
    hash. None when there is no such .pyc or it is stale: the source is compiled instead.
    """
    try:
        with open(cache_from_source(path, optimization=""), "rb") as file:
            data = file.read()
    except (OSError, NotImplementedError, ValueError):
        return None
    if len(data) < _PYC_HEADER_SIZE or data[:4] != MAGIC_NUMBER:
        return None
    flags = int.from_bytes(data[4:8], "little")
    if flags == 0:  # a timestamp .pyc: the source's mtime and size, each mod 2**32
        if (
            int.from_bytes(data[8:12], "little") != int(stat.st_mtime) & 0xFFFFFFFF
            or int.from_bytes(data[12:16], "little") != stat.st_size & 0xFFFFFFFF
        ):
            return None
    elif flags & ~(_PYC_HASH_BASED | _PYC_CHECK_SOURCE):
        return None  # flags this interpreter does not know
    else:
        import _imp

        check = getattr(_imp, "check_hash_based_pycs", "default")
        if check == "always" or (check != "never" and flags & _PYC_CHECK_SOURCE):
            try:
                with open(path, "rb") as file:
                    source = file.read()
            except OSError:
                return None
            if source_hash(source) != data[8:16]:
                return None
    return data[_PYC_HEADER_SIZE:]


def own_code(packages: Tuple[str, ...] = TRAVELLING_PACKAGES) -> Dict[str, Tuple[str, bytes]]:
    """{module name: (source path, marshal'd code)} of the installed travelling packages.

    Every call re-checks each source's mtime and size, so an edited module is what the
    next child runs, as with a plain import.
    """
    found: Dict[str, Tuple[str, bytes]] = {}
    for package in packages:
        for name, _, path in package_files(package):
            try:
                stat = os.stat(path)
            except OSError:
                continue  # gone since the walk: the child finds what is there
            cached = _code_cache.get(path)
            if cached is None or cached[:2] != (stat.st_mtime_ns, stat.st_size):
                code = _code_from_pyc(path, stat)
                if code is None:
                    with open(path, "rb") as file:
                        source = file.read()
                    code = marshal.dumps(compile(source, path, "exec", dont_inherit=True))
                cached = _code_cache[path] = (stat.st_mtime_ns, stat.st_size, code)
            found[name] = (path, cached[2])
    return found


def own_entry() -> Optional[Tuple[OwnEntry, bytes]]:
    """(config["own"], the bytes to send right after the frame) for a child of this very
    interpreter: all the marshal'd code in one piece, which the child reads without
    another copy, and where each module's code lies in it. None: the child imports from
    the files alone (e.g. a module cannot be read here)."""
    try:
        code = own_code()
    except (OSError, ImportError, ValueError, SyntaxError) as exc:
        trace(f"bootstrap: no code sent along ({exc!r}); the child imports from the files")
        return None
    global _last_entry
    key = [(path, _code_cache[path][:2]) for path, _ in code.values()]
    if _last_entry is not None and _last_entry[0] == key:
        return _last_entry[1]
    index: Dict[str, Tuple[str, int, int]] = {}
    position = 0
    for name, (path, data) in code.items():
        index[name] = (path, position, position + len(data))
        position += len(data)
    entry = ((MAGIC_NUMBER, index, position), b"".join(data for _, data in code.values()))
    _last_entry = (key, entry)
    return entry
