"""The second stage of the bootstrap: what a new interpreter runs once it has its frame.

The first stage (``_bootstrap.first_stage``: the ``python -c`` program of popen, ssh,
vagrant_ssh and via, or the source a socket server execs) reads one frame holding
``(config, bundle)``, runs this module (its source, or the code object compiled for the
child's interpreter: ``_bootstrap.stage_entry``) and calls :func:`start`. The remote
never imports this module: its source travels in the config, read from the installed
file like the travelling packages' sources.

It runs first thing in the new interpreter, on every interpreter the travelling packages
support (CPython 3.8+, PyPy3): the standard library only, nothing newer than 3.8, and
nothing imported that the start does not need.
"""

from __future__ import annotations

import marshal
import os
import sys

# Names for mypy only: importing `typing` would cost every remote's start milliseconds,
# and annotations are never evaluated here (PEP 563). mypy reads this flag as True; it
# is the transport's one such flag (benchmarks/README.md, "Start-up tricks we keep").
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import CodeType, ModuleType
    from typing import Any, Callable, Dict, Optional, Tuple

    Config = Dict[str, Any]
    # {module name: (path, start, end)}: where each code object lies in the bytes sent
    OwnIndex = Dict[str, Tuple[str, int, int]]


def start(
    config: Config,
    bundle: bytes,
    stage_code: CodeType,
    *,
    read_exactly: Callable[[int], bytes],
    write_all: Callable[[bytes], None],
    make_io: Callable[[ModuleType, Any], Any],
    exit_process: bool,
) -> None:
    """Import the channel layer, apply the spec's options, answer ready, serve.

    `bundle` is b"" when this interpreter imports the installed packages (then
    config["path"] says where they are, and config["own"] announces their code, sent
    right after the frame); else the travelling modules, installed from memory.
    `stage_code` is this module's code, sent back with the ready answer when the
    parent asks for it (config["want_code"]). `make_io(execnet_channel, execmodel)`
    gives the protocol's IO; `exit_process` is False under a socket server, whose
    process may go on after the client is served.

    With config["fork_server"] this interpreter becomes a fork server
    (:func:`serve_fork_server`); a child it forks goes on here as the gateway child its
    request describes, and ends as :func:`serve_fork_server` says.
    """
    for path in config["path"]:
        if path not in sys.path:
            sys.path.append(path)
    compiled = install_bundle(bundle, config.get("code")) if bundle else None
    own_code = OwnCode.read(config.pop("own", None), read_exactly)
    os.environ.update(config["env"])  # before the import: EXECNET_DEBUG is read then
    try:
        import execnet_channel
    finally:
        if own_code is not None:
            own_code.drop()
    end_child = None
    if config.get("fork_server"):
        forked = serve_fork_server(config, compiled, stage_code, write_all)
        if forked is None:
            return  # the server's work is done: its last child was reaped
        config, end_child = forked
    if config["nice"]:
        os.nice(int(config["nice"]))
    if config["chdir"]:  # after the import: a module in the new directory must not shadow ours
        os.makedirs(config["chdir"], exist_ok=True)
        os.chdir(config["chdir"])
    execmodel = execnet_channel.get_execmodel(config["execmodel"])
    write_all(ready_answer(config, compiled, stage_code))
    io = make_io(execnet_channel, execmodel)
    try:
        execnet_channel.serve(
            io, config["id"], exit_process=exit_process, max_frame=config.get("max_frame")
        )
    finally:
        # serve() closes the write end itself; this covers a serve() that failed to start.
        if exit_process:
            io.close_write()
    if end_child is not None:
        end_child()


def ready_answer(
    config: Config, compiled: Optional[Dict[str, CodeType]], stage_code: CodeType
) -> bytes:
    """The marker, and this interpreter's code when the parent asks for it."""
    marker: bytes = config["marker"]
    if config.get("want_code"):
        return marker + code_answer(compiled, stage_code)
    return marker


def serve_fork_server(
    config: Config,
    compiled: Optional[Dict[str, CodeType]],
    stage_code: CodeType,
    write_all: Callable[[bytes], None],
) -> Optional[Tuple[Config, Callable[[], None]]]:
    """Be a popen//fork server (``_forkserver.py``) until its opener is done with it.

    config["fork_server"] holds the server's code (the source of
    ``_forkserver_remote.py``), its control socket's descriptor and the environment the
    opener started it with. The server answers ready, then reads and writes /dev/null
    (the bootstrap's pipes are the opener's no more) and serves fork requests. It
    returns None once the opener closed the control socket and every child was reaped;
    in a forked child it returns (the child's request, which reads as a config, and the
    function that ends the child once served), having made the child what the request
    says: its pipes, the caller's umask, cwd and environment.
    """
    import execnet_channel

    server = config["fork_server"]
    namespace: Dict[str, Any] = {"__name__": "execnet_forkserver"}
    exec(server["source"], namespace)
    # What every child's serve() imports on first use is imported here, once: in a
    # forked child the import would copy hundreds of pages shared with the server.
    execnet_channel.preload("thread")
    write_all(ready_answer(config, compiled, stage_code))
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    forked = namespace["serve_forks"](server["control"], server["start_env"])
    if forked is None:
        return None
    namespace["become_child"](*forked)
    return forked[0], namespace["end_child"]


def bytecode_magic() -> bytes:
    """This interpreter's bytecode magic number (b"" where it cannot be read).

    From the import system's own module, loaded at every start: no import to pay for.
    """
    try:
        import _frozen_importlib_external
    except ImportError:
        return b""
    return bytes(_frozen_importlib_external.MAGIC_NUMBER)


