"""The bootstrap: the first stage on the child's command line and the one frame it reads.

Every gateway starts the same way. The child runs FIRST_STAGE (a `-c` program, or the
source a socket server execs); it reads ONE frame: 4 bytes big-endian length, then a
marshal'd ``(config, bundle)`` where bundle is b"" when the child can import the
installed packages (popen on this very interpreter) or else the zlib-compressed,
marshal'd list of the travelling modules' sources. The child installs those modules in
memory under their real names (an import finder: relative imports work, nothing is
written to disk), applies the options (nice, chdir, env), writes the marker the parent
chose, and enters the serve loop. Noise the interpreter printed before the marker
(a sitecustomize, a .pth file) is discarded by the parent. A child asked for it
(config want_code) sends the code objects it compiled after the marker; the parent
passes them, unread, to the next child of the same command line (config code).
"""

from __future__ import annotations

import marshal
import os
import secrets
import zlib
from functools import lru_cache
from importlib.util import find_spec
from typing import Any, Callable, Dict, Final, List, Optional, Tuple

__all__ = [
    "INSTALL",
    "TRAVELLING_PACKAGES",
    "bundle",
    "first_stage",
    "frame",
    "new_marker",
    "read_until_marker",
]

# The modules that travel to interpreters that cannot import the installed packages,
# in the order they are installed there. Declared here and nowhere else.
TRAVELLING_PACKAGES: Final = ("execnet_serial", "execnet_channel")

# marshal format 2 holds only the plain values we send and is read by every CPython 3
# and PyPy3, whatever their own marshal version.
_MARSHAL_VERSION: Final = 2

Module = Tuple[str, bool, str]  # (dotted name, is a package, source text)


def _package_modules(package: str) -> List[Module]:
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"travelling package {package!r} is not installed as a package")
    root = next(iter(spec.submodule_search_locations))
    found: List[Module] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d.isidentifier())
        relative = os.path.relpath(dirpath, root)
        prefix = package if relative == "." else package + "." + relative.replace(os.sep, ".")
        if "__init__.py" not in filenames:
            continue  # not a package directory (e.g. __pycache__)
        for filename in sorted(filenames, key=lambda f: (f != "__init__.py", f)):
            if not filename.endswith(".py"):
                continue
            stem = filename[:-3]
            is_package = stem == "__init__"
            name = prefix if is_package else f"{prefix}.{stem}"
            with open(os.path.join(dirpath, filename), encoding="utf-8") as source:
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

    The answer: 1 byte n, the n-byte magic number, 4 bytes length, the marshal'd code
    (made by the child's interpreter: never unmarshalled here, only passed on).
    """
    magic = read_exactly(read_exactly(1)[0])
    code = read_exactly(int.from_bytes(read_exactly(4), "big"))
    if magic and code:
        _code_cache[key] = (magic, code)


def frame(config: Dict[str, Any], with_bundle: bool) -> bytes:
    """The one frame the first stage reads: length, then marshal'd (config, bundle)."""
    body = marshal.dumps((config, bundle() if with_bundle else b""), _MARSHAL_VERSION)
    return len(body).to_bytes(4, "big") + body


# The first stage. It runs on every supported interpreter (CPython 3.8+, PyPy3), so it
# uses nothing newer. `R(n)` reads exactly n bytes; the prefix defines it and the
# channel-layer IO for the transport (stdio pipes or the socket a server accepted).
_STDIO_PREFIX = """\
import os,sys
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

# A socket server execs this with the accepted socket bound to `clientsock`; the
# server may be execnet 2.1.2's, which keeps running after we return: no exit. Such a
# server may also have read past the source line, so the client sends the frame only
# once this code asks for it (SEND_BUNDLE).
SEND_BUNDLE: Final = b"\x00execnet-send-bundle\x00"
_SOCKET_PREFIX = """\
import os,sys
clientsock.sendall(SEND_BUNDLE)
def R(n):
    b=b''
    while len(b)<n:
        c=clientsock.recv(n-len(b))
        if not c:raise EOFError('execnet bootstrap: connection closed before the bundle arrived')
        b+=c
    return b
W=clientsock.sendall
def IO(C,m):return C.SocketIO(clientsock,m)
X=False
""".replace("SEND_BUNDLE", repr(SEND_BUNDLE))

_COMMON_READ = """\
import marshal
c,m=marshal.loads(R(int.from_bytes(R(4),'big')))
for p in c['path']:
    if p not in sys.path:sys.path.append(p)
"""

# Installs the modules of bundle `m` (if any) as an import finder. The code objects it
# compiles collect in D; c['code'] may bring them from an earlier child of the same
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

# env: is applied before the import (EXECNET_DEBUG is read then), chdir after it (a
# module in the new directory must not shadow ours). After serve() returns, the
# protocol's write end is closed at once: the opener sees the end now, not after this
# interpreter's shutdown (atexit, threads, module teardown).
_START = """\
os.environ.update(c['env'])
import execnet_channel as C
if c['nice']:os.nice(int(c['nice']))
if c['chdir']:
    os.makedirs(c['chdir'],exist_ok=True)
    os.chdir(c['chdir'])
e=C.get_execmodel(c['execmodel'])
if c.get('want_code'):
    if not(M and D):M=D=b''
    else:D=marshal.dumps(D)
    W(c['marker']+bytes([len(M)])+M+len(D).to_bytes(4,'big')+D)
else:W(c['marker'])
i=IO(C,e)
try:C.serve(i,c['id'],exit_process=X)
finally:
    if X:i.close_write()
"""


def first_stage(kind: str) -> str:
    """The first-stage program for `kind` 'stdio' (popen, ssh, vagrant, via) or 'socket'."""
    if kind == "stdio":
        return _STDIO_PREFIX + _COMMON_READ + INSTALL + _START
    if kind == "socket":
        return _SOCKET_PREFIX + _COMMON_READ + INSTALL + _START
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
