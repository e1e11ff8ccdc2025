"""The bootstrap's parts: the bundle, the in-memory installer, the marker reader."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
import zlib
from pathlib import Path

import parts
import pytest

from execnet_transport import TRAVELLING_PACKAGES
from execnet_transport._bootstrap import (
    first_stage,
    frame,
    new_marker,
    read_until_marker,
    stage_source,
)
from execnet_transport._bundle import bundle, package_modules


def test_travelling_packages_in_order() -> None:
    assert TRAVELLING_PACKAGES == ("execnet_serial", "execnet_channel")


def test_bundle_holds_the_installed_sources_in_declared_order() -> None:
    modules = marshal.loads(zlib.decompress(bundle()))
    names = [name for name, _, _ in modules]
    assert names[0] == "execnet_serial"  # each package's __init__ first, then its modules
    first_channel = names.index("execnet_channel")
    assert all(name.startswith("execnet_serial") for name in names[:first_channel])
    assert all(name.startswith("execnet_channel") for name in names[first_channel:])
    import execnet_channel

    init = Path(str(execnet_channel.__file__)).read_text(encoding="utf-8")
    assert ("execnet_channel", True, init) in modules


def _make_package(root: Path) -> None:
    pkg = root / "travelpkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from ._impl import value\nfrom .sub import deep\n")
    (pkg / "_impl.py").write_text("value = 42\n")
    (pkg / "sub" / "__init__.py").write_text("from ..sub.leaf import deep\n")
    (pkg / "sub" / "leaf.py").write_text("def deep():\n    raise RuntimeError('boom from leaf')\n")


def test_package_modules_walks_subpackages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _make_package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    modules = package_modules("travelpkg")
    assert [(name, is_pkg) for name, is_pkg, _ in modules] == [
        ("travelpkg", True),
        ("travelpkg._impl", False),
        ("travelpkg.sub", True),
        ("travelpkg.sub.leaf", False),
    ]


# Installs a bundle read from stdin with the second stage's install_bundle, in an empty
# directory (nothing to import from disk), then uses the package: relative imports,
# tracebacks with source lines.
_CHECK = (
    "import sys,traceback\n"
    f"stage={{}}\nexec({stage_source()!r},stage)\n"
    "stage['install_bundle'](sys.stdin.buffer.read(),None)\n"
    "import travelpkg\n"
    "assert 'travelpkg' in sys.modules and not hasattr(travelpkg, '__file__')\n"
    "try:\n    travelpkg.deep()\n"
    "except RuntimeError:\n    tb=traceback.format_exc()\n"
    "leaf='<execnet bundle>/travelpkg/sub/leaf.py'\n"
    "print(travelpkg.value, 'raise RuntimeError' in tb, leaf in tb)\n"
)


@pytest.mark.parametrize("target", parts.TRAVELLING_TARGETS)
def test_installer_runs_on_every_target(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = parts.target_interpreter(target)
    _make_package(tmp_path / "src")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    data = bundle(("travelpkg",))
    empty = tmp_path / "empty"
    empty.mkdir()
    out = subprocess.run(
        [python, "-c", _CHECK], input=data, capture_output=True, cwd=empty, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.split() == [b"42", b"True", b"True"]


@pytest.mark.parametrize("target", parts.TRAVELLING_TARGETS)
def test_first_stage_compiles_on_every_target(target: str) -> None:
    python = parts.target_interpreter(target)
    for kind in ("stdio", "socket"):
        code = f"compile({first_stage(kind)!r}, 'stage', 'exec')"
        subprocess.run([python, "-c", code], check=True, timeout=60)


def test_first_stage_kind_is_checked() -> None:
    with pytest.raises(ValueError, match="'pipe'"):
        first_stage("pipe")


def test_frame_is_length_prefixed() -> None:
    data = frame({"id": "gw0"}, with_bundle=False)
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    assert marshal.loads(data[4:]) == ({"id": "gw0"}, b"")


def _reader(data: bytes, reads: list[int]):  # type: ignore[no-untyped-def]
    position = 0

    def read_some(n: int) -> bytes:
        nonlocal position
        reads.append(n)
        chunk = data[position : position + n]
        position += len(chunk)
        return chunk

    return read_some


@pytest.mark.parametrize(
    "noise",
    [b"", b"hello from sitecustomize\n", b"\x00execnet-ready-", b"x" * 10000, b"\x00\x00\x00"],
)
def test_marker_reader_discards_noise_and_never_overreads(noise: bytes) -> None:
    marker = new_marker()
    reads: list[int] = []
    read_some = _reader(noise + marker + b"PROTOCOL", reads)
    assert read_until_marker(read_some, marker) == noise
    assert read_some(100) == b"PROTOCOL"


def test_marker_reader_eof_carries_the_noise() -> None:
    with pytest.raises(EOFError) as info:
        read_until_marker(_reader(b"Traceback...", []), new_marker())
    assert info.value.args[0] == b"Traceback..."


def test_markers_differ() -> None:
    assert new_marker() != new_marker()
    assert os.sep not in new_marker().decode()
    assert sys.version_info >= (3, 8)


def test_first_child_of_a_command_line_imports_bundle_modules_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first child of a command line sends its compiled code back (want_code); a
    # module of the bundle it imports only later (here the output forwarding's) must
    # still load from the bundle's finder afterwards.
    from execnet_transport import XSpec, _bootstrap, make_gateway

    monkeypatch.setattr(_bootstrap, "_compiled", {})
    gw = make_gateway(XSpec(f"popen//id=lazy//python={parts.other_interpreter()}"))
    try:
        ch = gw.remote_exec(
            "import sys; assert 'execnet_channel._output' not in sys.modules\n"
            "import execnet_channel._output as o; channel.send(o.__name__)"
        )
        assert ch.receive(30) == "execnet_channel._output"
    finally:
        gw.exit()
        gw.join(30)
        gw.wait_child(30)
