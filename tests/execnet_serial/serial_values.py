"""Hypothesis strategies for values execnet_serial handles, and a nan-aware comparison.

Imported by the serializer's tests and by tests/interop/test_serial_*.py.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

INT4_EDGES = [-(2**31) - 1, -(2**31), -(2**31) + 1, -1, 0, 1, 2**31 - 2, 2**31 - 1, 2**31, 2**32]

ints = st.one_of(
    st.sampled_from(INT4_EDGES),
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
)
# Ints the original can dump: it fails on ints below -2**31.
oracle_ints = ints.filter(lambda i: i >= -(2**31))
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, math.inf, -math.inf, math.nan]
)
complexes = st.complex_numbers(allow_nan=True, allow_infinity=True)


def _scalars(int_strategy: st.SearchStrategy[int], *, hashed: bool) -> st.SearchStrategy[Any]:
    base = [st.booleans(), int_strategy]
    if hashed:
        # nan in a set or dict key never compares equal, and the hashes of str, bytes and
        # (before 3.12) None vary per process, so set order would differ between two
        # processes: keep those out of sets.
        base += [st.floats(allow_nan=False), st.complex_numbers(allow_nan=False)]
    else:
        base += [st.none(), floats, complexes, st.text(), st.binary()]
    return st.one_of(base)


def _values(int_strategy: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    hashables = st.recursive(
        _scalars(int_strategy, hashed=True),
        lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=4),
        max_leaves=8,
    )
    keys = st.one_of(st.text(), st.binary(), st.none(), hashables)
    return st.recursive(
        _scalars(int_strategy, hashed=False),
        lambda inner: st.one_of(
            st.lists(inner, max_size=12),
            st.lists(inner, max_size=5).map(tuple),
            st.dictionaries(keys, inner, max_size=6),
            st.sets(hashables, max_size=5),
            st.frozensets(hashables, max_size=5),
            st.lists(st.integers(-(2**31), 2**31 - 1), min_size=8, max_size=40),
            st.lists(st.text(), min_size=8, max_size=20),
            st.lists(floats, min_size=8, max_size=20),
        ),
        max_leaves=40,
    )


values = _values(ints)
oracle_values = _values(oracle_ints)


def same(a: Any, b: Any) -> bool:
    """Equal, with nan equal to nan, -0.0 distinct from 0.0 and types matched exactly."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if type(a) is complex:
        return same(a.real, b.real) and same(a.imag, b.imag)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)
