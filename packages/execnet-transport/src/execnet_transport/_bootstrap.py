"""The bootstrap: the first stage a new interpreter runs and the one frame it reads.

Every gateway starts the same way:

1. The child runs the first stage (``first_stage``): for popen, ssh, vagrant_ssh and via
   a short ``python -c`` program; a socket server execs the socket variant with the
   accepted socket bound to ``clientsock``.
2. The first stage reads ONE frame (``frame``): 4 bytes big-endian length, then the
   marshal'd ``(config, bundle)``. The config (``make_config``) holds the spec's options,
   a marker, and the second stage (``stage_entry``): the source of ``_stage.py``, with
   the code object compiled for the child's interpreter when this process has one. The
   bundle is b"" when the child can import the installed packages (popen on this very
   interpreter: their code then follows the frame, see ``_own_code``), else the
   travelling modules' sources (``_bundle``).
3. The second stage (``_stage.start``) installs the bundle or the code, imports
   execnet_channel, applies nice, chdir and env, writes the marker and serves.
4. The parent reads through the marker (``read_until_marker``), discarding whatever the
   interpreter printed before it. A child asked for it (config["want_code"]) sends the
   code it compiled after the marker (``read_code_answer``); the next child of the same
   command line gets it in its config and compiles nothing.

The package's start-up tricks, each kept for what it saves (benchmarks/README.md, "Start-up
tricks we keep"), are these and no others: the second stage as a code object
(``stage_entry``) and compiled code passed on per command line (``read_code_answer``);
the travelling packages' code sent to a child of this interpreter (``_own_code``) through
a grown pipe (``_process``); no ``typing`` in ``_stage.py``; and the socket server
imported on first use (``__init__``).
"""

from __future__ import annotations

import marshal
import os
import secrets
from functools import lru_cache
from importlib.util import MAGIC_NUMBER
from typing import Any, Callable, Dict, Final, List, NamedTuple, Optional, Tuple, Union

from ._bundle import MARSHAL_VERSION, bundle
from ._max_frame import max_frame_of
from ._xspec import XSpec

__all__ = [
    "SEND_BUNDLE",
    "first_stage",
    "frame",
    "make_config",
    "new_marker",
    "read_code_answer",
    "read_exactly",
    "read_until_marker",
    "serving_settings",
    "spec_environment",
    "stage_entry",
    "stage_source",
]

# -- the first stage ---------------------------------------------------------------------
#
# It runs on every supported interpreter (CPython 3.8+, PyPy3), so it uses nothing newer.
# Each transport defines how to receive and send bytes, the channel layer's IO over them,
# and whether the process ends with the gateway; the rest is the same for all.

_STDIO_TRANSPORT = """\
import marshal, os


def receive(size):
    return os.read(0, size)


def write_all(data):
    while data:
        data = data[os.write(1, data) :]


def make_io(execnet_channel, execmodel):
    return execnet_channel.StdioIO.from_process(execmodel)


exit_process = True
"""

# A socket server (ours, or execnet 2.1.2's, which keeps running after we return: no
# exit) execs this with the accepted socket bound to `clientsock`: under a TLS server an
# execnet_channel.TLSConnection. Such a server may have read past the source line, so
# the client sends the frame only once this code asks for it (SEND_BUNDLE).
SEND_BUNDLE: Final = b"\x00execnet-send-bundle\x00"
_SOCKET_TRANSPORT = """\
import marshal

clientsock.sendall(SEND_BUNDLE)
receive = clientsock.recv
write_all = clientsock.sendall


def make_io(execnet_channel, execmodel):
    if hasattr(clientsock, "getpeercert"):
        return execnet_channel.TLSSocketIO(clientsock, execmodel)
    return execnet_channel.SocketIO(clientsock, execmodel)


exit_process = False
""".replace("SEND_BUNDLE", repr(SEND_BUNDLE))

