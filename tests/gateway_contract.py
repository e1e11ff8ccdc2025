"""The behaviour every way of reaching an interpreter must have (one suite, many transports).

Subclass ``GatewayContract`` in a test module and provide a fixture named ``gw`` that
yields a ready gateway offering the BaseGateway API (remote_exec, newchannel,
remote_status, _remote_info, reconfigure, exit, join, hasreceiver) and shuts it down
afterwards::

    class TestPopen(GatewayContract):
        @pytest.fixture
        def gw(self):
            gateway = make_popen_gateway()
            yield gateway
            gateway.exit()

The suite uses no threads of its own, so it also runs under the greenlet models. The
functions below whose first parameter is ``channel`` are sent to the remote side.
"""

from __future__ import annotations

import gc
import importlib.util
import textwrap
from pathlib import Path
from typing import Any, List

import pytest

from execnet_channel import DEFAULT_MAX_FRAME, Channel, RemoteError
from execnet_channel._frames import CHANNEL_DATA, HEADER_SIZE, RECONFIGURE, encode_header
from execnet_serial import DumpError

TIMEOUT = 30.0

VALUES: List[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**31 - 1,
    -(2**31),
    2**100,
    -(2**70),
    1.5,
    -0.0,
    complex(1, -2),
    "",
    "text ✓",
    b"",
    b"\x00\xffbytes",
    [],
    [1, [2, "three"]],
    (),
    (1, (2.5, None)),
    {},
    {"a": 1, 2: [3], (4, 5): {"nested": b"x"}},
    {1, "two"},
    frozenset({3, 4}),
    [None] * 1000,
    b"x" * (1024 * 1024 + 3),
]


# -- code that travels (module level, builtins only) ------------------------------------


def echo(channel):  # type: ignore[no-untyped-def]
    for item in channel:
        channel.send(item)


def double(channel, factor=2):  # type: ignore[no-untyped-def]
    channel.send(channel.receive() * factor)


def fail_here(channel):  # type: ignore[no-untyped-def]
    raise ValueError("failing on purpose")  # FAIL-LINE


def send_on(channel, out):  # type: ignore[no-untyped-def]
    out.send(("via kwargs", channel.receive()))
    channel.send(type(out).__name__)


def report_eof(channel, result):  # type: ignore[no-untyped-def]
    try:
        channel.receive()
    except EOFError:
        result.send("eof")
    else:
        result.send("item")


def wait_then_send(channel):  # type: ignore[no-untyped-def]
    channel.send(channel.receive())


def try_close(channel):  # type: ignore[no-untyped-def]
    try:
        channel.close()
    except OSError as exc:
        channel.send(str(exc))


def read_lines(channel):  # type: ignore[no-untyped-def]
    f = channel.makefile("r")
    channel.send([f.readline(), f.readline(), f.read(3), f.read(5)])


def remote_makes_channel(channel):  # type: ignore[no-untyped-def]
    new = channel.gateway.newchannel()
    new.send("written before the channel was sent")
    channel.send(new)
    new.send(new.id)


def with_decorator_free_helper(channel):  # type: ignore[no-untyped-def]
    def helper(x):  # type: ignore[no-untyped-def]
        return x + 1

    channel.send(helper(channel.receive()))


def write_raw(channel, data):  # type: ignore[no-untyped-def]
    # a remote that breaks the protocol: bytes straight into its own stream
    gateway = channel.gateway
    with gateway._writelock:
        gateway._io.write(data)


# -- functions remote_exec must refuse ---------------------------------------------------


def no_channel_param(other):  # type: ignore[no-untyped-def]
    pass


def uses_a_global(channel):  # type: ignore[no-untyped-def]
    channel.send(TIMEOUT)


def _closure_maker() -> Any:
    x = 1

    def closure(channel):  # type: ignore[no-untyped-def]
        channel.send(x)

    return closure


def _line_of(marker: str) -> int:
    for number, line in enumerate(Path(__file__).read_text().splitlines(), 1):
        if marker in line and "def _line_of" not in line and "_line_of(" not in line:
            return number
    raise AssertionError(marker)