def code_answer(compiled: Optional[Dict[str, CodeType]], stage_code: CodeType) -> bytes:
    """What follows the marker when the parent asks for this interpreter's code.

    1 byte n and the n-byte magic number, then twice 4 bytes length and marshal'd code:
    the bundle modules' ``{name: code}`` and the stage's code. The parent passes both to
    the next child of the same command line, which then compiles nothing. Empty (n = 0,
    lengths 0) where the magic number is unknown or nothing was compiled.
    """
    magic = bytecode_magic()
    modules = marshal.dumps(compiled) if magic and compiled else b""
    stage = marshal.dumps(stage_code) if magic else b""
    return (
        bytes([len(magic)])
        + magic
        + len(modules).to_bytes(4, "big")
        + modules
        + len(stage).to_bytes(4, "big")
        + stage
    )


def install_bundle(bundle: bytes, cached: Optional[Tuple[bytes, bytes]]) -> Dict[str, CodeType]:
    """Import the bundle's modules from memory from now on; returns the code compiled.

    `cached` is (magic number, marshal'd {name: code}) an earlier child of the same
    command line compiled: used when the magic number is this interpreter's.
    """
    import zlib

    sources = {
        name: (is_package, source)
        for name, is_package, source in marshal.loads(zlib.decompress(bundle))
    }
    compiled: Dict[str, CodeType] = {}
    if cached and cached[0] == bytecode_magic():
        compiled = marshal.loads(cached[1])
    sys.meta_path.insert(0, BundleImporter(sources, compiled))
    return compiled


class BundleImporter:
    """Finds and loads the bundle's modules under their real names (relative imports
    work, nothing touches a disk); tracebacks show ``<execnet bundle>/pkg/mod.py`` with
    source lines (``get_source``)."""

    def __init__(self, sources: Dict[str, Tuple[bool, str]], compiled: Dict[str, CodeType]):
        self.sources = sources
        self.compiled = compiled  # filled as modules are imported

    def filename(self, name: str) -> str:
        tail = "/__init__.py" if self.sources[name][0] else ".py"
        return "<execnet bundle>/" + name.replace(".", "/") + tail

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name not in self.sources:
            return None
        from importlib.machinery import ModuleSpec

        loader: Any = self  # a loader by its methods (importlib.abc costs an import)
        return ModuleSpec(
            name, loader, origin=self.filename(name), is_package=self.sources[name][0]
        )

    def create_module(self, spec: Any) -> None:
        return None  # the default module

    def exec_module(self, module: ModuleType) -> None:
        name = module.__name__
        if name not in self.compiled:
            self.compiled[name] = compile(self.sources[name][1], self.filename(name), "exec")
        exec(self.compiled[name], module.__dict__)

    def get_source(self, name: str) -> str:
        return self.sources[name][1]


class OwnCode:
    """This very interpreter's code for the installed modules, sent right after the frame.

    The modules import from their files as usual (spec, ``__file__``, ``__path__``), but
    each one's code comes from here, once: no search of sys.path, no .pyc read. A module
    imported later, or reloaded, comes from its files (see ``drop``).
    """

    def __init__(self, index: OwnIndex, data: bytes) -> None:
        self.index = index
        self.data = data
        self.own_finder: Any = None

    @classmethod
    def read(
        cls, own: Optional[Tuple[bytes, OwnIndex, int]], read_exactly: Callable[[int], bytes]
    ) -> Optional[OwnCode]:
        """Read the code announced by config["own"] = (magic number, index, length) and
        install its finder; None if there is none, or it is not for this interpreter."""
        if not own:
            return None
        magic, index, length = own
        data = read_exactly(length)  # read in any case: these bytes must not reach the protocol
        if magic != bytecode_magic():
            return None
        own_code = cls(index, data)
        sys.meta_path.insert(0, own_code.finder())
        return own_code

    def take(self, name: str, path: str) -> Optional[CodeType]:
        """The code of module `name` at `path`, once; None if not (or no longer) here."""
        entry = self.index.pop(name, None)
        if entry is None or entry[0] != path:
            return None
        code: CodeType = marshal.loads(memoryview(self.data)[entry[1] : entry[2]])
        return code

    def finder(self) -> Any:
        """A meta path finder for the modules in the index, with a loader per module that
        takes its code from here (or from its file, like any SourceFileLoader)."""
        import _frozen_importlib_external as external
        import _imp

        own_code = self

        class OwnCodeLoader(external.SourceFileLoader):
            own = own_code

            def get_code(self, fullname: str) -> Any:
                code = self.own.take(fullname, self.path)
                if code is None:
                    return super().get_code(fullname)
                # as the import system does (a private function it has on every version)
                _imp._fix_co_filename(code, self.path)  # type: ignore[attr-defined]
                return code

        class OwnCodeFinder:
            @staticmethod
            def find_spec(name: str, path: Any = None, target: Any = None) -> Any:
                entry = own_code.index.get(name)
                if entry is None:
                    return None
                loader = OwnCodeLoader(name, entry[0])
                return external.spec_from_file_location(name, entry[0], loader=loader)

        self.own_finder = OwnCodeFinder
        return OwnCodeFinder

    def drop(self) -> None:
        """The start is over: remove the finder and let the code go."""
        if self.own_finder in sys.meta_path:
            sys.meta_path.remove(self.own_finder)
        self.index = {}
        self.data = b""
