"""The gateway contract under a greenlet model, run by test_greenlet_models.py.

Run only in a fresh interpreter (one per model) so that eventlet's and gevent's hubs and
patches cannot reach the other tests: test_greenlet_models.py starts
``python -m pytest tests/execnet_channel/greenlet_contract.py`` with
EXECNET_TEST_GREENLET_MODEL set to "gevent" or "eventlet".
"""

from __future__ import annotations

import os
from typing import Any, Callable

import pytest
from gateway_contract import GatewayContract

MODEL = os.environ.get("EXECNET_TEST_GREENLET_MODEL", "")
if MODEL not in ("gevent", "eventlet"):
    pytest.skip("run by test_greenlet_models.py in its own interpreter", allow_module_level=True)


class TestGreenletPipePair(GatewayContract):
    @pytest.fixture
    def gw(self, make_pair: Callable[..., Any]) -> Any:
        return make_pair(MODEL, "pipe").gw


class TestGreenletSocketPair(GatewayContract):
    @pytest.fixture
    def gw(self, make_pair: Callable[..., Any]) -> Any:
        return make_pair(MODEL, "socket").gw


def test_tasks_are_greenlets(make_pair: Callable[..., Any]) -> None:
    pair = make_pair(MODEL, "pipe")
    channel = pair.gw.remote_exec(
        "import greenlet; channel.send(type(greenlet.getcurrent()).__module__)"
    )
    assert channel.receive(30)
    assert pair.gw.remote_status().execmodel == MODEL
