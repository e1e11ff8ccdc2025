"""How much work each peer case does, the same for every side (execnet, mitogen, rpyc).

The drivers in this folder (`execnet_side.py`, `mitogen_side.py`, `rpyc_side.py`) each
define these cases through their own library's public API and end with `run_cli`
(benchmarks/scenarios/_harness.py; each driver puts that folder on `sys.path` before
its other imports), so benchmarks/peer_runs.py runs them all alike:

- start_first_answer: a new worker, from the request until its answer to one call;
- start_to_exit: the same worker's whole life, through its shutdown;
- roundtrip: ROUNDTRIPS echoes of a small int (µs per round trip);
- bulk_send: BULK_MIB items of 1 MiB `bytes` to the worker, until it has them all;
- small_send: SMALL_ITEMS `(int, str, float)` tuples to the worker, until it has them all;
- workers_8: WORKERS workers started, one call answered by each, all shut down;
- workers_32: the same with MANY_WORKERS (32) workers.

Under `run.py --quick` the counts shrink; rates stay comparable.
"""

from __future__ import annotations

from _harness import quick  # the drivers put benchmarks/scenarios on sys.path first

MIB = 1024 * 1024
ROUNDTRIPS = 2_000 if quick() else 20_000
BULK_MIB = 32 if quick() else 256
SMALL_ITEMS = 10_000 if quick() else 100_000
WORKERS = 8
MANY_WORKERS = 32
