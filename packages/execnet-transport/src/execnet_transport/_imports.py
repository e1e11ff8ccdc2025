"""Remote import on demand, the opener's half: answer a remote's requests for modules.

The remote is untrusted here. It may ask for any name and any path, as often as it
likes; this side answers only for the top-level names the caller allowed
(``imports=``, ``Gateway.allow_imports``), finds modules with its own import system
(``sys.modules``, then the finders on ``sys.meta_path`` with the parent package's search
path: a parent is never imported to find a child), and only ever *reads* files: it runs
none of the code it serves. Files are read only inside the directories of the allowed
package that was found (real paths: no symlink or ``..`` leads out), only regular files,
and every size is bounded. Requests are answered one at a time by one task per gateway,
with at most MAX_PENDING waiting; more are refused at once.

An answer to a module request carries that module's source and the sources of the
allowed modules it imports at top level (found with ``ast``, not by running them; not
inside functions or ``if TYPE_CHECKING:``), transitively, that were not sent to this
gateway before: a package arrives in a few round trips. Sources travel zlib-compressed.
"""

from __future__ import annotations

import os
import stat
import sys
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Set, Tuple

if TYPE_CHECKING:
    from execnet_channel import BaseGateway

__all__ = ["ImportServer", "check_import_names", "imports_of"]

MAX_PENDING = 64  # requests waiting for the serving task; more are refused at once
MAX_FILE = 32 << 20  # bytes of one file served
MAX_ANSWER = 64 << 20  # bytes of source in one answer (before compression)
MAX_MODULES = 500  # modules in one answer
MAX_LOOKUPS = 2000  # module lookups for one answer (each import found costs one)
MAX_LIST = 10000  # entries of a directory listing
MAX_NAME = 500  # characters of a dotted name asked for
MAX_PATH = 4096  # characters of a package path asked for
_FRAME_ROOM = 64 * 1024  # what an answer needs besides the compressed bytes
# Kinds of module in an answer (execnet_channel's importer reads them).
MODULE, PACKAGE, NAMESPACE = 0, 1, 2


def check_import_names(names: Iterable[object], where: str) -> Tuple[str, ...]:
    """The names if each is a top-level module name (an identifier), else ValueError
    naming ``where`` (the spec, or the call)."""
    checked = []
    for name in names:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(
                f"{where}: {name!r} is not a top-level package or module name "
                "(allow 'pkg', not 'pkg.sub' or a path)"
            )
        checked.append(name)
    return tuple(checked)


def imports_of(spec: Any) -> Tuple[str, ...]:
    """The names of the spec's ``imports=`` key (a comma list; spaces around names are
    ignored), () without it; ValueError naming the spec for anything but names."""
    value = spec.imports
    if value is None:
        return ()
    where = f"imports= in gateway spec {str(spec)!r}"
    if value is True or not str(value).strip():
        raise ValueError(f"{where}: give the allowed top-level names, e.g. imports=mypkg,attrs")
    return check_import_names([part.strip() for part in str(value).split(",")], where)


class Refused(Exception):
    """Why a request is not answered: ``cls`` (a builtin exception class name the remote
    raises) and the message."""

    def __init__(self, cls: str, message: str) -> None:
        super().__init__(message)
        self.cls = cls
        self.message = message


class Found:
    """A module ready to be sent: its kind, its source and the names it imports."""

    __slots__ = ("deps", "kind", "name", "relpath", "source")

    def __init__(self, name: str, kind: int, source: bytes, deps: List[str]) -> None:
        self.name = name
        self.kind = kind
        self.source = source
        self.deps = deps
        parts = name.replace(".", "/")
        if kind == PACKAGE:
            self.relpath = parts + "/__init__.py"
        elif kind == NAMESPACE:
            self.relpath = parts
        else:
            self.relpath = parts + ".py"


# path -> (mtime_ns, size, source, imports found in it): files read by any gateway
_source_cache: Dict[str, Tuple[int, int, bytes, List[str]]] = {}


