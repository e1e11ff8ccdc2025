"""The travelling packages: which they are, where their files are, the bundle of them.

A remote that cannot import the installed packages (another interpreter, ssh, a socket
server, via) gets their sources in the bootstrap frame: the bundle, read from the
installed files (never a copy kept as a string) and installed there in memory by the
second stage (``_stage.install_bundle``).
"""

from __future__ import annotations

import marshal
import os
import zlib
from functools import lru_cache
from importlib.util import find_spec
from typing import Dict, Final, List, Tuple

__all__ = ["MARSHAL_VERSION", "TRAVELLING_PACKAGES", "bundle", "package_files", "package_modules"]

# The modules that travel to interpreters that cannot import the installed packages,
# in the order they are installed there. Declared here and nowhere else.
TRAVELLING_PACKAGES: Final = ("execnet_serial", "execnet_channel")

# marshal format 2 holds only the plain values we send and is read by every CPython 3
# and PyPy3, whatever their own marshal version.
MARSHAL_VERSION: Final = 2

# zlib's level for the bundle (made once per process): 6, its default, gives a bundle 1%
# larger than 9 does, in a third of the time (230 KB of source: 62 KB, 5.5 ms).
_COMPRESSION_LEVEL: Final = 6

ModuleFile = Tuple[str, bool, str]  # (dotted name, is a package, path of its .py file)
Module = Tuple[str, bool, str]  # (dotted name, is a package, source text)

# package root -> (((package directory, mtime_ns), ...), what package_files found there)
_files_cache: Dict[str, Tuple[Tuple[Tuple[str, int], ...], List[ModuleFile]]] = {}


def _mtime_ns(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def package_files(package: str) -> List[ModuleFile]:
    """(dotted name, is a package, path of the .py file) of every module of `package`,
    each package's ``__init__`` first, then its modules and subpackages by name.

    Walked again only when one of its package directories changed (a module added,
    removed or renamed changes its directory's mtime).
    """
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"travelling package {package!r} is not installed as a package")
    root = next(iter(spec.submodule_search_locations))
    cached = _files_cache.get(root)
    if cached is not None and all(_mtime_ns(d) == mtime for d, mtime in cached[0]):
        return cached[1]
    found: List[ModuleFile] = []
    directories: List[Tuple[str, int]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d.isidentifier())
        if "__init__.py" not in filenames:
            continue  # not a package directory (e.g. __pycache__)
        relative = os.path.relpath(dirpath, root)
        prefix = package if relative == "." else package + "." + relative.replace(os.sep, ".")
        directories.append((dirpath, _mtime_ns(dirpath)))
        for filename in sorted(filenames, key=lambda f: (f != "__init__.py", f)):
            if not filename.endswith(".py"):
                continue
            stem = filename[: -len(".py")]
            is_package = stem == "__init__"
            name = prefix if is_package else f"{prefix}.{stem}"
            found.append((name, is_package, os.path.join(dirpath, filename)))
    _files_cache[root] = (tuple(directories), found)
    return found


def package_modules(package: str) -> List[Module]:
    """(dotted name, is a package, source) of every module of `package` (see package_files)."""
    found: List[Module] = []
    for name, is_package, path in package_files(package):
        with open(path, encoding="utf-8") as source:
            found.append((name, is_package, source.read()))
    return found


@lru_cache(maxsize=None)
def bundle(packages: Tuple[str, ...] = TRAVELLING_PACKAGES) -> bytes:
    """The packages' installed sources: a marshal'd list of `Module`, zlib-compressed.

    Read once per process, in the declared order of the packages, then file order.

    >>> import marshal, zlib
    >>> [name for name, _, _ in marshal.loads(zlib.decompress(bundle()))][:1]
    ['execnet_serial']
    """
    modules: List[Module] = []
    for package in packages:
        modules.extend(package_modules(package))
    return zlib.compress(marshal.dumps(modules, MARSHAL_VERSION), _COMPRESSION_LEVEL)
