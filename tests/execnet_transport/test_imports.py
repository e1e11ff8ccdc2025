"""Remote import on demand (imports=, Gateway.allow_imports): real remotes that cannot
see the caller's packages import them from the caller.

The remotes are isolated interpreters (``-I -S``: no site-packages, no PYTHONPATH), and
the packages live only in a temporary directory on this process's sys.path.
"""

from __future__ import annotations

import os
import sys
import textwrap
import threading
from pathlib import Path
from typing import Callable, Dict, Iterator

import parts
import pytest
from socketservers import Server
from sshd import SshServer
from syspath import on_sys_path

from execnet_channel import RemoteError
from execnet_transport import Gateway, XSpec, make_gateway

MakeGateway = Callable[..., Gateway]
ISOLATED = f"python={sys.executable} -I -S"
pytestmark = pytest.mark.timeout(180)

PACKAGE: Dict[str, str] = {
    # a package with a subpackage, relative imports, data, and a module of another
    # allowed top-level name it imports
    "shop/__init__.py": """
        from .prices import total
        from . import sub
        from .sub.deep import DEEP
        import helpers
        VALUE = total([1, 2]) + helpers.base()
    """,
    "shop/prices.py": """
        import helpers

        def total(items):
            return sum(items) * helpers.base()

        def fails():
            raise ValueError("raised in prices")
    """,
    "shop/sub/__init__.py": """
        from ..prices import total as _total
        NAME = "sub"
    """,
    "shop/sub/deep.py": """
        DEEP = "deep"
    """,
    "shop/data/greeting.txt": "hello from the caller\n",
    "shop/lazy.py": """
        LAZY = True
    """,
    "shop/_speedups.cpython-311-x86_64-linux-gnu.so": "not really an extension",
    "shop/broken.py": """
        raise RuntimeError("broken at import, on purpose")
    """,
    "shop/badsyntax.py": """
        def (:
    """,
    "helpers.py": """
        def base():
            return 10

        def remote_pid(channel):
            channel.send((base(), os.getpid()))

        import os
    """,
    "nsonly/part/mod.py": """
        from . import other
        VALUE = other.VALUE * 2
    """,
    "nsonly/part/other.py": """
        VALUE = 21
    """,
    "secret/__init__.py": """
        TOKEN = "must not travel"
    """,
}


@pytest.fixture
def packages(tmp_path: Path) -> Iterator[Path]:
    """PACKAGE written to a fresh directory on this process's sys.path (only here)."""
    root = tmp_path / "caller-only"
    for relpath, text in PACKAGE.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    with on_sys_path(root):
        yield root


IMPORT_SHOP = """
import importlib.resources, os, pkgutil, sys
import shop
assert "execnet_channel" in sys.modules
finder = [f for f in sys.meta_path if type(f).__name__ == "RemoteImporter"][0]
if sys.version_info >= (3, 10):  # (3.9's files() knows only directories and zip files)
    text = importlib.resources.files(shop).joinpath("data/greeting.txt").read_text()
    names = sorted(entry.name for entry in importlib.resources.files(shop).iterdir())
else:  # Python 3.8 and 3.9: the reader API
    text = shop.__spec__.loader.get_resource_reader("shop").files().joinpath(
        "data/greeting.txt").read_text()
    names = sorted(importlib.resources.contents(shop))
channel.send((
    shop.VALUE, shop.sub.NAME, shop.DEEP, shop.__file__, shop.sub.__path__, text,
    pkgutil.get_data("shop", "data/greeting.txt"), names, finder.requests,
))
"""


def _check_shop(answer: tuple, gw: Gateway) -> None:  # type: ignore[type-arg]
    value, sub, deep, file, path, text, data, names, requests = answer
    assert (value, sub, deep) == (40, "sub", "deep")
    assert file == f"<execnet:{gw.id}>/shop/__init__.py"
    assert path == [f"<execnet:{gw.id}>/shop/sub"]
    assert text == "hello from the caller\n"
    assert data == b"hello from the caller\n"
    assert "greeting.txt" not in names
    assert "data" in names
    assert "prices.py" in names
    # the package and what it imports came with the first answer: the other three
    # requests are the data file, its listing and pkgutil's read
    assert requests == 4