# The frame, then the second stage: its code object when it was compiled for this
# interpreter, else its source. Its read_exactly is the child's copy of ours (below):
# nothing can be imported before the stage runs.
_RUN_STAGE = """
def read_exactly(size):
    data = b""
    while len(data) < size:
        chunk = receive(size - len(data))
        if not chunk:
            raise EOFError("execnet bootstrap: the stream ended before the bundle arrived")
        data += chunk
    return data


config, bundle = marshal.loads(read_exactly(int.from_bytes(read_exactly(4), "big")))
stage = config.pop("stage")
if type(stage) is tuple:
    magic, code, stage = stage
    try:
        import _frozen_importlib_external

        if magic == _frozen_importlib_external.MAGIC_NUMBER:
            stage = marshal.loads(code)
    except (ImportError, ValueError, EOFError, TypeError):
        pass
if type(stage) is str:
    stage = compile(stage, "<execnet stage>", "exec")
namespace = {"__name__": "__execnet_stage__"}
exec(stage, namespace)
namespace["start"](
    config,
    bundle,
    stage,
    read_exactly=read_exactly,
    write_all=write_all,
    make_io=make_io,
    exit_process=exit_process,
)
"""


def first_stage(kind: str) -> str:
    """The first-stage program for `kind` 'stdio' (popen, ssh, vagrant_ssh, via: the
    ``python -c`` program) or 'socket' (what a socket server execs).

    >>> compile(first_stage("stdio"), "<first stage>", "exec").co_filename
    '<first stage>'
    """
    if kind == "stdio":
        return _STDIO_TRANSPORT + _RUN_STAGE
    if kind == "socket":
        return _SOCKET_TRANSPORT + _RUN_STAGE
    raise ValueError(f"unknown first stage kind {kind!r}: 'stdio' or 'socket'")


# -- the second stage ----------------------------------------------------------------------

_STAGE_PATH: Final = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_stage.py")


@lru_cache(maxsize=None)
def stage_source() -> str:
    """The source of the second stage: the installed ``_stage.py``, read once."""
    with open(_STAGE_PATH, encoding="utf-8") as file:
        return file.read()


@lru_cache(maxsize=None)
def _own_stage_code() -> bytes:
    return marshal.dumps(compile(stage_source(), _STAGE_PATH, "exec", dont_inherit=True))


class CompiledCode(NamedTuple):
    """What the first child of a command line compiled, for the next ones (marshal'd)."""

    magic: bytes  # the bytecode magic number of the child's interpreter
    modules: bytes  # {module name: code} of the bundle's modules
    stage: bytes  # the second stage's code


# Per command line (popen python=, ssh host and python): what its first child compiled.
_compiled: Dict[Tuple[str, ...], CompiledCode] = {}

StageEntry = Union[str, Tuple[bytes, bytes, str]]


def stage_entry(command: Optional[Tuple[str, ...]], same_interpreter: bool) -> StageEntry:
    """What config["stage"] holds: the source, or (magic number, code, source).

    The code is this interpreter's own for a child of it, or what the first child of
    `command` sent back; the child runs it when the magic number is its own.
    """
    if same_interpreter:
        return (MAGIC_NUMBER, _own_stage_code(), stage_source())
    compiled = _compiled.get(command) if command is not None else None
    if compiled is not None and compiled.stage:
        return (compiled.magic, compiled.stage, stage_source())
    return stage_source()


def read_code_answer(command: Tuple[str, ...], read_some: Callable[[int], bytes]) -> None:
    """Read what a child asked for its code sends after the marker, and keep it for the
    next child of `command` (format: ``_stage.code_answer``; never unmarshalled here)."""

    def read(size: int) -> bytes:
        return read_exactly(read_some, size)

    magic = read(read(1)[0])
    modules = read(int.from_bytes(read(4), "big"))
    stage = read(int.from_bytes(read(4), "big"))
    if magic:
        _compiled[command] = CompiledCode(magic, modules, stage)


# -- the frame -------------------------------------------------------------------------------


def _travelling_paths() -> List[str]:
    """Where this interpreter found the travelling packages: a child of the same
    interpreter imports them from there even when they came from a path it lacks."""
    import execnet_channel
    import execnet_serial

    paths: List[str] = []
    for module in (execnet_serial, execnet_channel):
        path = os.path.dirname(os.path.dirname(os.path.abspath(str(module.__file__))))
        if path not in paths:
            paths.append(path)
    return paths


def spec_environment(spec: XSpec) -> Dict[str, str]:
    """The spec's ``env:NAME=value`` keys as a dict of strings."""
    return {str(name): str(value) for name, value in spec.env.items()}


