"""``importlib.resources`` for packages served by the opener (see _importer).

``files(pkg)`` gives a ``Traversable`` whose reads and listings are requests to the
opener; the older reader API (``open_resource``, ``contents``...) of Python 3.8 is
offered too. Imported only when a served package's resources are asked for.
"""

from __future__ import annotations

import io

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator, List

    from ._importer import RemoteImporter

__all__ = ["Reader", "Traversable"]


class Traversable:
    """A file or directory of a served package (``importlib.resources.abc.Traversable``)."""

    def __init__(self, importer: RemoteImporter, relpath: str) -> None:
        self._importer = importer
        self._relpath = relpath

    def __repr__(self) -> str:
        return f"<Traversable {self._importer.root}/{self._relpath}>"

    def __str__(self) -> str:
        return f"{self._importer.root}/{self._relpath}"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Traversable)
            and other._importer is self._importer
            and other._relpath == self._relpath
        )

    def __hash__(self) -> int:
        return hash(self._relpath)

    @property
    def name(self) -> str:
        return self._relpath.rpartition("/")[2]

    def _entries(self) -> List[Any]:
        return self._importer.list_dir(self._relpath)

    def iterdir(self) -> Iterator[Traversable]:
        for name, _ in self._entries():
            yield Traversable(self._importer, f"{self._relpath}/{name}")

    def is_dir(self) -> bool:
        parent, _, name = self._relpath.rpartition("/")
        if not parent:
            return True  # a top-level package
        try:
            return (name, True) in Traversable(self._importer, parent)._entries()
        except OSError:
            return False

    def is_file(self) -> bool:
        parent, _, name = self._relpath.rpartition("/")
        if not parent:
            return False
        try:
            return (name, False) in Traversable(self._importer, parent)._entries()
        except OSError:
            return False

    def exists(self) -> bool:
        return self.is_dir() or self.is_file()

    def joinpath(self, *descendants: str) -> Traversable:
        relpath = self._relpath
        for descendant in descendants:
            for part in str(descendant).split("/"):
                if part in ("", "."):
                    continue
                if part == "..":
                    raise ValueError(f"{descendant!r}: '..' leaves the package")
                relpath = f"{relpath}/{part}"
        return Traversable(self._importer, relpath)

    __truediv__ = joinpath

    def read_bytes(self) -> bytes:
        return self._importer.get_data(str(self))

    def read_text(self, encoding: Any = None, errors: Any = None) -> str:
        return self.read_bytes().decode(encoding or "utf-8", errors or "strict")

    def open(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if mode not in ("r", "rb"):
            raise ValueError(f"files of a served package open for reading only, not {mode!r}")
        data = io.BytesIO(self.read_bytes())
        if mode == "rb":
            return data
        return io.TextIOWrapper(data, *args, **kwargs)


class Reader:
    """What a served package's loader gives ``importlib.resources``: ``files()``, and
    the reader API of Python 3.8."""

    def __init__(self, importer: RemoteImporter, relpath: str) -> None:
        self._root = Traversable(importer, relpath)

    def files(self) -> Traversable:
        return self._root

    def open_resource(self, resource: str) -> Any:
        return self._root.joinpath(resource).open("rb")

    def resource_path(self, resource: str) -> str:
        raise FileNotFoundError(f"{self._root}/{resource} is not a file on this host")

    def is_resource(self, path: str) -> bool:
        return self._root.joinpath(path).is_file()

    def contents(self) -> Iterator[str]:
        return iter([name for name, _ in self._root._entries()])
