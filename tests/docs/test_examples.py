"""Every code example of the documentation site runs, against real gateways."""

from __future__ import annotations

import gc
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict

import pytest
from docs_examples import DOCS, SSH_PLACEHOLDER, Block, blocks, console_commands, pages

import execnet

PAGES = [page for page in pages() if any(True for _ in blocks(page))]


def _needs_ssh(page: Path) -> bool:
    return SSH_PLACEHOLDER in page.read_text(encoding="utf-8")


def _run_python(block: Block, namespace: Dict[str, Any], ssh_spec: str | None) -> None:
    code = textwrap.dedent(block.code)  # a block inside a list item is indented
    if ssh_spec is not None:
        code = code.replace(SSH_PLACEHOLDER, ssh_spec)
    # Line numbers in a failure point at the page: pad with the lines before the block.
    source = "\n" * (block.line - 1) + code
    exec(compile(source, str(block.page), "exec"), namespace)


def _run_console(block: Block, ssh_spec: str | None) -> None:
    for written in console_commands(block):
        command = written if ssh_spec is None else written.replace(SSH_PLACEHOLDER, ssh_spec)
        argv = shlex.split(command)
        if argv[0] == "execnet":
            argv = [sys.executable, "-m", "execnet", *argv[1:]]
        elif argv[0] == "python":
            argv[0] = sys.executable
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (
            f"{block.page}:{block.line}: `{command}` exited {done.returncode}\n"
            f"{done.stdout}\n{done.stderr}"
        )


@pytest.mark.timeout(300)
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_examples_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    ssh_spec = None
    if _needs_ssh(page):
        sshd = request.getfixturevalue("sshd")
        ssh_spec = f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}"
    monkeypatch.chdir(tmp_path)
    namespace: Dict[str, Any] = {"__name__": "__docs_example__"}
    try:
        for block in blocks(page):
            if block.language == "python":
                _run_python(block, namespace, ssh_spec)
            else:
                _run_console(block, ssh_spec)
    finally:
        for value in list(namespace.values()):
            if isinstance(value, execnet.Group) and value is not execnet.default_group:
                value.terminate(timeout=10)
        execnet.default_group.terminate(timeout=10)
        namespace.clear()
        gc.collect()  # what the page left unclosed warns here, in its own test


def test_every_page_with_code_is_collected() -> None:
    assert {p.name for p in PAGES} >= {"index.md", "quickstart.md"}


def test_blocks_parse_as_python() -> None:
    for page in pages():
        for block in blocks(page):
            if block.language == "python":
                compile(textwrap.dedent(block.code), f"{page}:{block.line}", "exec")


def test_console_commands_are_run_and_installs_are_not() -> None:
    block = Block(
        DOCS / "x.md", 1, "console", "$ pip install execnet\n$ execnet info popen\noutput\n"
    )
    assert console_commands(block) == ["execnet info popen"]


def test_no_example_names_a_real_host() -> None:
    # Examples reach ssh hosts only through the placeholder the tests replace.
    for page in pages():
        for block in blocks(page):
            for word in block.code.split():
                assert not (
                    word.strip("\"'(").startswith("ssh=") and SSH_PLACEHOLDER not in word
                ), f"{page}:{block.line}: ssh example without {SSH_PLACEHOLDER!r}: {word}"