def serving_settings(spec: XSpec, marker: bytes) -> Dict[str, Any]:
    """What ``_stage.start`` applies in every child before it serves, from the spec:
    its id, execution model, nice, chdir, ready marker and frame limit. Part of a new
    remote's config (`make_config`) and of a fork server's request for a child.

    >>> from execnet_transport import XSpec
    >>> serving_settings(XSpec("popen//id=gw0//nice=3"), b"M")["nice"]
    '3'
    """
    return {
        "id": str(spec.id),
        "execmodel": spec.execmodel or "thread",
        "nice": str(spec.nice) if spec.nice is not None else "",
        "chdir": str(spec.chdir) if spec.chdir else "",
        "marker": marker,
        "max_frame": max_frame_of(spec),  # the remote holds our frames to it too
    }


def make_config(
    spec: XSpec,
    marker: bytes,
    *,
    same_interpreter: bool = False,
    command: Optional[Tuple[str, ...]] = None,
) -> Dict[str, Any]:
    """The config a new remote gets in its frame (read by ``_stage.start``).

    `command`: the command line that started the child (its compiled code is kept per
    command line); `same_interpreter`: the child imports the installed packages.
    """
    env = spec_environment(spec)
    debug = os.environ.get("EXECNET_DEBUG")
    if debug and "EXECNET_DEBUG" not in env:
        env["EXECNET_DEBUG"] = debug  # reaches ssh, socket and via remotes too
    config = serving_settings(spec, marker)
    config["env"] = env
    config["path"] = _travelling_paths() if same_interpreter else []
    config["stage"] = stage_entry(command, same_interpreter)
    if command is not None and not same_interpreter:
        compiled = _compiled.get(command)
        config["code"] = (compiled.magic, compiled.modules) if compiled else None
        config["want_code"] = compiled is None
    return config


def frame(config: Dict[str, Any], with_bundle: bool) -> bytes:
    """The one frame the first stage reads: length, then marshal'd (config, bundle).

    >>> data = frame({"id": "gw0"}, with_bundle=False)
    >>> int.from_bytes(data[:4], "big") == len(data) - 4
    True
    """
    body = marshal.dumps((config, bundle() if with_bundle else b""), MARSHAL_VERSION)
    return len(body).to_bytes(4, "big") + body


# -- the answer ------------------------------------------------------------------------------


def new_marker() -> bytes:
    """A marker no interpreter noise will contain by chance (96 random bits)."""
    return b"\x00execnet-ready-" + secrets.token_hex(12).encode("ascii") + b"\x00"


def read_exactly(read_some: Callable[[int], bytes], size: int) -> bytes:
    """`size` bytes from `read_some(n)`, which returns at most n bytes (b"" at the end);
    EOFError if the stream ends first.

    >>> import io
    >>> stream = io.BytesIO(b"abcdef")
    >>> read_exactly(stream.read, 4), read_exactly(stream.read, 2)
    (b'abcd', b'ef')
    >>> read_exactly(stream.read, 1)
    Traceback (most recent call last):
    ...
    EOFError: the stream ended after 0 of 1 bytes
    """
    data = b""
    while len(data) < size:
        chunk = read_some(size - len(data))
        if not chunk:
            raise EOFError(f"the stream ended after {len(data)} of {size} bytes")
        data += chunk
    return data


def read_until_marker(read_some: Callable[[int], bytes], marker: bytes) -> bytes:
    """Read through the marker and return what came before it (interpreter noise).

    Never reads past the marker: while the buffer ends with k bytes of the marker's
    start, the marker cannot end sooner than len(marker) - k bytes later, so that is
    what is asked for. Raises EOFError, carrying the noise, if the stream ends first.

    >>> chunks = [b"hello from sitecustomize\\n", b"<ready>", b"PROTOCOL"]
    >>> read_until_marker(lambda size: chunks.pop(0), b"<ready>")
    b'hello from sitecustomize\\n'
    """
    buffer = bytearray()
    need = len(marker)
    while True:
        chunk = read_some(need)
        if not chunk:
            raise EOFError(bytes(buffer))
        buffer += chunk
        if buffer.endswith(marker):
            return bytes(buffer[: -len(marker)])
        need = len(marker)
        for k in range(min(len(marker) - 1, len(buffer)), 0, -1):
            if buffer.endswith(marker[:k]):
                need = len(marker) - k
                break
