"""Groups: make 8 or 32 popen gateways with one Group, run a task on all, terminate.

Reported per run (seconds, lower is better): the whole life of a group the way
pytest-xdist uses one (`-n 8`, `-n 32`). `extra` splits it into `make_s` (the gateways
bootstrapped: ours starts them side by side, execnet 2.1.2 one after another),
`exec_s` (one remote_exec on every gateway, answers collected) and `terminate_s`.
"""

from __future__ import annotations

import time

from _harness import Measure, quick, run_cli

import execnet


def group_life(count: int, spec: str = "popen") -> Measure:
    """A Group of `count` gateways made with `spec`: made, one remote_exec, terminated."""
    start = time.perf_counter()
    group = execnet.Group([spec] * count)
    made = time.perf_counter()
    answers = group.remote_exec("import os; channel.send(os.getpid())").receive_each()
    assert len(set(answers)) == count
    executed = time.perf_counter()
    group.terminate(10)
    end = time.perf_counter()
    return Measure(
        end - start,
        "group",
        1,
        {"make_s": made - start, "exec_s": executed - made, "terminate_s": end - executed},
    )


def popen_8() -> Measure:
    return group_life(8)


def popen_32() -> Measure:
    return group_life(16 if quick() else 32)


CASES = {"popen_8": popen_8, "popen_32": popen_32}

if __name__ == "__main__":
    run_cli(CASES)
