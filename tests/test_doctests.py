"""The examples in every package's docstrings run, and say what they print.

One test per docstring that holds examples, in every module of every package (found by
walking the installed packages, so a new module is covered without a line here). Each
example runs with its module's globals, as ``python -m doctest`` would. An example that
needs a part this test cannot provide in place (a TLS peer, an ssh host) is marked
``# doctest: +SKIP`` where it stands and names the test that covers it.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType
from typing import Any, Dict, Iterator, List

import pytest

PACKAGES = (
    "execnet_serial",
    "execnet_channel",
    "execnet_transport",
    "execnet_group",
    "execnet_rsync",
    "execnet",
)
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules(package: str) -> Iterator[ModuleType]:
    top = importlib.import_module(package)
    yield top
    for info in pkgutil.walk_packages(top.__path__, package + "."):
        if info.name.endswith(".__main__"):
            continue  # running the command line is what importing it does
        yield importlib.import_module(info.name)


def _docstrings() -> List[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = []
    for package in PACKAGES:
        for module in _modules(package):
            found += [test for test in finder.find(module) if test.examples]
    return sorted(found, key=lambda test: test.name)


DOCSTRINGS = _docstrings()


def test_every_package_has_examples() -> None:
    for package in PACKAGES:
        assert any(test.name.split(".")[0] == package for test in DOCSTRINGS), package


def _end_what_it_started(names: Dict[str, Any]) -> None:
    """End the groups and gateways an example left behind (one that failed half way)."""
    from execnet_group import Group
    from execnet_transport import Gateway

    for value in names.values():
        if isinstance(value, Group):
            value.terminate(10)
        elif isinstance(value, Gateway):
            value.exit()
            value.join(10)
            if value.wait_child(10) is None:
                value.kill_child()
                value.wait_child(10)


@pytest.mark.parametrize("test", DOCSTRINGS, ids=[test.name for test in DOCSTRINGS])
def test_docstring_examples(test: doctest.DocTest) -> None:
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    report: List[str] = []
    try:
        runner.run(test, out=report.append, clear_globs=False)
    finally:
        _end_what_it_started(test.globs)
        test.globs.clear()
    assert runner.failures == 0, "".join(report)
