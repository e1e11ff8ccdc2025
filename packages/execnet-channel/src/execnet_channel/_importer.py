"""Remote import on demand, the remote's half: a finder asking the opener for modules.

The opener allows top-level names (an IMPORT_ALLOW frame); this side then puts one
``RemoteImporter`` at the end of ``sys.meta_path``. When an allowed module is not
importable here by the usual finders, it sends IMPORT_REQUEST (the module's name) on a
fresh channel and the opener answers with IMPORT_ANSWER: the module's source and the
sources of the allowed modules it imports at top level, compressed together; or why
not. Sources are compiled and run here in the usual module machinery (``__spec__``,
``__file__`` as ``<execnet:ID>/pkg/mod.py``, ``__path__`` for packages), tracebacks show
their lines (``get_source``), and ``importlib.resources``/``pkgutil.get_data`` read the
package's data files through the opener (DATA and LIST requests on demand).

Nothing here runs until the opener allows a name: the module is imported on the first
IMPORT_ALLOW. Answers are checked before use: names, sizes, the declared length of the
decompressed bytes (bounded before decompressing), kinds.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

    from ._gateway import BaseGateway

__all__ = ["RemoteImporter", "check_name", "check_relpath", "error_from_answer"]

# What an answer may hold: no one imports more from one request.
MAX_NAME = 500  # characters of a dotted module name
MAX_MODULES = 2000  # modules in one answer
MAX_BYTES = 256 << 20  # decompressed bytes of one answer
MAX_RELPATH = 4096  # characters of a path inside a package
# Kinds of module in an answer.
MODULE, PACKAGE, NAMESPACE = 0, 1, 2


def check_name(name: object) -> str:
    """``name`` if it is a dotted module name (identifiers, at most MAX_NAME characters),
    else ValueError."""
    if (
        type(name) is not str
        or not 0 < len(name) <= MAX_NAME
        or not all(part.isidentifier() for part in name.split("."))
    ):
        raise ValueError(f"not a module name: {name!r:.200}")
    return name


def check_relpath(path: object) -> str:
    """``path`` if it is a relative '/'-separated path without '.', '..' or empty parts,
    backslashes or NULs (at most MAX_RELPATH characters), else ValueError."""
    if (
        type(path) is not str
        or not 0 < len(path) <= MAX_RELPATH
        or "\\" in path
        or "\0" in path
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise ValueError(f"not a path inside a package: {path!r:.200}")
    return path


def error_from_answer(error: object, fallback: str) -> BaseException:
    """The exception an answer's ``error`` (class name, message) stands for: the builtin
    exception class of that name (an ImportError for any other name)."""
    import builtins

    if type(error) is tuple and len(error) == 2 and all(type(e) is str for e in error):
        cls = getattr(builtins, error[0], None)
        message = error[1]
    else:
        cls, message = None, fallback
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        cls = ImportError
    try:
        return cls(message)
    except Exception:
        return ImportError(message)


class RemoteImporter:
    """A meta path finder and loader for the modules the opener serves.

    One per gateway, at the end of ``sys.meta_path`` (after the usual finders: what is
    installed here wins). Serves a dotted name only below a package it loaded itself.
    """

    def __init__(self, gateway: BaseGateway) -> None:
        self.gateway = gateway
        self.root = f"<execnet:{gateway.id}>"
        self.allowed: set[str] = set()
        model = gateway.execmodel
        self._lock = model.Lock()
        self._Event = model._event
        # name -> (kind, relative path, source bytes) from answers
        self._modules: Dict[str, Tuple[int, str, bytes]] = {}
        self._refused: Dict[str, BaseException] = {}  # name -> why (cleared by invalidate_caches)
        self._pending: Dict[str, Any] = {}  # name -> Event of the request in flight
        self.requests = 0  # how many requests this side sent (for tests and benchmarks)

    def __repr__(self) -> str:
        return f"<RemoteImporter {self.root} allowed={sorted(self.allowed)}>"

    def allow(self, names: List[str]) -> None:
        with self._lock:
            self.allowed.update(names)
            for name in list(self._refused):
                if name.partition(".")[0] in names:
                    del self._refused[name]

    def invalidate_caches(self) -> None:
        with self._lock:
            self._refused.clear()

    # -- the finder --------------------------------------------------------------------

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> Any:
        if fullname.partition(".")[0] not in self.allowed:
            return None
        parent, dot, _ = fullname.rpartition(".")
        if dot:
            module = sys.modules.get(parent)
            loader = getattr(getattr(module, "__spec__", None), "loader", None)
            if loader is not self:
                return None  # a package from elsewhere: its submodules are not ours
        record = self._fetch(fullname)
        if record is None:
            return None
        kind, relpath, _ = record
        from importlib.machinery import ModuleSpec

        loader = self
        if kind == NAMESPACE:
            spec = ModuleSpec(fullname, loader, is_package=True)  # type: ignore[arg-type]
            spec.submodule_search_locations = [f"{self.root}/{relpath}"]
            return spec
        origin = f"{self.root}/{relpath}"
        spec = ModuleSpec(fullname, loader, origin=origin, is_package=kind == PACKAGE)  # type: ignore[arg-type]
        spec.has_location = True
        if kind == PACKAGE:
            spec.submodule_search_locations = [origin.rpartition("/")[0]]
        return spec

    def _fetch(self, fullname: str) -> Optional[Tuple[int, str, bytes]]:
        """The module's record: from an earlier answer, or asked for now (one request
        for a name however many threads want it). The opener's refusal is raised (a
        ModuleNotFoundError when it has no such module: for an allowed name, the error
        says why rather than Python's bare "No module named")."""
        while True:
            with self._lock:
                record = self._modules.get(fullname)
                if record is not None:
                    return record
                refused = self._refused.get(fullname)
                if refused is not None:
                    raise refused
                pending = self._pending.get(fullname)
                if pending is None:
                    pending = self._pending[fullname] = self._Event()
                    break
            held = _release_import_lock()  # another thread asks: wait for its answer
            try:
                pending.wait()
            finally:
                _reacquire_import_lock(held)
        try:
            self._ask(fullname)
        finally:
            with self._lock:
                del self._pending[fullname]
            pending.set()
        with self._lock:
            record = self._modules.get(fullname)
            refused = self._refused.get(fullname)
        if record is not None:
            return record
        if refused is None:
            return None
        raise refused

    def _ask(self, fullname: str) -> None:
        try:
            answer = self.request(("module", fullname), fullname)
            modules = self._read_modules(answer, fullname)
        except ImportError as exc:
            # (a ModuleNotFoundError: the opener has no such module either; it says so)
            with self._lock:
                self._refused[fullname] = exc
            return
        with self._lock:
            for name, record in modules.items():
                self._modules.setdefault(name, record)

    def request(self, request: Tuple[str, ...], what: str) -> Dict[str, Any]:
        """Send a request to the opener, wait for its answer (a dict); ImportError
        naming ``what`` when there is none, or the answer says why not."""
        gateway = self.gateway
        if gateway.execmodel.get_ident() == gateway._receiver_ident:
            raise ImportError(
                f"cannot import {what!r} from gateway {gateway.id!r}'s receiver (a channel "
                "callback): the answer would have to be read by this very task; import it "
                "before setting the callback, or in the task",
                name=what,
            )
        self.requests += 1
        held = _release_import_lock()
        try:
            answer = gateway._import_request(request)
        except (EOFError, OSError) as exc:
            raise ImportError(
                f"cannot import {what!r} from the opener of gateway {gateway.id!r}: {exc}",
                name=what,
            ) from None
        finally:
            _reacquire_import_lock(held)
        if type(answer) is not dict:
            raise ImportError(f"bad answer for {what!r} from the opener: {answer!r:.200}")
        error = answer.get("error")
        if error is not None:
            refusal = error_from_answer(error, f"the opener refused {what!r}")
            if isinstance(refusal, ImportError):
                refusal.name = what
            raise refusal
        return answer

    def _read_modules(
        self, answer: Dict[str, Any], fullname: str
    ) -> Dict[str, Tuple[int, str, bytes]]:
        """The records of an answer, checked: ImportError if anything is off."""
        try:
            entries = answer["modules"]
            data = answer["data"]
            if type(entries) is not list or not 0 < len(entries) <= MAX_MODULES:
                raise ValueError("no list of modules")
            total = 0
            checked = []
            for entry in entries:
                name, kind, relpath, size = entry
                check_name(name)
                check_relpath(relpath)
                if name.partition(".")[0] not in self.allowed:
                    raise ValueError(f"module {name!r} was not allowed")
                if kind not in (MODULE, PACKAGE, NAMESPACE):
                    raise ValueError(f"unknown kind {kind!r}")
                if type(size) is not int or size < 0:
                    raise ValueError(f"bad size {size!r}")
                total += size
                checked.append((name, kind, relpath, size))
            if total > MAX_BYTES:
                raise ValueError(f"{total} bytes of source")
            if checked[0][0] != fullname:
                raise ValueError(f"it is for {checked[0][0]!r}")
            sources = _decompress(data, total)
        except (ValueError, TypeError, KeyError) as exc:
            raise ImportError(
                f"bad answer for module {fullname!r} from the opener of gateway "
                f"{self.gateway.id!r}: {exc}",
                name=fullname,
            ) from None
        modules = {}
        offset = 0
        for name, kind, relpath, size in checked:
            modules[name] = (kind, relpath, sources[offset : offset + size])
            offset += size
        return modules

    # -- the loader --------------------------------------------------------------------

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        name = module.__spec__.name
        kind, relpath, source = self._modules[name]
        if kind == NAMESPACE:
            return
        code = compile(source, f"{self.root}/{relpath}", "exec", dont_inherit=True)
        exec(code, module.__dict__)

    def is_package(self, fullname: str) -> bool:
        record = self._modules.get(fullname)
        if record is None:
            raise ImportError(f"module {fullname!r} was not served by {self.root}", name=fullname)
        return record[0] != MODULE

    def get_source(self, fullname: str) -> Optional[str]:
        record = self._modules.get(fullname)
        if record is None:
            raise ImportError(f"module {fullname!r} was not served by {self.root}", name=fullname)
        if record[0] == NAMESPACE:
            return None
        from importlib.util import decode_source

        return decode_source(record[2])

    def get_filename(self, fullname: str) -> str:
        record = self._modules.get(fullname)
        if record is None or record[0] == NAMESPACE:
            raise ImportError(f"module {fullname!r} has no file", name=fullname)
        return f"{self.root}/{record[1]}"

    def get_data(self, path: str) -> bytes:
        """The bytes of a file of a served package, read by the opener: ``path`` as
        ``__file__`` names files (``<execnet:ID>/pkg/data.txt``; what ``pkgutil.get_data``
        asks for)."""
        relpath = self._relpath(path)
        answer = self._data_request("data", relpath)
        blob = answer.get("data")
        size = answer.get("size")
        if type(size) is not int or not 0 <= size <= MAX_BYTES:
            raise OSError(f"bad answer for {path!r} from the opener")
        return _decompress(blob, size)

    def list_dir(self, relpath: str) -> List[Tuple[str, bool]]:
        """(name, is a directory) of each entry of a served package's directory."""
        answer = self._data_request("list", relpath)
        entries = answer.get("entries")
        if type(entries) is not list:
            raise OSError(f"bad answer for {relpath!r} from the opener")
        checked = []
        for entry in entries:
            if (
                type(entry) is not tuple
                or len(entry) != 2
                or type(entry[1]) is not bool
                or type(entry[0]) is not str
                or "/" in entry[0]
            ):
                raise OSError(f"bad answer for {relpath!r} from the opener")
            check_relpath(entry[0])
            checked.append(entry)
        return checked

    def _relpath(self, path: object) -> str:
        prefix = self.root + "/"
        if type(path) is not str or not path.startswith(prefix):
            raise OSError(f"{path!r} is not a file served by {self.root}")
        relpath = path[len(prefix) :]
        try:
            check_relpath(relpath)
        except ValueError as exc:
            raise OSError(str(exc)) from None
        return relpath

    def _data_request(self, kind: str, relpath: str) -> Dict[str, Any]:
        top = relpath.partition("/")[0]
        if top not in self.allowed:
            raise FileNotFoundError(f"{self.root}/{relpath}: not in an allowed package")
        try:
            return self.request((kind, relpath), f"{self.root}/{relpath}")
        except ImportError as exc:
            raise OSError(str(exc)) from None

    def get_resource_reader(self, fullname: str) -> Any:
        record = self._modules.get(fullname)
        if record is None or record[0] == MODULE:
            return None
        relpath = record[1] if record[0] == NAMESPACE else record[1].rpartition("/")[0]
        from ._resources import Reader

        return Reader(self, relpath)