class ImportServer:
    """Answers one gateway's import requests (see the module docstring)."""

    def __init__(self, gateway: BaseGateway) -> None:
        self.gateway = gateway
        self.allowed: Set[str] = set()
        self.requests = 0  # requests received (for tests and benchmarks)
        self._sent: Set[str] = set()  # modules this gateway's remote has been sent
        model = gateway.execmodel
        self._lock = model.Lock()
        self._queue: List[Tuple[int, Any]] = []
        self._serving = False

    # -- called by the receiver --------------------------------------------------------

    def submit(self, channel_id: int, request: Any) -> None:
        """Queue a request for the serving task (refuse it when too many wait)."""
        with self._lock:
            self.requests += 1
            if len(self._queue) >= MAX_PENDING:
                busy = True
            else:
                busy = False
                self._queue.append((channel_id, request))
                start = not self._serving
                self._serving = True
        if busy:
            message = f"more than {MAX_PENDING} import requests are waiting; refused"
            self.gateway._answer_import(channel_id, {"error": ("ImportError", message)})
        elif start:
            self.gateway.execmodel.start(self._serve)

    def _serve(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._serving = False
                    return
                channel_id, request = self._queue.pop(0)
            answer = self.answer(request)
            try:
                self.gateway._answer_import(channel_id, answer)
            except ValueError as exc:  # FrameTooLarge: cannot happen with the budget
                message = f"the answer does not fit a frame: {exc}"
                self.gateway._answer_import(channel_id, {"error": ("ImportError", message)})

    # -- answers -----------------------------------------------------------------------

    def answer(self, request: Any) -> Dict[str, Any]:
        """The answer to one request: a dict with the data, or ``error`` (class, text)."""
        try:
            if (
                type(request) is not tuple
                or len(request) != 2
                or type(request[0]) is not str
                or type(request[1]) is not str
            ):
                raise Refused("ImportError", f"not an import request: {request!r:.200}")
            kind, what = request
            if kind == "module":
                return self._module_answer(_check_name(what))
            if kind in ("data", "list"):
                return self._file_answer(kind, _check_path(what))
            raise Refused("ImportError", f"unknown import request {kind!r:.50}")
        except Refused as refused:
            return {"error": (refused.cls, refused.message)}
        except Exception as exc:  # a finder or a file failed: the remote learns how
            return {"error": (type(exc).__name__, f"{exc} (on the opener's side)")}

    def _budget(self) -> int:
        return min(MAX_ANSWER, self.gateway.max_frame - _FRAME_ROOM)

    def _module_answer(self, name: str) -> Dict[str, Any]:
        import zlib

        if name.partition(".")[0] not in self.allowed:
            raise Refused(
                "ImportError",
                f"module {name!r} is not allowed: the opener of gateway "
                f"{self.gateway.id!r} allows importing {_describe(self.allowed)}",
            )
        specs: Dict[str, Any] = {}
        found = self._find(name, specs)
        if found is None:
            raise Refused(
                "ModuleNotFoundError",
                f"No module named {name!r} (the opener of gateway {self.gateway.id!r} "
                "cannot find it either)",
            )
        budget = self._budget()
        if len(found.source) > budget:
            raise Refused(
                "ImportError",
                f"module {name!r} is {len(found.source)} bytes, over what one answer "
                f"may carry ({budget} bytes; the gateway's max_frame bounds it)",
            )
        records = [found]
        total = len(found.source)
        seen = {name}
        todo = list(found.deps)
        lookups = 0
        while todo and len(records) < MAX_MODULES and lookups < MAX_LOOKUPS:
            dep = todo.pop(0)
            if dep in seen or dep in self._sent or dep.partition(".")[0] not in self.allowed:
                continue
            seen.add(dep)
            lookups += 1
            try:
                extra = self._find(dep, specs)
            except Exception:  # refused, or odd: the remote asks for it itself if it needs it
                continue
            if extra is None or total + len(extra.source) > budget:
                continue
            records.append(extra)
            total += len(extra.source)
            todo.extend(extra.deps)
        self._sent.update(record.name for record in records)
        data = zlib.compress(b"".join(record.source for record in records), 6)
        modules = [(r.name, r.kind, r.relpath, len(r.source)) for r in records]
        return {"modules": modules, "data": data}

    def _spec(self, name: str, specs: Dict[str, Any]) -> Any:
        """The caller's spec for ``name`` (None: not found), without importing anything:
        from sys.modules, else the finders with the parent's search locations."""
        if name in specs:
            return specs[name]
        parent, dot, _ = name.rpartition(".")
        path = None
        spec = None
        if dot:
            path = _locations(self._spec(parent, specs))
        if not dot or path is not None:
            module = sys.modules.get(name)
            spec = getattr(module, "__spec__", None) if module is not None else None
            if spec is None:
                for finder in list(sys.meta_path):
                    find = getattr(finder, "find_spec", None)
                    if find is not None:
                        try:
                            spec = find(name, path, None)
                        except KeyError:
                            if not hasattr(finder, "_get_spec"):
                                raise
                            spec = _nested_namespace(finder, name, path)
                        if spec is not None:
                            break
        specs[name] = spec
        return spec

    def _roots(self, top: str, specs: Dict[str, Any]) -> List[str]:
        """The real paths files of ``top`` may come from: its package directories, or
        its own file for a top-level module."""
        spec = self._spec(top, specs)
        if spec is None:
            return []
        locations = _locations(spec)
        if locations is not None:
            return [os.path.realpath(location) for location in locations]
        if spec.origin and spec.has_location:
            return [os.path.realpath(spec.origin)]
        return []

    def _find(self, name: str, specs: Dict[str, Any]) -> Optional[Found]:
        """The module ``name`` ready to send; None if the caller has no such module,
        Refused if it cannot be sent."""
        spec = self._spec(name, specs)
        if spec is None:
            return None
        origin = spec.origin
        loader = spec.loader
        if (loader is None or origin is None) and spec.submodule_search_locations is not None:
            return Found(name, NAMESPACE, b"", [])
        from importlib.machinery import BYTECODE_SUFFIXES, EXTENSION_SUFFIXES

        where = f"the opener of gateway {self.gateway.id!r}"
        if origin in ("built-in", "frozen"):
            raise Refused(
                "ImportError",
                f"cannot import {name!r} from {where}: it is a {origin} module of its "
                "interpreter (only Python source is served)",
            )
        if isinstance(origin, str) and origin.endswith(tuple(EXTENSION_SUFFIXES)):
            raise Refused(
                "ImportError",
                f"cannot import {name!r} from {where}: it is an extension module "
                f"({os.path.basename(origin)}), compiled for the opener's platform "
                "(only Python source is served; install it on the remote)",
            )
        if isinstance(origin, str) and origin.endswith(tuple(BYTECODE_SUFFIXES)):
            raise Refused(
                "ImportError",
                f"cannot import {name!r} from {where}: it has no source, only "
                f"{os.path.basename(origin)} (only Python source is served)",
            )
        is_package = spec.submodule_search_locations is not None
        kind = PACKAGE if is_package else MODULE
        if spec.has_location and isinstance(origin, str) and os.path.isfile(origin):
            roots = self._roots(name.partition(".")[0], specs)
            source, deps = _read_source(origin, roots, name, is_package)
            return Found(name, kind, source, deps)
        get_source = getattr(loader, "get_source", None)
        text = get_source(name) if get_source is not None else None
        if text is None:
            raise Refused(
                "ImportError",
                f"cannot import {name!r} from {where}: its loader gives no source "
                f"({type(loader).__name__})",
            )
        source = str(text).encode("utf-8")
        if len(source) > MAX_FILE:
            raise Refused("ImportError", f"module {name!r} is over {MAX_FILE} bytes")
        return Found(name, kind, source, _imports_in(source, name, is_package))

    def _file_answer(self, kind: str, relpath: str) -> Dict[str, Any]:
        top, _, rest = relpath.partition("/")
        if top not in self.allowed:
            raise Refused("PermissionError", f"{relpath!r} is not in an allowed package")
        specs: Dict[str, Any] = {}
        spec = self._spec(top, specs)
        if spec is None or spec.submodule_search_locations is None:
            raise Refused("FileNotFoundError", f"{relpath!r}: {top!r} is no package here")
        roots = self._roots(top, specs)
        for root in roots:
            path = os.path.join(root, *rest.split("/")) if rest else root
            if not os.path.lexists(path):
                continue
            real = os.path.realpath(path)
            if not _inside(real, roots):
                raise Refused("PermissionError", f"{relpath!r} leads out of package {top!r}")
            if kind == "list":
                if not os.path.isdir(real):
                    raise Refused("NotADirectoryError", f"{relpath!r} is not a directory")
                return {"entries": _listing(real)}
            if os.path.isdir(real):
                raise Refused("IsADirectoryError", f"{relpath!r} is a directory")
            import zlib

            data = _read_file(real, min(MAX_FILE, self._budget()), relpath)
            return {"data": zlib.compress(data, 6), "size": len(data)}
        raise Refused("FileNotFoundError", f"no file {relpath!r} in package {top!r}")


def _nested_namespace(finder: Any, name: str, path: Optional[List[str]]) -> Any:
    """The spec of a namespace package inside another one whose parent is not imported
    here: PathFinder.find_spec raises KeyError for it (its ``_NamespacePath`` looks the
    parent up in sys.modules); the spec underneath (portions as a plain list) does."""
    spec = finder._get_spec(name, path)
    if spec is None or (spec.loader is None and not spec.submodule_search_locations):
        return None
    return spec


def _locations(spec: Any) -> Optional[List[str]]:
    """A package spec's search locations (None for a module), without importing: a
    namespace package's ``_NamespacePath`` recomputes itself from its parent module,
    which need not be imported here, so its initial list is taken."""
    locations = getattr(spec, "submodule_search_locations", None)
    if locations is None:
        return None
    initial = getattr(locations, "_path", None)
    return list(initial if isinstance(initial, list) else locations)


def _describe(names: Set[str]) -> str:
    return ", ".join(repr(name) for name in sorted(names)) if names else "nothing"


def _check_name(name: str) -> str:
    if not 0 < len(name) <= MAX_NAME or not all(part.isidentifier() for part in name.split(".")):
        raise Refused("ImportError", f"not a module name: {name!r:.200}")
    return name


def _check_path(path: str) -> str:
    parts = path.split("/")
    if (
        not 0 < len(path) <= MAX_PATH
        or "\\" in path
        or "\0" in path
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise Refused("PermissionError", f"not a path inside a package: {path!r:.200}")
    return path


def _inside(real: str, roots: List[str]) -> bool:
    return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _read_file(path: str, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (never a FIFO or device:
    opened without blocking, checked after opening)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused("PermissionError", f"{what!r} is not a regular file")
        if info.st_size > limit:
            raise Refused("ImportError", f"{what!r} is {info.st_size} bytes, over {limit}")
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise Refused("ImportError", f"{what!r} grew over {limit} bytes while read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_source(
    path: str, roots: List[str], name: str, is_package: bool
) -> Tuple[bytes, List[str]]:
    """The source of a module file inside ``roots`` and the imports found in it (cached
    while the file's mtime and size stay)."""
    real = os.path.realpath(path)
    if not _inside(real, roots):
        raise Refused(
            "ImportError",
            f"cannot import {name!r}: its file is outside the allowed package's directories",
        )
    info = os.stat(real)
    cached = _source_cache.get(real)
    if cached is not None and cached[:2] == (info.st_mtime_ns, info.st_size):
        return cached[2], cached[3]
    source = _read_file(real, MAX_FILE, name)
    deps = _imports_in(source, name, is_package)
    _source_cache[real] = (info.st_mtime_ns, info.st_size, source, deps)
    return source, deps


def _imports_in(source: bytes, name: str, is_package: bool) -> List[str]:
    """The modules a module imports when it runs (top level, class bodies, if/try
    blocks; not function bodies or ``if TYPE_CHECKING:``), absolute, parents first;
    names a ``from x import y`` may mean (``x.y``) included. Read with ``ast``: nothing
    runs. A source that does not parse imports nothing (the remote gets its
    SyntaxError when it compiles it)."""
    import ast

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    package = name if is_package else name.rpartition(".")[0]
    found: List[str] = []

    def add(dotted: str) -> None:
        parts = dotted.split(".")
        for end in range(1, len(parts) + 1):
            candidate = ".".join(parts[:end])
            if candidate not in found:
                found.append(candidate)

    todo: List[ast.AST] = [tree]
    while todo:
        node = todo.pop(0)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            if base is None:
                continue
            add(base)
            for alias in node.names:
                if alias.name != "*":
                    add(f"{base}.{alias.name}")
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))
    return found


def _absolute(module: Optional[str], level: int, package: str) -> Optional[str]:
    if level == 0:
        return module
    parts = package.split(".") if package else []
    if level - 1 > len(parts) or (level - 1 == len(parts) and not module):
        return None
    base = parts[: len(parts) - (level - 1)]
    if module:
        base.append(module)
    return ".".join(base) or None


def _is_type_checking(test: Any) -> bool:
    import ast

    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _listing(directory: str) -> List[Tuple[str, bool]]:
    entries: List[Tuple[str, bool]] = []
    with os.scandir(directory) as scan:
        for entry in scan:
            if entry.name == "__pycache__" or "\\" in entry.name or entry.name in (".", ".."):
                continue
            entries.append((entry.name, entry.is_dir()))
            if len(entries) > MAX_LIST:
                raise Refused("OSError", f"more than {MAX_LIST} entries in a package directory")
    return sorted(entries)
