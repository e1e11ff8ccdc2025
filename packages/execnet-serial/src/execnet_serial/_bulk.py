"""The decoder's bulk readers, behind one interface.

After NEWLIST or NEWDICT the loop may hand the container it just made to the bulk
readers, which read many of its entries at once where they come in a regular layout
(``_records``: entries laid out byte for byte alike; ``_shapes``: records of a few
shapes, strings of any length). Each reader is a function

    reader(data, pos, end, container, raw, budget) -> (pos, tuples, items)

called with the position of the container's first entry, ``raw`` true when PY3STRING
values stay bytes (py3str_as_py2str) and ``budget`` the list items NEWLISTs may still
declare; it returns where it stopped, how many tuples (of one item or more) and list
items its entries built. Every reader keeps to the loop's rules, so that the outcome,
the value or the LoadError and its message, is the loop's own (the tests compare both
on valid and mutated streams):

- it checks every opcode and length byte of an entry against the data before it
  builds anything from it, and builds nothing it did not check;
- it applies a batch of entries whole or not at all, exactly as SETITEM would;
- it declares no more list items than ``budget``;
- it stops at the first entry it does not take, leaving it and everything after it
  to the loop; a reader that takes nothing returns ``pos`` unchanged.

This module and the readers are imported on the first big container: a remote's start
skips them.
"""

from __future__ import annotations

from ._records import read_runs
from ._shapes import read_shapes
from ._startup import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Tuple, Union

    Container = Union[Dict[Any, Any], List[Any]]
    BulkReader = Callable[[bytes, int, int, Container, bool, int], Tuple[int, int, int]]

__all__ = ["READERS", "read_entries"]

READERS: Tuple[BulkReader, ...] = (read_runs, read_shapes)


def read_entries(  # noqa: PLR0917 - the readers' own signature
    data: bytes, pos: int, end: int, container: Container, raw: bool, budget: int
) -> Tuple[int, int, int]:
    """The readers in turn on the entries of container from pos: where they stopped,
    the tuples and list items they built."""
    tuples = items = 0
    for reader in READERS:
        pos, built, declared = reader(data, pos, end, container, raw, budget - items)
        tuples += built
        items += declared
    return pos, tuples, items
