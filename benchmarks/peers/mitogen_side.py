"""The mitogen side of the peer comparison (an oracle: runs in its own venv only).

    python benchmarks/peers/mitogen_side.py --mode local --case roundtrip --repeat 3
    python benchmarks/peers/mitogen_side.py --mode fork --list

A worker is a mitogen context: `router.local()` starts a fresh interpreter and
bootstraps it over a pipe; `router.fork()` forks this very process (no interpreter
start, no bootstrap). Every case first makes a Broker and Router and one untimed
context, kept open while it runs (the same warm start the execnet side gets).

What each case does with mitogen's public API:
- start_*: `router.local()`/`fork()`, one `context.call()` answered, then
  `context.shutdown(wait=True)`;
- roundtrip: an echo function in the worker reading a `Receiver`; this side sends on
  the matching `Sender` and waits for each reply (mitogen's channel, like execnet's);
- bulk_send, small_send: the items go one way through a `Sender` to a `Receiver` in the
  worker, which answers its count when it has them all (sends do not wait: mitogen
  queues them, which shows in the peak RSS);
- workers_8: WORKERS contexts made one after another (mitogen starts them so),
  `call_async` on all, answers collected, all shut down at once.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from typing import Any, Callable, Dict, Iterator, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scenarios"))

import mitogen.core
import mitogen.master
from _harness import Measure, peak_rss_mib, run_cli
from _work import BULK_MIB, MANY_WORKERS, MIB, ROUNDTRIPS, SMALL_ITEMS, WORKERS

# ---------------------------------------------------------------- run in the worker


def getpid() -> int:
    return os.getpid()


def remote_peak_rss_mib() -> float:
    return peak_rss_mib()


@mitogen.core.takes_router
def echo(reply_to: Any, router: Any) -> int:
    """Send back every item that arrives, until this side closes its Sender."""
    inbox = mitogen.core.Receiver(router)
    reply_to.send(inbox.to_sender())
    count = 0
    for message in inbox:
        reply_to.send(message.unpickle())
        count += 1
    return count


@mitogen.core.takes_router
def sink(reply_to: Any, count: int, router: Any) -> Tuple[int, int]:
    """Receive `count` items; answer (items, bytes) once all of them arrived."""
    inbox = mitogen.core.Receiver(router)
    reply_to.send(inbox.to_sender())
    received = size = 0
    for _ in range(count):
        item = inbox.get().unpickle()
        received += 1
        size += len(item) if isinstance(item, bytes) else 0
    inbox.close()
    return received, size


# ---------------------------------------------------------------- run here


@contextlib.contextmanager
def warm_router(mode: str) -> Iterator[Tuple[Any, Callable[[], Any]]]:
    """(router, new_context) with one context already made and answering."""
    broker = mitogen.master.Broker()
    router = mitogen.master.Router(broker)
    new_context = router.local if mode == "local" else router.fork
    try:
        companion = new_context()
        companion.call(getpid)
        yield router, new_context
        companion.shutdown(wait=True)
    finally:
        broker.shutdown()
        broker.join()


def _start(mode: str, answered: bool) -> Measure:
    with warm_router(mode) as (_, new_context):
        start = time.perf_counter()
        context = new_context()
        assert isinstance(context.call(getpid), int)
        first = time.perf_counter()
        context.shutdown(wait=True)
        end = time.perf_counter()
    return Measure((first if answered else end) - start, "gateway")


def _roundtrip(mode: str) -> Measure:
    with warm_router(mode) as (router, new_context):
        context = new_context()
        replies = mitogen.core.Receiver(router)
        call = context.call_async(echo, replies.to_sender())
        to_worker = replies.get().unpickle()
        send, get = to_worker.send, replies.get
        for i in range(200):  # warm up both sides
            send(i)
            get().unpickle()
        start = time.perf_counter()
        for i in range(ROUNDTRIPS):
            send(i)
            get().unpickle()
        elapsed = time.perf_counter() - start
        to_worker.close()
        assert call.get().unpickle() == ROUNDTRIPS + 200
        context.shutdown(wait=True)
    return Measure(elapsed, "roundtrip", ROUNDTRIPS)


def _one_way(mode: str, items: Any, count: int, unit: str) -> Measure:
    with warm_router(mode) as (router, new_context):
        context = new_context()
        replies = mitogen.core.Receiver(router)
        call = context.call_async(sink, replies.to_sender(), count)
        to_worker = replies.get().unpickle()
        send = to_worker.send
        start = time.perf_counter()
        for item in items:
            send(item)
        received, size = call.get().unpickle()
        elapsed = time.perf_counter() - start
        assert received == count, received
        extra = {}
        if unit == "MiB":
            assert size == count * MIB, size
            extra = {"rss_local_mib": peak_rss_mib(),
                     "rss_remote_mib": context.call(remote_peak_rss_mib)}  # fmt: skip
        context.shutdown(wait=True)
    return Measure(elapsed, unit, count, extra)


def _bulk_send(mode: str) -> Measure:
    item = b"s" * MIB
    return _one_way(mode, (item for _ in range(BULK_MIB)), BULK_MIB, "MiB")


def _small_send(mode: str) -> Measure:
    items = ((i, "item", 1.5) for i in range(SMALL_ITEMS))
    return _one_way(mode, items, SMALL_ITEMS, "msg")


def _workers(mode: str, count: int = WORKERS) -> Measure:
    with warm_router(mode) as (_, new_context):
        start = time.perf_counter()
        contexts = [new_context() for _ in range(count)]
        made = time.perf_counter()
        calls = [context.call_async(getpid) for context in contexts]
        assert len({call.get().unpickle() for call in calls}) == count
        executed = time.perf_counter()
        for latch in [context.shutdown() for context in contexts]:
            latch.get()
        end = time.perf_counter()
    extra = {"make_s": made - start, "exec_s": executed - made, "terminate_s": end - executed}
    return Measure(end - start, "group", 1, extra)


def cases_for(mode: str) -> Dict[str, Callable[[], Measure]]:
    """The peer cases with workers made by `router.local()` or `router.fork()`."""
    return {
        "start_first_answer": lambda: _start(mode, answered=True),
        "start_to_exit": lambda: _start(mode, answered=False),
        "roundtrip": lambda: _roundtrip(mode),
        "bulk_send": lambda: _bulk_send(mode),
        "small_send": lambda: _small_send(mode),
        "workers_8": lambda: _workers(mode),
        "workers_32": lambda: _workers(mode, MANY_WORKERS),
    }


def main() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--mode", choices=("local", "fork"), default="local")
    args, rest = parser.parse_known_args()
    run_cli(cases_for(args.mode), rest)


if __name__ == "__main__":
    main()