def _release_import_lock() -> int:
    """Release the global import lock if this thread holds it; how many times it held it.

    The import system holds it around every finder's find_spec: waiting for the opener
    while holding it would stop every other thread's import, the receiver's too (which
    must read the answer), a deadlock. Module locks (per module) stay held: two threads
    importing the same module still wait for one another, as usual.
    """
    import _imp

    held = 0
    while True:
        try:
            _imp.release_lock()
        except RuntimeError:  # not (or no longer) held by this thread
            return held
        held += 1


def _reacquire_import_lock(held: int) -> None:
    import _imp

    for _ in range(held):
        _imp.acquire_lock()


def _decompress(data: object, size: int) -> bytes:
    """``size`` bytes from zlib ``data``; ValueError unless that is exactly what it holds
    (no more is ever decompressed: a small blob cannot grow into a big one here)."""
    import zlib

    if type(data) is not bytes:
        raise ValueError("no compressed bytes")
    decompressor = zlib.decompressobj()
    try:
        out = decompressor.decompress(data, size + 1)
    except zlib.error as exc:
        raise ValueError(f"bad compressed data: {exc}") from None
    if len(out) != size or decompressor.unconsumed_tail or not decompressor.eof:
        raise ValueError(f"compressed data does not hold {size} bytes")
    return out
