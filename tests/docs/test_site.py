"""The documentation site builds without a warning and works as a site in a browser."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from docs_examples import DOCS

sys.path.insert(0, str(DOCS / "_ext"))
import execnet_docs

from execnet_transport import XSpec

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built as `hatch run docs:build` builds it (warnings are errors)."""
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(out / "doctrees"),
            str(DOCS),
            str(out / "html"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"the site did not build:\n{done.stdout}\n{done.stderr}"
    return out / "html"


def _dom(url: str) -> str:
    """The page's DOM after its scripts ran, from headless Chromium."""
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (Debian package 'chromium')")
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.timeout(900)
def test_index_page_opens_in_a_browser(site: Path) -> None:
    dom = _dom((site / "index.html").as_uri())
    assert "<title>execnet" in dom
    assert 'href="quickstart.html"' in dom


@pytest.mark.timeout(900)
def test_search_finds_makegateway(site: Path) -> None:
    dom = _dom((site / "search.html").as_uri() + "?q=makegateway")
    assert "Search finished" in dom
    # The reference entry of the function itself, not only pages that mention it.
    assert "execnet-group.html#execnet_group.makegateway" in dom


@pytest.mark.timeout(900)
def test_reference_documents_every_public_name(site: Path) -> None:
    import importlib

    for package in ("serial", "channel", "transport", "group", "rsync"):
        module = importlib.import_module(f"execnet_{package}")
        page = (site / "reference" / f"execnet-{package}.html").read_text(encoding="utf-8")
        missing = [
            name
            for name in module.__all__
            if f'id="execnet_{package}.{name}"' not in page and not name.startswith("__")
        ]
        assert not missing, f"execnet_{package}: not on its reference page: {missing}"


@pytest.mark.timeout(900)
def test_command_line_reference_is_generated(site: Path) -> None:
    page = (site / "cli.html").read_text(encoding="utf-8")
    for command in ("info", "exec", "rsync", "serve"):
        assert command in page
    assert "exit codes" in page


def test_spec_key_table_names_every_key() -> None:
    documented = {
        key for cell, _ in execnet_docs.spec_key_rows() for key in execnet_docs.keys_in_cell(cell)
    }
    from execnet_transport import _xspec  # the list of keys, for this check only

    assert set(_xspec.KNOWN_KEYS) - documented == set(), "keys XSpec knows, the table lacks"
    assert "env" in documented
    assert XSpec("popen//max_frame=1M").max_frame == "1M"


@pytest.mark.timeout(900)
def test_performance_page_shows_the_peer_table(site: Path) -> None:
    import json

    results = json.loads(execnet_docs.RESULTS.read_text(encoding="utf-8"))
    page = (site / "performance.html").read_text(encoding="utf-8")
    for _, label in execnet_docs.PEER_COLUMNS:
        assert label in page
    for case in results["peers"]:
        assert f"<td><p>{case['case']}</p></td>" in page
        fork = case["sides"]["ours-fork"]["median"]
        assert execnet_docs._figure(fork) in page  # the figure of the file, as drawn


def test_peer_table_says_so_when_a_results_file_has_no_peers() -> None:
    assert "No peer run" in execnet_docs.peers_markdown({"meta": {}, "results": []})


def test_layer_graph_follows_the_packages_dependencies() -> None:
    deps = execnet_docs.package_dependencies()
    assert deps["execnet-serial"] == []
    assert deps["execnet-channel"] == ["execnet-serial"]
    assert "execnet-channel" in deps["execnet-transport"]
    dot = execnet_docs.layer_dot(deps)
    assert '"execnet-channel" -> "execnet-serial";' in dot


@pytest.mark.timeout(900)
def test_reference_documents_the_asyncio_modules(site: Path) -> None:
    import importlib

    page = (site / "reference" / "aio.html").read_text(encoding="utf-8")
    for name in execnet_docs.AIO_MODULES:
        module = importlib.import_module(name)
        own = [n for n in module.__all__ if getattr(module, n).__module__ == name]
        assert own, name
        missing = [n for n in own if f'id="{name}.{n}"' not in page]
        assert not missing, f"{name}: not on the asyncio reference page: {missing}"
