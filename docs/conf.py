"""Sphinx configuration of the execnet documentation site (`hatch run docs:build`)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "execnet"
author = "the execnet rebuild's authors"
copyright = "2026, " + author

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.graphviz",
    "sphinxarg.ext",
    "execnet_docs",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "CONTRACTS.md", "README.md"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = "execnet"
html_static_path: list[str] = []

autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_default_options: dict[str, bool] = {}
graphviz_output_format = "svg"

nitpicky = False
