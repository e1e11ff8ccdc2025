"""RSync of a source tree to a popen gateway (the execnet-rsync issue's figures).

The tree: 2,000 files totalling 50 MB in 40 directories of 7 subdirectories each
(sizes vary around 25 kB, fixed seed). The gateway is up and the tree on disk before the
clock starts; each measured run is one `RSync.send()`.

- `full`: into an empty directory.
- `unchanged`: again into a copy that is already up to date (the listing costs alone).
- `changed10`: ten files rewritten just before (five with a new size, five with the same
  size; fresh mtimes, so the sender reads them twice: see execnet-rsync's "racy" files).
- `big_1gib`: one 1 GiB file into an empty directory (64 MiB under quick()), with the
  peak RSS of both processes in `extra`: streaming must keep both flat.

The trees live in RAM (/dev/shm) when it exists, so the figures measure the two
implementations and not the disk: on this project's shared VM, creating 2,000 files in
fresh directories on the ext4 disk costs both implementations 0.6-0.7 s of kernel time,
with a spread larger than the difference being measured. Set EXECNET_BENCH_RSYNC_DIR to
measure elsewhere (e.g. /tmp, for the disk-bound figures). `os.sync()` runs before each
measured send (outside the time), so the setup's writeback does not land in the run.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from typing import Callable, Optional, Tuple

from _harness import Measure, peak_rss_mib, quick, remote_peak_rss_mib, run_cli

import execnet

MIB = 1024 * 1024
TOP_DIRS, SUB_DIRS, FILES, TOTAL = 40, 7, 2000, 50_000_000


def _file_path(root: str, n: int) -> str:
    i, j = divmod(n % (TOP_DIRS * SUB_DIRS), SUB_DIRS)
    return os.path.join(root, f"d{i:02}", f"s{j}", f"f{n:04}.dat")


def _make_tree(root: str) -> None:
    rng = random.Random(2000)
    weights = [rng.uniform(0.2, 1.8) for _ in range(FILES)]
    scale = TOTAL / sum(weights)
    block = rng.randbytes(64 * 1024) if hasattr(rng, "randbytes") else os.urandom(64 * 1024)
    for n, weight in enumerate(weights):
        size = int(weight * scale)
        data = (block * (size // len(block) + 1))[:size]
        path = _file_path(root, n)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"%d" % n + data[8:])


def _base() -> str:
    where = os.environ.get("EXECNET_BENCH_RSYNC_DIR")
    if where is None and os.access("/dev/shm", os.W_OK):
        where = "/dev/shm"
    return tempfile.mkdtemp(prefix="bench-rsync-", dir=where)


def _setup() -> Tuple[str, str, execnet.Gateway]:
    base = _base()
    src = os.path.join(base, "src")
    os.mkdir(src)
    _make_tree(src)
    return base, src, execnet.makegateway("popen")


def _send(src: str, gateway: execnet.Gateway, dest: str) -> float:
    rsync = execnet.RSync(src, verbose=False)
    rsync.add_target(gateway, dest)
    # The setup's writes (and earlier runs' deletes) go to disk now, not during the
    # measured run: on a shared machine writeback otherwise dominates the figures.
    os.sync()
    start = time.perf_counter()
    rsync.send()
    return time.perf_counter() - start


def _teardown(base: str, gateway: execnet.Gateway) -> None:
    gateway.exit()
    gateway.join()
    shutil.rmtree(base, ignore_errors=True)


def _run(first_sync: bool, change: Optional[Callable[[str], None]] = None) -> Measure:
    """Time one send() into base/dest, after an untimed sync and a change if asked."""
    base, src, gateway = _setup()
    try:
        dest = os.path.join(base, "dest")
        if first_sync:
            _send(src, gateway, dest)
        if change is not None:
            change(src)
        return Measure(_send(src, gateway, dest))
    finally:
        _teardown(base, gateway)


def _change_ten_files(src: str) -> None:
    for n in range(10):  # as an editor saves them: new content, a fresh mtime
        path = _file_path(src, n * 97)
        with open(path, "rb") as f:
            data = f.read()
        data = data[:-1] if n % 2 else data[::-1]  # odd: new size; even: same size
        with open(path, "wb") as f:
            f.write(data)


def full() -> Measure:
    return _run(first_sync=False)


def unchanged() -> Measure:
    return _run(first_sync=True)


def changed10() -> Measure:
    return _run(first_sync=True, change=_change_ten_files)


def big_1gib() -> Measure:
    size_mib = 64 if quick() else 1024
    base = _base()
    src = os.path.join(base, "src")
    os.mkdir(src)
    piece = bytes(range(256)) * 4096
    with open(os.path.join(src, "big"), "wb") as f:
        for n in range(size_mib):
            f.write(b"%08d" % n + piece[8:])
    gateway = execnet.makegateway("popen")
    try:
        elapsed = _send(src, gateway, os.path.join(base, "dest"))
        assert os.path.getsize(os.path.join(base, "dest", "big")) == size_mib * MIB
        extra = {"rss_local_mib": peak_rss_mib(), "rss_remote_mib": remote_peak_rss_mib(gateway)}
        return Measure(elapsed, "MiB", float(size_mib), extra)
    finally:
        _teardown(base, gateway)


CASES = {"full": full, "unchanged": unchanged, "changed10": changed10, "big_1gib": big_1gib}

if __name__ == "__main__":
    run_cli(CASES)
