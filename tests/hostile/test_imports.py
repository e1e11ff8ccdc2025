"""Remote import on demand against hostile peers, both ways.

A remote may ask for any name and any path, as often as it likes: the opener serves only
allowed top-level packages, only files inside the package found, only regular files,
and bounds what waits. An opener may answer anything: the remote checks names, kinds,
sizes and the compressed bytes before it uses them.
"""

from __future__ import annotations

import os
import sys
import textwrap
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest
from syspath import on_sys_path

from execnet_channel import RemoteError
from execnet_transport import Gateway, XSpec, make_gateway

pytestmark = pytest.mark.timeout(120)
ISOLATED = f"python={sys.executable} -I -S"


@pytest.fixture
def gateway() -> Iterator[Callable[[str], Gateway]]:
    """gateway(spec) -> a Gateway that is ended (and its process reaped) after the test."""
    made: List[Gateway] = []

    def make(spec: str) -> Gateway:
        made.append(make_gateway(XSpec(spec)))
        return made[-1]

    yield make
    for gw in made:
        gw.exit()
        gw.join(10)
        if gw.wait_child(10) is None:
            gw.kill_child()
            gw.wait_child(10)


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "caller-only"
    package = root / "hpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("X = 1\n")
    (package / "data.txt").write_text("data\n")
    (root / "hsecret").mkdir()
    (root / "hsecret" / "__init__.py").write_text("TOKEN = 'secret'\n")
    (tmp_path / "outside.txt").write_text("outside the package\n")
    os.symlink(tmp_path / "outside.txt", package / "link.txt")
    os.symlink(tmp_path / "outside.txt", package / "evil.py")
    os.symlink(tmp_path, package / "up")
    os.mkfifo(package / "fifo.txt")
    with on_sys_path(root):
        yield root


ASK = """
gateway = channel.gateway
answers = []
for request in channel.receive():
    try:
        answers.append(gateway._import_request(request))
    except Exception as exc:
        answers.append(repr(exc))
channel.send(answers)
"""


def _ask(gw: Gateway, *requests: Any) -> list:  # type: ignore[type-arg]
    ch = gw.remote_exec(ASK)
    ch.send(list(requests))
    return ch.receive(60)  # type: ignore[no-any-return]


def _error(answer: Any) -> str:
    assert isinstance(answer, dict)
    assert "error" in answer
    cls, message = answer["error"]
    return f"{cls}: {message}"


def test_the_opener_serves_only_what_it_allowed(
    tree: Path, gateway: Callable[[str], Gateway]
) -> None:
    gw = gateway(f"popen//{ISOLATED}//id=h0//imports=hpkg")
    try:
        answers = _ask(
            gw,
            ("module", "hsecret"),
            ("module", "hpkg/../hsecret"),
            ("module", "..hsecret"),
            ("module", "hpkg." + "x" * 600),
            ("module", "hpkg.evil"),
            ("data", "hsecret/__init__.py"),
            ("data", "hpkg/../hsecret/__init__.py"),
            ("data", "/etc/passwd"),
            ("data", "hpkg//etc/passwd"),
            ("data", "hpkg/link.txt"),
            ("data", "hpkg/up/outside.txt"),
            ("data", "hpkg/fifo.txt"),
            ("list", "hpkg/up"),
            ("list", "hpkg/.."),
            ("module",),
            ("exec", "hpkg"),
            ("data", "hpkg/data.txt"),
        )
    finally:
        gw.exit()
    texts = [_error(answer) for answer in answers[:-1]]
    assert texts[0].startswith("ImportError: module 'hsecret' is not allowed")
    assert all("not a module name" in text for text in texts[1:4]), texts[1:4]
    assert "outside the allowed package" in texts[4]
    assert texts[5].startswith("PermissionError: 'hsecret/__init__.py' is not in an allowed")
    assert all("not a path inside a package" in text for text in texts[6:9]), texts[6:9]
    assert all("leads out of package 'hpkg'" in text for text in texts[9:11]), texts[9:11]
    assert "not a regular file" in texts[11]
    assert "leads out of package 'hpkg'" in texts[12]
    assert "not a path inside a package" in texts[13]
    assert "not an import request" in texts[14]
    assert "unknown import request 'exec'" in texts[15]
    last = answers[-1]
    assert zlib.decompress(last["data"]) == b"data\n"  # and the gateway still serves


