"""Bootstrapping ahead: specs announced with allocate_id start together (pytest-xdist's way)."""

from __future__ import annotations

from pathlib import Path

import pytest

from execnet_group import Group
from execnet_transport import XSpec


def _announce(group: Group, texts: list[str]) -> list[XSpec]:
    if group.prefetch is None:
        group.prefetch = True
    specs = [XSpec(text) for text in texts]
    for spec in specs:
        group.allocate_id(spec)
    return specs


def test_xdist_way_starts_every_worker_at_once(group: Group, barrier) -> None:  # type: ignore[no-untyped-def]
    python, gave_up = barrier(4)
    specs = _announce(group, [f"execmodel=main_thread_only//popen//python={python}"] * 4)
    gateways = [group.makegateway(spec) for spec in specs]  # one after another
    assert not gave_up.exists(), "the announced specs were bootstrapped one after another"
    assert [gw.id for gw in gateways] == ["gw0", "gw1", "gw2", "gw3"]
    assert list(group) == gateways
    assert [gw.spec for gw in gateways] == specs
    pids = group.remote_exec("import os; channel.send(os.getpid())").receive_each()
    assert len(set(pids)) == 4


def test_a_spec_changed_after_the_start_is_made_anew(group: Group, tmp_path: Path, procs) -> None:  # type: ignore[no-untyped-def]
    earlier = procs.children()  # of earlier tests, possibly still ending
    first, second = _announce(group, ["popen", "popen"])
    group.makegateway(first)  # starts `second` ahead
    before = procs.children() - earlier
    second.chdir = str(tmp_path / "elsewhere")  # as pytest-xdist does for non-popen specs
    gw = group.makegateway(second)
    assert gw.remote_exec("import os; channel.send(os.getcwd())").receive(30) == second.chdir
    assert [g.id for g in group] == ["gw0", "gw1"]
    group.terminate(5)
    assert not [pid for pid in before | (procs.children() - earlier) if procs.alive(pid)]


def test_unclaimed_starts_are_ended_by_terminate(procs) -> None:  # type: ignore[no-untyped-def]
    earlier = procs.children()  # of earlier tests, possibly still ending
    group = Group()
    specs = _announce(group, ["popen", "popen", "popen"])
    group.makegateway(specs[0])
    report = group.terminate(5)
    assert report.exited[0] == "gw0"
    assert sorted(report.exited) == ["gw0", "gw1", "gw2"]
    assert not [pid for pid in procs.children() - earlier if procs.alive(pid)]
    assert group.terminate(5).gateways == ()


def test_makegateways_claims_what_was_started_ahead(group: Group) -> None:
    specs = _announce(group, ["popen"] * 3)
    group.makegateway(specs[0])
    assert [gw.id for gw in group.makegateways(specs[1:])] == ["gw1", "gw2"]


def test_an_announced_id_is_not_given_twice(group: Group) -> None:
    specs = _announce(group, ["popen", "popen"])
    group.makegateway(specs[0])
    with pytest.raises(ValueError, match="'gw1'"):
        group.makegateway("popen//id=gw1")
    assert group.makegateway(specs[1]).id == "gw1"


def test_a_start_that_fails_ahead_fails_in_the_caller(group: Group) -> None:
    specs = _announce(group, ["popen", "popen//python=not-a-python-here"])
    group.makegateway(specs[0])
    with pytest.raises(Exception, match="not-a-python-here"):
        group.makegateway(specs[1])
    assert [gw.id for gw in group] == ["gw0"]


def test_off_by_default(procs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("EXECNET_PREFETCH", raising=False)
    group = Group()
    try:
        before = procs.children()
        specs = [XSpec("popen") for _ in range(3)]
        for spec in specs:
            group.allocate_id(spec)
        group.makegateway(specs[0])
        assert len(procs.children() - before) == 1
    finally:
        group.terminate(5)


@pytest.mark.parametrize(("value", "on"), [("1", True), ("0", False), ("", False)])
def test_environment_variable(value: str, on: bool, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EXECNET_PREFETCH", value)
    group = Group()
    try:
        specs = [XSpec("popen") for _ in range(2)]
        for spec in specs:
            group.allocate_id(spec)
        group.makegateway(specs[0])
        assert bool(group._prefetched) is on
    finally:
        group.terminate(5)
    group.prefetch = False
    assert group._prefetching() is False


def test_allocate_id_alone_starts_nothing(procs) -> None:  # type: ignore[no-untyped-def]
    group = Group()
    before = procs.children()
    _announce(group, ["popen", "popen"])
    assert not procs.children() - before  # nothing new (earlier children may end meanwhile)
    assert group.terminate(1).gateways == ()
