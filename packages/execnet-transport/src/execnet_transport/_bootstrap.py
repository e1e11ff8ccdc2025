"""The bootstrap: the first stage on the child's command line and the one frame it reads.

Every gateway starts the same way. The child runs FIRST_STAGE (a short `-c` program, or
the source a socket server execs); it reads ONE frame: 4 bytes big-endian length, then a
marshal'd ``(config, bundle)`` where bundle is b"" when the child can import the
installed packages (popen on this very interpreter) or else the zlib-compressed,
marshal'd list of the travelling modules' sources. A `-c` child then runs the rest of
the stage, STAGE, from the config: as source, or as the code object compiled for its
interpreter when this process has one (this very interpreter, or what an earlier child
of the same command line sent back), so the interpreter compiles almost nothing before
it runs. The child installs the bundle's modules in memory under their real names (an
import finder: relative imports work, nothing is written to disk) or, on this very
interpreter, imports the installed packages with the code objects of their .pyc files
sent along (config own: no search of sys.path, no file reads); applies the options
(nice, chdir, env), writes the marker the parent chose, and enters the serve loop.
Noise the interpreter printed before the marker (a sitecustomize, a .pth file) is
discarded by the parent. A child asked for it (config want_code) sends the code objects
it compiled after the marker; the parent passes them, unread, to the next child of the
same command line (config code, and the stage's own code).
"""

from __future__ import annotations

import marshal
import os
import secrets
import sys
import zlib
from functools import lru_cache
from importlib.util import MAGIC_NUMBER, cache_from_source, find_spec, source_hash
from typing import Any, Callable, Dict, Final, List, Optional, Tuple

__all__ = [
    "INSTALL",
    "STAGE",
    "TRAVELLING_PACKAGES",
    "bundle",
    "first_stage",
    "frame",
    "new_marker",
    "own_code",
    "read_until_marker",
    "stage_entry",
]

# The modules that travel to interpreters that cannot import the installed packages,
# in the order they are installed there. Declared here and nowhere else.
TRAVELLING_PACKAGES: Final = ("execnet_serial", "execnet_channel")

# marshal format 2 holds only the plain values we send and is read by every CPython 3
# and PyPy3, whatever their own marshal version.
_MARSHAL_VERSION: Final = 2

Module = Tuple[str, bool, str]  # (dotted name, is a package, source text)


# package root -> ((package directory, mtime_ns)...), what _package_files found there
_files_cache: Dict[str, Tuple[Tuple[Tuple[str, int], ...], List[Tuple[str, bool, str]]]] = {}


def _mtime_ns(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def _package_files(package: str) -> List[Tuple[str, bool, str]]:
    """(dotted name, is a package, path of the .py file) of every module of `package`.

    Walked again only when one of its package directories changed (a module added,
    removed or renamed changes its directory's mtime).
    """
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"travelling package {package!r} is not installed as a package")
    root = next(iter(spec.submodule_search_locations))
    cached = _files_cache.get(root)
    if cached is not None and all(_mtime_ns(d) == mtime for d, mtime in cached[0]):
        return cached[1]
    found: List[Tuple[str, bool, str]] = []
    directories: List[Tuple[str, int]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d.isidentifier())
        relative = os.path.relpath(dirpath, root)
        prefix = package if relative == "." else package + "." + relative.replace(os.sep, ".")
        if "__init__.py" not in filenames:
            continue  # not a package directory (e.g. __pycache__)
        directories.append((dirpath, _mtime_ns(dirpath)))
        for filename in sorted(filenames, key=lambda f: (f != "__init__.py", f)):
            if not filename.endswith(".py"):
                continue
            stem = filename[:-3]
            is_package = stem == "__init__"
            name = prefix if is_package else f"{prefix}.{stem}"
            found.append((name, is_package, os.path.join(dirpath, filename)))
    _files_cache[root] = (tuple(directories), found)
    return found


def _package_modules(package: str) -> List[Module]:
    found: List[Module] = []
    for name, is_package, path in _package_files(package):
        with open(path, encoding="utf-8") as source:
            found.append((name, is_package, source.read()))
    return found


@lru_cache(maxsize=None)
def bundle(packages: Tuple[str, ...] = TRAVELLING_PACKAGES) -> bytes:
    """The packages' installed sources, marshal'd and zlib-compressed.

    Read from the installed packages (declared order, then file order) once per process.
    """
    modules: List[Module] = []
    for package in packages:
        modules.extend(_package_modules(package))
    return zlib.compress(marshal.dumps(modules, _MARSHAL_VERSION), 6)


# Standard library modules the travelling packages import at a remote's start: a child
# of this interpreter gets their code with ours (the same files, found without a search;
# a name that is not a plain .py module here, or not imported, is simply left out, and
# one missing from this list is imported as usual: only a little slower).
_STDLIB_AT_START: Final = ("__future__", "types", "_weakrefset", "weakref", "struct")