@pytest.mark.parametrize("model", ["thread", "main_thread_only", "gevent", "eventlet"])
def test_package_imported_in_every_execmodel(
    packages: Path, makegw: MakeGateway, model: str
) -> None:
    # (an isolated interpreter has no gevent or eventlet: those run this interpreter,
    # which does not have the temporary directory on its path either)
    python = ISOLATED if model in ("thread", "main_thread_only") else "python"
    gw = makegw(f"popen//{python}//execmodel={model}//imports=shop,helpers")
    _check_shop(gw.remote_exec(IMPORT_SHOP).receive(30), gw)


def test_remote_cannot_import_without_allowing(packages: Path, makegw: MakeGateway) -> None:
    gw = makegw(f"popen//{ISOLATED}")
    ch = gw.remote_exec("import shop")
    with pytest.raises(RemoteError) as info:
        ch.receive(30)
    assert "No module named 'shop'" in str(info.value)


def test_allow_imports_later_and_tracebacks_show_the_source(
    packages: Path, makegw: MakeGateway
) -> None:
    gw = makegw(f"popen//{ISOLATED}")
    gw.allow_imports("shop")
    gw.allow_imports("helpers")
    ch = gw.remote_exec(
        """
        import traceback, shop.prices
        try:
            shop.prices.fails()
        except ValueError:
            channel.send(traceback.format_exc())
        """
    )
    text = ch.receive(30)
    assert f'File "<execnet:{gw.id}>/shop/prices.py", line 7, in fails' in text
    assert 'raise ValueError("raised in prices")' in text


def test_refusals_name_the_module_and_why(packages: Path, makegw: MakeGateway) -> None:
    gw = makegw(f"popen//{ISOLATED}//imports=shop,helpers")
    ch = gw.remote_exec(
        """
        import importlib
        out = {}
        for name in ("shop._speedups", "shop.nothere", "secret", "shop.broken", "shop.badsyntax"):
            try:
                importlib.import_module(name)
            except BaseException as exc:
                out[name] = (type(exc).__name__, str(exc), getattr(exc, "name", None))
        channel.send(out)
        """
    )
    out = ch.receive(30)
    kind, text, name = out["shop._speedups"]
    assert (kind, name) == ("ImportError", "shop._speedups")
    assert "extension module" in text
    assert "_speedups.cpython-311" in text
    kind, text, name = out["shop.nothere"]
    assert (kind, name) == ("ModuleNotFoundError", "shop.nothere")
    assert "No module named 'shop.nothere'" in text
    assert "cannot find it" in text
    kind, text, name = out["secret"]
    assert (kind, name) == ("ModuleNotFoundError", "secret")  # Python's own: never asked
    # a module whose import fails: the same error class and message as on the caller
    assert out["shop.broken"][:2] == ("RuntimeError", "broken at import, on purpose")
    assert out["shop.badsyntax"][0] == "SyntaxError"
    assert "secret" not in str(gw._import_server._sent)


def test_index_package_from_the_test_environment(makegw: MakeGateway) -> None:
    """sortedcontainers (a pure-Python package from the index, installed only here) in
    a remote without site-packages: the whole package comes in one round trip."""
    import sortedcontainers

    gw = makegw(f"popen//{ISOLATED}//imports=sortedcontainers")
    ch = gw.remote_exec(
        """
        import sys
        from sortedcontainers import SortedDict, SortedList
        import sortedcontainers

        finder = [f for f in sys.meta_path if type(f).__name__ == "RemoteImporter"][0]
        items = SortedList([3, 1, 2])
        channel.send((list(items), list(SortedDict(b=1, a=2)), sortedcontainers.__file__,
                      sortedcontainers.__version__, finder.requests))
        """
    )
    items, keys, file, version, requests = ch.receive(60)
    assert (items, keys) == ([1, 2, 3], ["a", "b"])
    assert file == f"<execnet:{gw.id}>/sortedcontainers/__init__.py"
    assert version == sortedcontainers.__version__
    assert requests == 1
    assert gw._import_server.requests == 1


def test_remote_exec_of_a_function_in_an_allowed_module(
    packages: Path, makegw: MakeGateway
) -> None:
    import helpers  # type: ignore[import-not-found]

    try:
        gw = makegw(f"popen//{ISOLATED}//imports=helpers")
        base, pid = gw.remote_exec(helpers.remote_pid).receive(30)
        assert base == 10
        assert pid != os.getpid()
    finally:
        del sys.modules["helpers"]


