"""The popen tests again, with every popen gateway forked from a fork server.

EXECNET_FORK=1 turns each popen spec of test_popen into popen//fork: a forked child
must behave as a fresh one in every respect those tests check (options, interpreters,
noise, errors, post-mortems). Left out: what only a plain start has (the bundle's code
compiled by a child of another interpreter and kept for the next).
"""

from __future__ import annotations

from typing import Iterator

import pytest
from rerun import collect_again

from execnet_transport import _forkserver

PLAIN_ONLY = {"test_compiled_bundle_is_reused_for_the_same_interpreter"}
globals().update(collect_again(__file__, "test_popen", skip=PLAIN_ONLY))


@pytest.fixture(autouse=True)
def forked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("EXECNET_FORK", "1")
    yield
    # makegw's teardown (after this one's) ended every gateway; their server went too
    assert _forkserver.running_servers() == {}