# path -> (mtime_ns, size, marshal'd code): what own_code read or compiled for a source.
_own_cache: Dict[str, Tuple[int, int, bytes]] = {}
# The last own_entry() and the (path, mtime_ns, size) of every file it was made from.
_own_last: List[Any] = [None, None]


def _code_from_pyc(path: str, stat: os.stat_result) -> Optional[bytes]:
    """The marshal'd code of `path`'s .pyc (optimization level 0), if it is current.

    Checked as the import system checks it: the magic number, then the source's mtime
    and size (a timestamp .pyc) or, for a hash-based one that asks for it, the source's
    hash. None when there is no such .pyc or it is stale: the source is compiled instead.
    """
    try:
        with open(cache_from_source(path, optimization=""), "rb") as file:
            data = file.read()
    except (OSError, NotImplementedError, ValueError):
        return None
    if len(data) < 16 or data[:4] != MAGIC_NUMBER:
        return None
    flags = int.from_bytes(data[4:8], "little")
    if flags == 0:
        if (
            int.from_bytes(data[8:12], "little") != int(stat.st_mtime) & 0xFFFFFFFF
            or int.from_bytes(data[12:16], "little") != stat.st_size & 0xFFFFFFFF
        ):
            return None
    elif flags & ~0b11:
        return None
    else:
        import _imp

        check = getattr(_imp, "check_hash_based_pycs", "default")
        if check == "always" or (check != "never" and flags & 0b10):
            try:
                with open(path, "rb") as file:
                    source = file.read()
            except OSError:
                return None
            if source_hash(source) != data[8:16]:
                return None
    return data[16:]


def own_code(packages: Tuple[str, ...] = TRAVELLING_PACKAGES) -> Dict[str, Tuple[str, bytes]]:
    """{module name: (source path, marshal'd code)} of the installed travelling packages
    (and of the few standard library modules they import at a remote's start).

    For a child of this very interpreter: it imports these modules from their files as
    usual, but takes each module's code from here (the .pyc this interpreter's import
    system would use, or the source compiled here when there is none), skipping the
    search of sys.path and the file reads. Every call re-checks each source's mtime and
    size, so an edited module is what the next child runs, as with a plain import.
    """
    found: Dict[str, Tuple[str, bytes]] = {}
    files = [(name, path) for package in packages for name, _, path in _package_files(package)]
    for name in _STDLIB_AT_START:
        module = sys.modules.get(name)
        spec = getattr(module, "__spec__", None)
        origin = getattr(spec, "origin", None)
        if getattr(spec, "has_location", False) and str(origin).endswith(".py"):
            files.append((name, str(origin)))
    for name, path in files:
        try:
            stat = os.stat(path)
        except OSError:
            continue  # gone since the walk: the child finds what is there
        cached = _own_cache.get(path)
        if cached is None or cached[:2] != (stat.st_mtime_ns, stat.st_size):
            code = _code_from_pyc(path, stat)
            if code is None:
                with open(path, "rb") as file:
                    source = file.read()
                code = marshal.dumps(compile(source, path, "exec", dont_inherit=True))
            cached = _own_cache[path] = (stat.st_mtime_ns, stat.st_size, code)
        found[name] = (path, cached[2])
    return found


OwnEntry = Tuple[bytes, Dict[str, Tuple[str, int, int]], int]


def own_entry() -> Optional[Tuple[OwnEntry, bytes]]:
    """(config['own'], the bytes sent right after the frame) for a child of this very
    interpreter: (magic number, {name: (path, start, end)}, length) and all the
    marshal'd code in one piece, which the child reads without another copy. None: the
    child imports from the files alone (e.g. a module cannot be read here)."""
    try:
        code = own_code()
    except (OSError, ImportError, ValueError, SyntaxError):
        return None
    key = [(path, _own_cache[path][:2]) for path, _ in code.values()]
    if _own_last[0] != key:
        index: Dict[str, Tuple[str, int, int]] = {}
        parts: List[bytes] = []
        position = 0
        for name, (path, data) in code.items():
            index[name] = (path, position, position + len(data))
            parts.append(data)
            position += len(data)
        _own_last[:] = [key, ((MAGIC_NUMBER, index, position), b"".join(parts))]
    entry: Tuple[OwnEntry, bytes] = _own_last[1]
    return entry


def new_marker() -> bytes:
    """A marker no interpreter noise will contain by chance."""
    return b"\x00execnet-ready-" + secrets.token_hex(12).encode("ascii") + b"\x00"


# Code objects compiled by earlier children, per command line: (magic number, marshal'd
# {module name: code}). A later child of the same interpreter skips compiling the bundle.
_code_cache: Dict[Tuple[str, ...], Tuple[bytes, bytes]] = {}


