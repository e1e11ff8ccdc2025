"""dumps+loads side by side: the corpus of the execnet-serial issue.

Cases: `ints` (a list of 100,000 ints), `dict` (10,000 str -> (int, str, float)),
`reports` (1,000 dicts shaped like pytest-xdist test reports), `bytes10m` (10 MiB of
bytes), `unicode1m` (1 MiB of non-ASCII str). One measured run is the best of 7
dumps+loads pairs (after one warm-up pair), so a busy machine disturbs it less; the
value is built outside the clock and the loaded value is checked outside it too.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable, Dict, List

from _harness import Measure, quick, run_cli

import execnet


def _ints() -> Any:
    return list(range(-50_000, 50_000))


def _dict() -> Any:
    return {f"key{i}": (i, f"value {i}", i * 1.5) for i in range(10_000)}


def _reports() -> Any:
    reports: List[Dict[str, Any]] = []
    for i in range(1_000):
        module = f"tests/test_module{i % 50}.py"
        failed = i % 7 == 0
        reports.append(
            {
                "nodeid": f"{module}::TestClass::test_function[param-{i}]",
                "location": (module, i * 3, f"TestClass.test_function[param-{i}]"),
                "keywords": {
                    f"test_function[param-{i}]": 1,
                    "TestClass": 1,
                    f"test_module{i % 50}.py": 1,
                    "parametrize": 1,
                    "pytestmark": 1,
                },
                "outcome": "failed" if failed else "passed",
                "longrepr": f"Traceback ...\nAssertionError: boom {i}" if failed else None,
                "when": "call",
                "user_properties": [],
                "sections": [
                    ("Captured stdout call", f"line one\nline two {i}\n"),
                    ("Captured log call", "INFO something happened"),
                ],
                "duration": 0.00123 * i,
                "start": 1_700_000_000.0 + i,
                "stop": 1_700_000_000.5 + i,
                "$report_type": "TestReport",
                "item_index": i,
                "worker_id": "gw0",
                "testrun_uid": "7f3c1d2e9a8b4c5d",
                "skipped": False,
                "wasxfail": None,
                "rerun": None,
            }
        )
    return reports


def _bytes10m() -> Any:
    block = bytes(random.Random(1).getrandbits(8) for _ in range(1024))
    return block * (1024 if quick() else 10 * 1024)


def _unicode1m() -> Any:
    text = "héllo wörld ✓ ünïcödé 日本語 ∑ "
    size = 1024 * 1024
    return (text * (size // len(text) + 1))[:size]


def _case(make: Callable[[], Any]) -> Callable[[], Measure]:
    def run() -> Measure:
        value = make()
        dumps, loads = execnet.dumps, execnet.loads
        loads(dumps(value))  # warm-up
        best = float("inf")
        for _ in range(7):
            start = time.perf_counter()
            loaded = loads(dumps(value))
            best = min(best, time.perf_counter() - start)
        assert loaded == value
        return Measure(best, "run", 1.0)

    return run


CASES = {
    "ints": _case(_ints),
    "dict": _case(_dict),
    "reports": _case(_reports),
    "bytes10m": _case(_bytes10m),
    "unicode1m": _case(_unicode1m),
}

if __name__ == "__main__":
    run_cli(CASES)
