"""The execnet side of the peer comparison: execnet 2.1.2 or ours, over a gateway spec.

    python benchmarks/peers/execnet_side.py --spec popen --case roundtrip --repeat 3
    python benchmarks/peers/execnet_side.py --spec popen//fork --list

Runs the peer cases (`_work.py`) through the public `execnet` API, reusing the
scenarios' own code (roundtrip.py, bulk.py, small.py, groups.py) with the spec given.
Each case first makes one untimed gateway with the spec, kept open while it runs: it
warms the imports up and, for a spec that starts a fork server, keeps that server up,
as it is for every worker after the first.

A spec key beyond the documented ones is trusted only when its effect can be checked on
that gateway (`PROBES`): an execnet that ignores the key would otherwise be measured as
plain popen under another name. When the check fails, or the key has no check, every
case skips and says why (the runner shows the column as n/a).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Callable, Dict, Iterator, List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scenarios"))

import bulk
import groups
import roundtrip
import small
from _harness import Measure, Skip, gateway_cycle_times, run_cli
from _work import BULK_MIB, MANY_WORKERS, ROUNDTRIPS, SMALL_ITEMS, WORKERS

import execnet

# The keys API.md documents, which execnet 2.1.2 and ours both honour.
DOCUMENTED_KEYS = frozenset(
    ("popen", "ssh", "socket", "vagrant_ssh", "via", "id", "python", "chdir", "nice",
     "execmodel", "dont_write_bytecode", "ssh_config", "installvia")
)  # fmt: skip


def _forked_from_a_server(gateway: execnet.Gateway) -> Optional[str]:
    """Why `gateway` is not a fork server's child, or None when it is."""
    channel = gateway.remote_exec("import os; channel.send(os.getppid())")
    parent = channel.receive()
    channel.waitclose()
    if parent == os.getpid():
        return "the gateway is a plain popen child of this process, not forked from a server"
    return None


# spec key -> a check on a gateway made with it: None when the key took effect, else why not
PROBES: Dict[str, Callable[[execnet.Gateway], Optional[str]]] = {
    "fork": _forked_from_a_server,
}


def spec_keys(spec: str) -> List[str]:
    """The keys of a spec string (`env:NAME=value` parts are not keys)."""
    return [p.partition("=")[0] for p in spec.split("//") if p and not p.startswith("env:")]


@contextlib.contextmanager
def checked_gateway(spec: str) -> Iterator[execnet.Gateway]:
    """An untimed gateway made with `spec`, open for the block, once every key of the spec
    is known to take effect under the installed execnet (else Skip, saying why)."""
    unknown = [k for k in spec_keys(spec) if k not in DOCUMENTED_KEYS and k not in PROBES]
    if unknown:
        raise Skip(f"spec {spec!r}: no check that execnet honours the key(s) {unknown}")
    try:
        gateway = execnet.makegateway(spec)
    except ValueError as exc:  # ours refuses a key no transport reads (issue 15)
        refused = [key for key in spec_keys(spec) if repr(key) in str(exc)]
        if not refused:
            raise
        version = getattr(execnet, "__version__", "?")
        raise Skip(f"spec key {refused[0]!r} not honoured by execnet {version}: {exc}") from None
    try:
        for key in spec_keys(spec):
            why = PROBES[key](gateway) if key in PROBES else None
            if why:
                version = getattr(execnet, "__version__", "?")
                raise Skip(f"spec key {key!r} not honoured by execnet {version}: {why}")
        yield gateway
    finally:
        gateway.exit()
        gateway.join()


def cases_for(spec: str) -> Dict[str, Callable[[], Measure]]:
    """The peer cases over gateways made with `spec`."""

    def start_first_answer() -> Measure:
        with checked_gateway(spec):
            return Measure(gateway_cycle_times(spec)[0], "gateway")

    def start_to_exit() -> Measure:
        with checked_gateway(spec):
            return Measure(gateway_cycle_times(spec)[1], "gateway")

    def roundtrips() -> Measure:
        with checked_gateway(spec):
            return roundtrip.roundtrip(spec, ROUNDTRIPS)

    def bulk_send() -> Measure:
        with checked_gateway(spec):
            return bulk.send(spec, BULK_MIB)

    def small_send() -> Measure:
        with checked_gateway(spec):
            return small.send(spec, SMALL_ITEMS)

    def workers() -> Measure:
        with checked_gateway(spec):
            return groups.group_life(WORKERS, spec)

    def many_workers() -> Measure:
        with checked_gateway(spec):
            return groups.group_life(MANY_WORKERS, spec)

    return {
        "start_first_answer": start_first_answer,
        "start_to_exit": start_to_exit,
        "roundtrip": roundtrips,
        "bulk_send": bulk_send,
        "small_send": small_send,
        "workers_8": workers,
        "workers_32": many_workers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--spec", default="popen", help="the gateway spec (default popen)")
    args, rest = parser.parse_known_args()
    run_cli(cases_for(args.spec), rest)


if __name__ == "__main__":
    main()
