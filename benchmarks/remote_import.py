"""Remote import on demand: ours (imports=) against mitogen 0.3 doing the same import.

    python benchmarks/remote_import.py ours    [--rounds 5]   # with this project installed
    /work/venvs-shared/bench-mitogen/bin/python benchmarks/remote_import.py mitogen

The package imported is a copy of sortedcontainers (pure Python, from the index) in a
temporary directory on the caller's sys.path only; the remote is a fresh local
interpreter that cannot import it itself (ours: `-I -S`; mitogen: its `router.local()`
child, whose venv lacks the package). Per round, on a gateway/context already started
and answering (with the standard library modules the package needs imported: see
_STDLIB): the time of `import sortedcontainers` plus one call using it, on a first
and then on a second gateway/context, and how many requests reached the caller (ours:
the server's count; mitogen: modules its responder sent). Medians of the rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, Tuple

_WORK = "import sortedcontainers; s = sortedcontainers.SortedList([3, 1, 2]); r = list(s)"
# The standard library modules sortedcontainers imports, imported on both sides before
# the timed import: a mitogen child has most of them at its start, an isolated
# interpreter of ours has not; so both measure the package's transfer, compile and run.
_STDLIB = "bisect, collections.abc, functools, itertools, math, operator, reprlib, textwrap"


def _package_copy() -> str:
    """A directory holding a copy of sortedcontainers (found where this or the test
    environment has it, or given by SORTEDCONTAINERS_DIR)."""
    source = os.environ.get("SORTEDCONTAINERS_DIR")
    if source is None:
        import sortedcontainers

        source = os.path.dirname(sortedcontainers.__file__)
    target = tempfile.mkdtemp(prefix="remote-import-")
    shutil.copytree(source, os.path.join(target, "sortedcontainers"))
    return target


def ours(rounds: int) -> List[Tuple[float, float, int]]:
    from execnet_transport import XSpec, make_gateway

    results = []
    for round_ in range(rounds):
        times = []
        requests = 0
        for index in range(2):
            spec = f"popen//id=r{round_}g{index}//python={sys.executable} -I -S"
            gw = make_gateway(XSpec(spec + "//imports=sortedcontainers"))
            gw.remote_exec(f"import {_STDLIB}\nchannel.send(1)").receive()
            start = time.perf_counter()
            gw.remote_exec(_WORK + "\nchannel.send(r)").receive()
            times.append(time.perf_counter() - start)
            requests = gw._import_server.requests
            gw.exit()
            gw.join()
            gw._wait_process(5)
        results.append((times[0], times[1], requests))
    return results


def warm() -> int:
    exec(f"import {_STDLIB}")
    return 1


def work() -> List[int]:
    import sortedcontainers

    return list(sortedcontainers.SortedList([3, 1, 2]))


def mitogen(rounds: int) -> List[Tuple[float, float, int]]:
    import mitogen.master
    import mitogen.utils

    results = []
    broker = mitogen.master.Broker()
    router = mitogen.master.Router(broker)
    try:
        for _ in range(rounds):
            times = []
            sent = 0
            for _index in range(2):
                context = router.local()
                context.call(warm)
                before = router.responder.get_module_count
                start = time.perf_counter()
                context.call(work)
                times.append(time.perf_counter() - start)
                sent = router.responder.get_module_count - before
                context.shutdown(wait=True)
            results.append((times[0], times[1], sent))
    finally:
        broker.shutdown()
        broker.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=("ours", "mitogen"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    directory = _package_copy()
    for name in [name for name in sys.modules if name.startswith("sortedcontainers")]:
        del sys.modules[name]
    sys.path.insert(0, directory)
    try:
        sides: Dict[str, Callable[[int], List[Tuple[float, float, int]]]] = {
            "ours": ours,
            "mitogen": mitogen,
        }
        results = sides[args.side](args.rounds)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    first = statistics.median(r[0] for r in results) * 1000
    second = statistics.median(r[1] for r in results) * 1000
    print(
        f"{args.side}: import sortedcontainers remotely: first gateway {first:.1f} ms, "
        f"second {second:.1f} ms; requests served per gateway: {results[-1][2]}"
    )


if __name__ == "__main__":
    main()