def cached_code(key: Tuple[str, ...]) -> Optional[Tuple[bytes, bytes]]:
    """What an earlier child started by this command line compiled, if any."""
    return _code_cache.get(key)


def read_code_answer(key: Tuple[str, ...], read_exactly: Callable[[int], bytes]) -> None:
    """Read what a child asked for its code sends after the marker, and keep it.

    The answer: 1 byte n, the n-byte magic number, then twice 4 bytes length and
    marshal'd code: the modules' ``{name: code}``, then the stage's code (made by the
    child's interpreter: never unmarshalled here, only passed on).
    """
    magic = read_exactly(read_exactly(1)[0])
    code = read_exactly(int.from_bytes(read_exactly(4), "big"))
    stage = read_exactly(int.from_bytes(read_exactly(4), "big"))
    if magic and code:
        _code_cache[key] = (magic, code)
    if magic and stage:
        _stage_cache[key] = (magic, stage)


# The stage's code object per command line, from the first child of an interpreter
# that is not this one: (magic number, marshal'd code).
_stage_cache: Dict[Tuple[str, ...], Tuple[bytes, bytes]] = {}


@lru_cache(maxsize=None)
def _own_stage_code() -> bytes:
    return marshal.dumps(compile(STAGE, "<string>", "exec", dont_inherit=True))


def stage_entry(key: Tuple[str, ...], same_interpreter: bool) -> Any:
    """What config['stage'] holds for a `-c` child: STAGE, or (magic, code, STAGE).

    The child runs the code when its magic number matches, else the source.
    """
    if same_interpreter:
        return (MAGIC_NUMBER, _own_stage_code(), STAGE)
    cached = _stage_cache.get(key)
    if cached is not None:
        return (cached[0], cached[1], STAGE)
    return STAGE


def frame(config: Dict[str, Any], with_bundle: bool) -> bytes:
    """The one frame the first stage reads: length, then marshal'd (config, bundle).

    With config['own'], the code it indexes is written right after the frame.
    """
    body = marshal.dumps((config, bundle() if with_bundle else b""), _MARSHAL_VERSION)
    return len(body).to_bytes(4, "big") + body


# The first stage. It runs on every supported interpreter (CPython 3.8+, PyPy3), so it
# uses nothing newer. `R(n)` reads exactly n bytes; the prefix defines it and the
# channel-layer IO for the transport (stdio pipes or the socket a server accepted).
_STDIO_PREFIX = """\
import os,sys,marshal
def R(n):
    b=b''
    while len(b)<n:
        c=os.read(0,n-len(b))
        if not c:raise SystemExit('execnet bootstrap: input closed before the bundle arrived')
        b+=c
    return b
def W(b):
    while b:b=b[os.write(1,b):]
def IO(C,m):return C.StdioIO.from_process(m)
X=True
"""

# A socket server execs this with the accepted socket bound to `clientsock` (an
# execnet_channel.TLSConnection behind a TLS server); the server may be execnet 2.1.2's, which keeps
# running after we return: no exit. Such a server may also have read past the source
# line, so the client sends the frame only once this code asks for it (SEND_BUNDLE).
SEND_BUNDLE: Final = b"\x00execnet-send-bundle\x00"
_SOCKET_PREFIX = """\
import os,sys,marshal
clientsock.sendall(SEND_BUNDLE)
def R(n):
    b=b''
    while len(b)<n:
        c=clientsock.recv(n-len(b))
        if not c:raise EOFError('execnet bootstrap: connection closed before the bundle arrived')
        b+=c
    return b
W=clientsock.sendall
def IO(C,m):
    T=C.TLSSocketIO if hasattr(clientsock,'getpeercert') else C.SocketIO
    return T(clientsock,m)
X=False
""".replace("SEND_BUNDLE", repr(SEND_BUNDLE))

_READ = """\
c,m=marshal.loads(R(int.from_bytes(R(4),'big')))
"""

# A `-c` child runs the rest from the config: the code object when it is for this
# interpreter (compiling STAGE here would cost about as much as the rest of the start).
_RUN_STAGE = """\
s=c.pop('stage')
if type(s) is tuple:
    try:
        import _frozen_importlib_external as E
        s=marshal.loads(s[1]) if s[0]==E.MAGIC_NUMBER else s[2]
    except Exception:s=s[2]
exec(s)
"""

_PATHS = """\
for p in c['path']:
    if p not in sys.path:sys.path.append(p)
"""