def test_namespace_package(packages: Path, makegw: MakeGateway) -> None:
    gw = makegw(f"popen//{ISOLATED}//imports=nsonly")
    ch = gw.remote_exec(
        """
        import nsonly.part.mod
        channel.send((nsonly.part.mod.VALUE, list(nsonly.__path__), nsonly.part.mod.__file__))
        """
    )
    value, path, file = ch.receive(30)
    assert value == 42
    assert path == [f"<execnet:{gw.id}>/nsonly"]
    assert file == f"<execnet:{gw.id}>/nsonly/part/mod.py"


def test_two_threads_importing_one_module_make_one_request(
    packages: Path, makegw: MakeGateway
) -> None:
    gw = makegw(f"popen//{ISOLATED}//imports=shop,helpers")
    ch = gw.remote_exec(
        """
        import importlib.util, sys, threading
        barrier = threading.Barrier(2)
        specs = []

        def find():
            barrier.wait(10)
            specs.append(importlib.util.find_spec("helpers"))

        threads = [threading.Thread(target=find) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        finder = [f for f in sys.meta_path if type(f).__name__ == "RemoteImporter"][0]
        channel.send((len(specs), finder.requests))
        """
    )
    assert ch.receive(30) == (2, 1)
    assert gw._import_server.requests == 1


def test_import_in_a_callback_is_refused_not_deadlocked(
    packages: Path, makegw: MakeGateway
) -> None:
    gw = makegw(f"popen//{ISOLATED}//imports=helpers")
    ch = gw.remote_exec(
        """
        import threading
        done = threading.Event()
        result = []
        def callback(item):
            try:
                import helpers
                result.append("imported")
            except ImportError as exc:
                result.append(str(exc))
            done.set()
        inner = channel.gateway.newchannel()
        inner.setcallback(callback)
        channel.send(inner)
        done.wait(30)
        channel.send(result)
        """
    )
    inner = ch.receive(30)
    inner.send(1)
    (text,) = ch.receive(30)
    assert "receiver (a channel callback)" in text
    assert "'helpers'" in text


def test_bad_imports_values_are_refused_before_start(makegw: MakeGateway) -> None:
    with pytest.raises(ValueError, match="imports= in gateway spec"):
        make_gateway(XSpec("popen//id=bad//imports=pkg.sub"))
    with pytest.raises(ValueError, match="imports= in gateway spec"):
        make_gateway(XSpec("popen//id=bad//imports"))
    gw = makegw("popen")
    with pytest.raises(ValueError, match="not a top-level package"):
        gw.allow_imports("../etc")


def test_over_ssh_on_another_interpreter(
    packages: Path, makegw: MakeGateway, sshd: SshServer
) -> None:
    other = parts.other_interpreter()
    gw = makegw(
        f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}//python={other} -I -S"
        "//imports=shop,helpers"
    )
    _check_shop(gw.remote_exec(IMPORT_SHOP).receive(60), gw)


def test_via_another_gateway(packages: Path, makegw: MakeGateway) -> None:
    proxy = makegw(f"popen//{ISOLATED}")
    gw = makegw(f"popen//{ISOLATED}//via={proxy.id}//imports=shop,helpers", via=proxy)
    _check_shop(gw.remote_exec(IMPORT_SHOP).receive(60), gw)
    # the proxy serves nothing and was never asked
    assert proxy._import_server is None


def test_over_a_socket(servers: Callable[..., Server], packages: Path, makegw: MakeGateway) -> None:
    # (servers first: its teardown runs after makegw's, once the gateway has ended)
    server = servers()
    gw = makegw(f"socket={server.address}//imports=shop,helpers")
    _check_shop(gw.remote_exec(IMPORT_SHOP).receive(60), gw)


def test_pypy_remote(packages: Path, makegw: MakeGateway) -> None:
    gw = makegw(f"popen//python={parts.pypy3()} -I -S//imports=shop,helpers")
    _check_shop(gw.remote_exec(IMPORT_SHOP).receive(60), gw)


def test_oldest_cpython_remote(packages: Path, makegw: MakeGateway) -> None:
    gw = makegw(f"popen//python={parts.interpreter('3.8')} -I -S//imports=shop,helpers")
    _check_shop(gw.remote_exec(IMPORT_SHOP).receive(60), gw)


def test_threads_importing_at_once(packages: Path, makegw: MakeGateway) -> None:
    gw = makegw(f"popen//{ISOLATED}//imports=shop,helpers")
    results = []
    lock = threading.Lock()

    def run() -> None:
        value = gw.remote_exec("import shop; channel.send(shop.VALUE)").receive(30)
        with lock:
            results.append(value)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [40] * 4
