"""The gateway contract over in-process pairs: pipes and a socketpair, thread models."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from gateway_contract import GatewayContract


class TestPipePair(GatewayContract):
    @pytest.fixture(params=["thread", "main_thread_only"])
    def gw(self, request: pytest.FixtureRequest, make_pair: Callable[..., Any]) -> Any:
        return make_pair(request.param, "pipe").gw


class TestSocketPair(GatewayContract):
    @pytest.fixture
    def gw(self, make_pair: Callable[..., Any]) -> Any:
        return make_pair("thread", "socket").gw