class GatewayContract:
    """Behaviour tests over a fixture ``gw`` (see the module docstring)."""

    # -- remote_exec -------------------------------------------------------------------

    def test_exec_string(self, gw: Any) -> None:
        channel = gw.remote_exec("channel.send(channel.receive() * 2)")
        channel.send(21)
        assert channel.receive(TIMEOUT) == 42
        channel.waitclose(TIMEOUT)

    def test_exec_string_is_dedented(self, gw: Any) -> None:
        channel = gw.remote_exec(
            """
            x = 1
            if x:
                channel.send("dedented")
            """
        )
        assert channel.receive(TIMEOUT) == "dedented"

    def test_exec_globals(self, gw: Any) -> None:
        channel = gw.remote_exec("channel.send((__name__, 'channel' in globals()))")
        assert channel.receive(TIMEOUT) == ("__channelexec__", True)

    def test_exec_function_with_kwargs(self, gw: Any) -> None:
        channel = gw.remote_exec(double, factor=3)
        channel.send(5)
        assert channel.receive(TIMEOUT) == 15
        channel = gw.remote_exec(double)
        channel.send("ab")
        assert channel.receive(TIMEOUT) == "abab"

    def test_exec_function_with_nested_def(self, gw: Any) -> None:
        channel = gw.remote_exec(with_decorator_free_helper)
        channel.send(1)
        assert channel.receive(TIMEOUT) == 2

    def test_exec_module(self, gw: Any, tmp_path: Path) -> None:
        path = tmp_path / "contract_remote_module.py"
        path.write_text(
            textwrap.dedent(
                """
                def triple(x):
                    return x * 3

                if __name__ == "__channelexec__":
                    channel.send(triple(channel.receive()))
                """
            )
        )
        spec = importlib.util.spec_from_file_location("contract_remote_module", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        channel = gw.remote_exec(module)
        channel.send(7)
        assert channel.receive(TIMEOUT) == 21

    def test_exec_refuses_bad_functions_before_sending(self, gw: Any) -> None:
        with pytest.raises(ValueError, match="lambda"):
            gw.remote_exec(lambda channel: None)
        with pytest.raises(ValueError, match="closure"):
            gw.remote_exec(_closure_maker())
        with pytest.raises(ValueError, match="channel"):
            gw.remote_exec(no_channel_param)
        with pytest.raises(ValueError, match="TIMEOUT"):
            gw.remote_exec(uses_a_global)
        with pytest.raises(TypeError):
            gw.remote_exec("channel.send(1)", x=1)
        with pytest.raises(TypeError):
            gw.remote_exec(42)
        # nothing was sent: the gateway still works
        assert gw.remote_exec("channel.send(1)").receive(TIMEOUT) == 1

    def test_remote_error_names_file_and_line(self, gw: Any) -> None:
        channel = gw.remote_exec(fail_here)
        with pytest.raises(RemoteError) as info:
            channel.receive(TIMEOUT)
        text = str(info.value)
        assert "ValueError: failing on purpose" in text
        assert f'File "{Path(__file__).resolve()}", line {_line_of("FAIL-LINE")}' in text or (
            f'File "{__file__}", line {_line_of("FAIL-LINE")}' in text
        )
        assert "fail_here" in text
        assert channel._getremoteerror() is info.value

    def test_remote_error_of_a_string_shows_its_line(self, gw: Any) -> None:
        channel = gw.remote_exec("x = 1\nraise KeyError('from a string')\n")
        with pytest.raises(Channel.RemoteError) as info:
            channel.waitclose(TIMEOUT)
        text = str(info.value)
        assert "line 2" in text
        assert "raise KeyError('from a string')" in text
        assert "KeyError" in text

    def test_after_a_failing_task_the_next_one_works(self, gw: Any) -> None:
        with pytest.raises(RemoteError):
            gw.remote_exec(fail_here).waitclose(TIMEOUT)
        assert gw.remote_exec("channel.send('still serving')").receive(TIMEOUT) == ("still serving")

    def test_explicit_close_inside_remote_exec_is_refused(self, gw: Any) -> None:
        channel = gw.remote_exec(try_close)
        assert "within remote_exec" in channel.receive(TIMEOUT)

    # -- values ------------------------------------------------------------------------

    def test_round_trip_of_values(self, gw: Any) -> None:
        channel = gw.remote_exec(echo)
        for value in VALUES:
            channel.send(value)
            back = channel.receive(TIMEOUT)
            assert back == value, value
            assert type(back) is type(value), value
        channel.close()
        channel.waitclose(TIMEOUT)

    def test_unserializable_item_raises_in_the_sender(self, gw: Any) -> None:
        channel = gw.remote_exec(echo)
        with pytest.raises(DumpError):
            channel.send(object())
        channel.send("fine")
        assert channel.receive(TIMEOUT) == "fine"
        channel.close()

    def test_channel_sent_through_a_channel_arrives_as_the_same(self, gw: Any) -> None:
        channel = gw.remote_exec(echo)
        mine = gw.newchannel()
        assert mine.id % 2 == 1
        channel.send(mine)
        assert channel.receive(TIMEOUT) is mine
        channel.send([mine, {"c": mine}])
        back = channel.receive(TIMEOUT)
        assert back[0] is mine
        assert back[1]["c"] is mine
        channel.close()

    def test_channel_made_remotely(self, gw: Any) -> None:
        channel = gw.remote_exec(remote_makes_channel)
        new = channel.receive(TIMEOUT)
        assert isinstance(new, Channel)
        assert new.id % 2 == 0
        assert new.receive(TIMEOUT) == "written before the channel was sent"
        assert new.receive(TIMEOUT) == new.id

    def test_channel_as_remote_exec_kwarg(self, gw: Any) -> None:
        out = gw.newchannel()
        channel = gw.remote_exec(send_on, out=out)
        channel.send("hello")
        assert out.receive(TIMEOUT) == ("via kwargs", "hello")
        assert channel.receive(TIMEOUT) == "Channel"

    # -- receiving ---------------------------------------------------------------------

    def test_receive_timeout(self, gw: Any) -> None:
        channel = gw.remote_exec(wait_then_send)
        with pytest.raises(Channel.TimeoutError):
            channel.receive(0.05)
        assert issubclass(channel.TimeoutError, IOError)
        channel.send("now")
        assert channel.receive(TIMEOUT) == "now"

    def test_eof_after_close_and_drain(self, gw: Any) -> None:
        channel = gw.remote_exec("for i in range(3): channel.send(i)")
        channel.waitclose(TIMEOUT)
        assert list(channel) == [0, 1, 2]
        with pytest.raises(EOFError):
            channel.receive(TIMEOUT)
        with pytest.raises(EOFError):
            channel.receive(TIMEOUT)
        assert channel.isclosed()
        assert channel._getremoteerror() is None

    def test_send_to_closed_channel(self, gw: Any) -> None:
        channel = gw.remote_exec("pass")
        channel.waitclose(TIMEOUT)
        with pytest.raises(OSError):
            channel.send(1)
        with pytest.raises(ValueError):
            channel.send(1)
        mine = gw.remote_exec(echo)
        mine.close()
        with pytest.raises(OSError):
            mine.send(1)

    def test_close_with_error_reaches_the_other_side(self, gw: Any) -> None:
        result = gw.newchannel()
        channel = gw.remote_exec(
            """
            result = channel.receive()
            try:
                channel.receive()
            except channel.RemoteError as exc:
                result.send(str(exc))
            """
        )
        channel.send(result)
        channel.close("closed with a reason")
        assert result.receive(TIMEOUT) == "closed with a reason"

    def test_waitclose(self, gw: Any) -> None:
        channel = gw.remote_exec(wait_then_send)
        with pytest.raises(Channel.TimeoutError):
            channel.waitclose(0.05)
        channel.send(1)
        channel.waitclose(TIMEOUT)
        assert channel.receive(TIMEOUT) == 1
        with pytest.raises(RemoteError, match="failing on purpose"):
            gw.remote_exec(fail_here).waitclose(TIMEOUT)

    def test_garbage_collected_channel_closes_the_remote_end(self, gw: Any) -> None:
        result = gw.newchannel()
        channel = gw.remote_exec(report_eof, result=result)
        del channel
        gc.collect()
        assert result.receive(TIMEOUT) == "eof"

    def test_many_messages_in_order(self, gw: Any) -> None:
        channel = gw.remote_exec("for i in range(20000): channel.send((i, 'x'))")
        for i in range(20000):
            assert channel.receive(TIMEOUT) == (i, "x")
        channel.waitclose(TIMEOUT)

    # -- callbacks ---------------------------------------------------------------------

    def test_setcallback_gets_queued_items_first_then_the_endmarker_once(self, gw: Any) -> None:
        channel = gw.remote_exec("for i in range(5): channel.send(i)")
        channel.waitclose(TIMEOUT)
        got: List[Any] = []
        channel.setcallback(got.append, endmarker="END")
        assert got == [0, 1, 2, 3, 4, "END"]
        with pytest.raises(ValueError):
            channel.receive()

    def test_setcallback_in_the_receiver(self, gw: Any) -> None:
        done = gw.execmodel.Event()
        got: List[Any] = []

        def callback(item: Any) -> None:
            got.append(item)
            if item is END:
                done.set()

        END = object()
        channel = gw.remote_exec("for i in range(100): channel.send(channel.receive() + i)")
        channel.setcallback(callback, endmarker=END)
        for _ in range(100):
            channel.send(1000)
        assert done.wait(TIMEOUT)
        assert got == [1000 + i for i in range(100)] + [END]

    def test_callback_without_endmarker(self, gw: Any) -> None:
        got: List[Any] = []
        channel = gw.remote_exec("channel.send(1)")
        channel.setcallback(got.append)
        channel.waitclose(TIMEOUT)
        assert got == [1]

    def test_raising_callback_closes_the_channel(
        self, gw: Any, capfd: pytest.CaptureFixture[str]
    ) -> None:
        ended = gw.execmodel.Event()
        calls: List[Any] = []

        def callback(item: Any) -> None:
            calls.append(item)
            if item == "END":
                ended.set()
                return
            raise ZeroDivisionError("callback failed on purpose")

        channel = gw.remote_exec(
            """
            channel.send(1)
            try:
                channel.receive()
            except channel.RemoteError as exc:
                channel.send(("remote saw", "ZeroDivisionError" in str(exc)))
            """
        )
        channel.setcallback(callback, endmarker="END")
        assert ended.wait(TIMEOUT)
        assert calls == [1, "END"]
        assert channel.isclosed()
        error = channel._getremoteerror()
        assert isinstance(error, RemoteError)
        assert "callback failed on purpose" in str(error)
        gc.collect()
        err = capfd.readouterr().err
        assert err.count("ZeroDivisionError: callback failed on purpose") == 1, err
        assert "Exception ignored" not in err

    # -- files -------------------------------------------------------------------------

    def test_makefile_write(self, gw: Any) -> None:
        channel = gw.remote_exec(
            """
            f = channel.makefile("w")
            f.write("hello ")
            print("world", file=f)
            f.flush()
            assert not f.isatty()
            """
        )
        assert channel.receive(TIMEOUT) == "hello "
        assert "".join(channel) == "world\n"

    def test_makefile_read(self, gw: Any) -> None:
        channel = gw.remote_exec(read_lines)
        out = channel.makefile("w")
        for part in ["first\nsec", "ond\n", "abcdef", "gh"]:
            out.write(part)
        assert channel.receive(TIMEOUT) == ["first\n", "second\n", "abc", "defgh"]

    def test_makefile_read_local_with_proxyclose(self, gw: Any) -> None:
        channel = gw.remote_exec("channel.send(b'a\\nb'); channel.receive()")
        f = channel.makefile("r", proxyclose=True)
        assert f.readline() == b"a\n"
        f.close()
        assert channel.isclosed()

    # -- gateway -----------------------------------------------------------------------

    def test_remote_status(self, gw: Any) -> None:
        channel = gw.remote_exec(wait_then_send)
        status = gw.remote_status()  # answered although a task is busy
        assert status.numexecuting == 1
        assert status.numchannels >= 1
        assert status.execmodel in ("thread", "main_thread_only", "eventlet", "gevent")
        channel.send(None)
        channel.waitclose(TIMEOUT)
        del channel
        gc.collect()
        assert gw.remote_status().numexecuting == 0

    def test_remote_info(self, gw: Any) -> None:
        info = gw._remote_info()
        assert isinstance(info["pid"], int)
        assert isinstance(info["executable"], str)
        assert tuple(info["version_info"][:2]) >= (3, 8)
        assert isinstance(info["platform"], str)
        assert isinstance(info["cwd"], str)

    def test_second_concurrent_task(self, gw: Any) -> None:
        first = gw.remote_exec(wait_then_send)
        second = gw.remote_exec("channel.send('second ran')")
        if gw.remote_status().execmodel == "main_thread_only":
            with pytest.raises(RemoteError, match="main_thread_only"):
                second.receive(TIMEOUT)
        else:
            assert second.receive(TIMEOUT) == "second ran"
        first.send("first done")
        assert first.receive(TIMEOUT) == "first done"
        first.waitclose(TIMEOUT)
        assert gw.remote_exec("channel.send('then one more')").receive(TIMEOUT) == ("then one more")

    def test_reconfigure_gateway(self, gw: Any) -> None:
        gw.reconfigure(py2str_as_py3str=False, py3str_as_py2str=True)
        try:
            channel = gw.remote_exec(
                "x = channel.receive(); channel.send((type(x).__name__, 'abc'))"
            )
            channel.send("hi")
            assert channel.receive(TIMEOUT) == (b"bytes", b"abc")
        finally:
            gw.reconfigure()
        channel = gw.remote_exec("channel.send(type(channel.receive()).__name__)")
        channel.send("hi")
        assert channel.receive(TIMEOUT) == "str"

    def test_reconfigure_channel(self, gw: Any) -> None:
        channel = gw.remote_exec("x = channel.receive(); channel.send((type(x).__name__, 'abc'))")
        channel.reconfigure(py2str_as_py3str=False, py3str_as_py2str=True)
        channel.send("hi")
        assert channel.receive(TIMEOUT) == (b"bytes", b"abc")
        other = gw.remote_exec("channel.send('plain')")
        assert other.receive(TIMEOUT) == "plain"

    def test_channel_ids_by_side(self, gw: Any) -> None:
        ids = [gw.newchannel().id for _ in range(3)]
        assert all(i % 2 == 1 for i in ids)
        assert ids == sorted(set(ids))

    def test_exit_is_idempotent_and_ends_the_receiver(self, gw: Any) -> None:
        assert gw.hasreceiver()
        channel = gw.remote_exec(wait_then_send)
        gw.exit()
        gw.exit()
        gw.join(TIMEOUT)
        assert not gw.hasreceiver()
        with pytest.raises(OSError):
            channel.send(1)
        with pytest.raises(EOFError):
            channel.receive(TIMEOUT)
        with pytest.raises(OSError):
            gw.remote_exec("pass")

    def test_repr(self, gw: Any) -> None:
        assert repr(gw.id) in repr(gw)
        channel = gw.newchannel()
        assert str(channel.id) in repr(channel)

    # -- a remote that breaks the protocol ------------------------------------------
    # Whatever reads this gateway's stream (its receiver, a thread in receive(), the
    # read(n)-only path), a bad frame ends the gateway at its header, and
    # every waiter gets an EOFError naming the gateway and the frame.

    def _corrupt_stream(self, gw: Any, garbage: bytes) -> str:
        waiting = gw.newchannel()  # nothing ever arrives on it: it waits for the end
        assert gw.remote_exec("channel.send('before')").receive(TIMEOUT) == "before"
        gw.remote_exec(write_raw, data=garbage)
        with pytest.raises(EOFError) as info:
            waiting.receive(TIMEOUT)
        gw.join(TIMEOUT)
        assert not gw.hasreceiver()
        with pytest.raises(OSError):
            gw.remote_exec("pass")
        text = str(info.value)
        assert f"gateway {gw.id!r}" in text
        assert "corrupt stream from the other side" in text
        return text

    def test_unknown_frame_kind_ends_the_gateway(self, gw: Any) -> None:
        text = self._corrupt_stream(gw, bytes([0xEE]) + bytes(HEADER_SIZE - 1))
        assert "unknown frame kind 238 at byte " in text

    def test_control_frame_that_does_not_load_ends_the_gateway(self, gw: Any) -> None:
        garbage = b"\xff\xfe\xfd"
        text = self._corrupt_stream(gw, encode_header(RECONFIGURE, 0, len(garbage)) + garbage)
        assert "RECONFIGURE frame on channel 0 at byte " in text
        assert "does not load" in text

    def test_frame_over_the_maximum_size_ends_the_gateway(self, gw: Any) -> None:
        assert gw.max_frame == DEFAULT_MAX_FRAME
        lie = encode_header(CHANNEL_DATA, 1, 0xFFFFFFFF) + b"only this much"
        text = self._corrupt_stream(gw, lie)
        assert "CHANNEL_DATA frame on channel 1 at byte " in text
        assert "declares 4294967295 bytes (4.0 GiB), over the maximum frame size, " in text
        assert f"max_frame={DEFAULT_MAX_FRAME} bytes (1.0 GiB)" in text
