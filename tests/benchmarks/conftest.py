"""The benchmark runner (benchmarks/run.py) as a module, for the tests of its parts."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import parts
import pytest

RUN = parts.ROOT / "benchmarks" / "run.py"


@pytest.fixture(scope="session")
def run() -> ModuleType:
    """benchmarks/run.py, loaded once; its siblings (_measure, peer_runs) come with it."""
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module