# Installs the modules of bundle `m` (if any) as an import finder. The code objects it
# compiles collect in D (and stay there: a module imported later, execnet_channel.aio,
# compiles into it too); c['code'] may bring them from an earlier child of the same
# interpreter (used only if the bytecode magic number M matches).
INSTALL = """\
D={}
M=None
if m:
    import zlib
    from importlib.machinery import ModuleSpec
    try:
        import _frozen_importlib_external as E;M=E.MAGIC_NUMBER
    except Exception:pass
    S={n:(p,s) for n,p,s in marshal.loads(zlib.decompress(m))}
    K=c.get('code')
    if K and M and K[0]==M:D=marshal.loads(K[1])
    def F(n):return '<execnet bundle>/'+n.replace('.','/')+('/__init__.py' if S[n][0] else '.py')
    class L:
        @classmethod
        def find_spec(k,n,p=None,t=None):
            if n in S:return ModuleSpec(n,k,origin=F(n),is_package=S[n][0])
        @classmethod
        def create_module(k,s):return None
        @classmethod
        def exec_module(k,o):
            n=o.__name__
            if n not in D:D[n]=compile(S[n][1],F(n),'exec')
            exec(D[n],o.__dict__)
        @classmethod
        def get_source(k,n):return S[n][1]
    sys.meta_path.insert(0,L)
    del m
"""

# This very interpreter: c['own'] = (magic, {name: (path, start, end)}, length), the
# code itself follows the frame (read in any case: it must not reach the protocol).
# The modules import from their files (spec, __file__, __path__ as usual) but each
# one's code comes from here, once; anything else (a reload, a module imported later)
# comes from the files. The code is dropped once the start is over.
_OWN = """\
O=c.pop('own',None)
h=None
if O:
    Q=memoryview(R(O[2]))
    try:
        import _frozen_importlib_external as E,_imp
        if O[0]==E.MAGIC_NUMBER:
            O=O[1]
            class G(E.SourceFileLoader):
                def get_code(k,n):
                    o=O.pop(n,None) if O else None
                    if o is None or o[0]!=k.path:return super().get_code(n)
                    x=marshal.loads(Q[o[1]:o[2]]);_imp._fix_co_filename(x,o[0]);return x
            class h:
                @classmethod
                def find_spec(k,n,p=None,t=None):
                    o=O.get(n)
                    if o:return E.spec_from_file_location(n,o[0],loader=G(n,o[0]))
            sys.meta_path.insert(0,h)
    except Exception:h=None
"""

# env: is applied before the import (EXECNET_DEBUG is read then), chdir after it (a
# module in the new directory must not shadow ours). serve() closes the protocol's
# write end when it ends (the opener sees the end now, not after this interpreter's
# shutdown: atexit, threads, module teardown); the close here covers a serve() that
# failed to start. The cyclic garbage collector is paused for the import: what it
# makes (modules, classes, functions) stays alive, so its runs there would find
# nothing to free (~0.6 ms of a start).
_START = """\
os.environ.update(c['env'])
import gc
g=gc.isenabled()
gc.disable()
try:import execnet_channel as C
finally:
    if g:gc.enable()
if h:sys.meta_path.remove(h)
O=Q=None
if c['nice']:os.nice(int(c['nice']))
if c['chdir']:
    os.makedirs(c['chdir'],exist_ok=True)
    os.chdir(c['chdir'])
e=C.get_execmodel(c['execmodel'])
if c.get('want_code'):
    if not(M and D):M=Z=b''
    else:Z=marshal.dumps(D)
    s=marshal.dumps(sys._getframe().f_code) if M else b''
    W(c['marker']+bytes([len(M)])+M+len(Z).to_bytes(4,'big')+Z+len(s).to_bytes(4,'big')+s)
else:W(c['marker'])
i=IO(C,e)
try:C.serve(i,c['id'],exit_process=X,max_frame=c.get('max_frame'))
finally:
    if X:i.close_write()
"""

# What a `-c` child runs after reading the frame (see _RUN_STAGE).
STAGE: Final = _PATHS + INSTALL + _OWN + _START


def first_stage(kind: str) -> str:
    """The first-stage program for `kind` 'stdio' (popen, ssh, vagrant, via) or 'socket'.

    'stdio' is the short `-c` program that reads the frame and runs config['stage']
    (see stage_entry); 'socket' is the whole stage as source.
    """
    if kind == "stdio":
        return _STDIO_PREFIX + _READ + _RUN_STAGE
    if kind == "socket":
        return _SOCKET_PREFIX + _READ + STAGE
    raise ValueError(f"unknown first stage kind {kind!r}")


def read_until_marker(read_some: Callable[[int], bytes], marker: bytes) -> bytes:
    """Read through the marker and return what came before it (interpreter noise).

    Never reads past the marker: while the buffer ends with k bytes of the marker's
    start, the marker cannot end sooner than len(marker) - k bytes later, so that is
    what is asked for. Raises EOFError, carrying the noise, if the stream ends first.
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