def test_a_flood_of_requests_is_bounded_and_the_gateway_lives_on(
    tree: Path, gateway: Callable[[str], Gateway]
) -> None:
    gw = gateway(f"popen//{ISOLATED}//id=h1//imports=hpkg")
    try:
        ch = gw.remote_exec(
            """
            gateway = channel.gateway
            channels = []
            for _ in range(500):  # sent at once, nobody waits in between
                request = gateway.newchannel()
                gateway._send(17, request.id, gateway._dumps(("module", "hpkg")))
                channels.append(request)
            answers = [request.receive(60) for request in channels]
            refused = sum("more than" in str(a.get("error")) for a in answers)
            served = sum("modules" in a for a in answers)
            channel.send((refused, served))
            """
        )
        refused, served = ch.receive(60)
        assert refused + served == 500
        assert served >= 64
        assert gw.remote_exec("channel.send(1)").receive(30) == 1
    finally:
        gw.exit()


def test_frames_in_the_wrong_direction_end_the_gateway(
    tree: Path, gateway: Callable[[str], Gateway]
) -> None:
    gw = gateway(f"popen//{ISOLATED}//id=h2")
    try:
        ch = gw.remote_exec(
            "channel.gateway._send(16, 0, channel.gateway._dumps(('os',)))\nchannel.receive()"
        )
        with pytest.raises(EOFError, match=r"IMPORT_ALLOW frame .* imports are allowed by"):
            ch.receive(30)
    finally:
        gw.exit()


class _LyingGateway(Gateway):
    """An opener whose answers are crafted (set ``answer`` before the remote asks)."""

    answer: Any = None

    def _on_import_request(self, channel_id: int, request: Any) -> None:
        self._answer_import(channel_id, self.answer)


def _lying(answer: Dict[str, Any]) -> Callable[..., Any]:
    def make(io: Any, spec: XSpec, **kwargs: Any) -> _LyingGateway:
        gateway = _LyingGateway(io, spec, **kwargs)
        gateway.answer = answer
        return gateway

    return make


def _source(text: str) -> bytes:
    return textwrap.dedent(text).encode()


BOMB = zlib.compress(b"#" * (50 << 20), 9)  # 50 MiB of comment in ~50 KiB


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"modules": [("lied", 0, "lied.py", 5 << 20)], "data": BOMB}, "does not hold"),
        ({"modules": [("lied", 0, "lied.py", 1 << 40)], "data": BOMB}, "bytes of source"),
        ({"modules": [("other", 0, "other.py", 2)], "data": zlib.compress(b"x=1")}, "allowed"),
        ({"modules": [("lied", 0, "../lied.py", 3)], "data": zlib.compress(b"x=1")}, "path"),
        ({"modules": [("lied", 7, "lied.py", 3)], "data": zlib.compress(b"x=1")}, "kind"),
        ({"modules": [("lied", 0, "lied.py", 3)], "data": b"not zlib"}, "compressed"),
        ({"modules": "lied", "data": b""}, "no list of modules"),
        ({"error": ("SystemExit", "bye")}, "ImportError: bye"),
        ("not a dict", "bad answer"),
    ],
)
def test_the_remote_checks_what_the_opener_sends(
    answer: Dict[str, Any],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    gateway: Callable[[str], Gateway],
) -> None:
    from execnet_transport import _connect

    monkeypatch.setattr(_connect, "Gateway", _lying(answer))
    gw = gateway(f"popen//{ISOLATED}//id=h3//imports=lied")
    try:
        ch = gw.remote_exec(
            """
            try:
                import lied
            except BaseException as exc:
                channel.send(f"{type(exc).__name__}: {exc}")
            """
        )
        text = ch.receive(60)
    finally:
        gw.exit()
    assert expected in text, text
    if expected != "ImportError: bye":
        assert text.startswith("ImportError: bad answer for "), text
        assert "'lied'" in text


def test_a_name_the_opener_did_not_allow_is_not_even_asked_for(
    tree: Path, gateway: Callable[[str], Gateway]
) -> None:
    gw = gateway(f"popen//{ISOLATED}//id=h4//imports=hpkg")
    try:
        ch = gw.remote_exec("import hsecret")
        with pytest.raises(RemoteError, match="No module named 'hsecret'"):
            ch.receive(30)
        assert gw._import_server.requests == 0
    finally:
        gw.exit()
