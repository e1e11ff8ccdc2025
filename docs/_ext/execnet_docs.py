"""Pages made at build time, so nothing on the site is copied by hand and can drift.

- docs/_generated/spec_keys.md: the table of every gateway spec key, read from the
  table in packages/execnet-transport/README.md (the one place keys are described; a
  test checks it names every key ``XSpec`` knows), included by the gateways guide.
- docs/_generated/benchmarks.md and bench-*.svg: one chart per benchmark scenario from
  benchmarks/results.json (matplotlib), ours against execnet 2.1.2, with the machine
  and the date of the run, included by the performance page.
- the ``layer-graph`` directive: the packages and their one-way dependencies, read from
  each package's pyproject.toml and drawn by graphviz.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.application import Sphinx
from sphinx.ext.graphviz import graphviz

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
TRANSPORT_README = ROOT / "packages" / "execnet-transport" / "README.md"
RESULTS = ROOT / "benchmarks" / "results.json"
SPEC_KEY_HEADER = "| key | transports | meaning |"


def spec_key_rows(readme: Path = TRANSPORT_README) -> List[Tuple[str, str]]:
    """The (key, the other cells) rows of the README's spec-key table (the one headed
    ``| key | transports | meaning |``; the other cells joined by `` | ``)."""
    rows: List[Tuple[str, str]] = []
    in_table = False
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith(SPEC_KEY_HEADER):
            in_table = True
            continue
        if in_table:
            if not line.startswith("|"):
                break
            cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
            if set(cells[0]) <= {"-", " "}:
                continue
            rows.append((cells[0], " | ".join(cells[1:])))
    if not rows:
        raise ValueError(f"no '{SPEC_KEY_HEADER}' table in {readme}")
    return rows


def keys_in_cell(cell: str) -> List[str]:
    """The key names a table cell documents: `` `tls_cert=PATH`, `tls_key=PATH` `` -> both."""
    return [re.split(r"[=:]", code, maxsplit=1)[0] for code in re.findall(r"`([^`]+)`", cell)]


def spec_keys_markdown() -> str:
    """The spec-key table as markdown, for ``{include}``."""
    lines = [SPEC_KEY_HEADER, "|---|---|---|"]
    lines += [f"| {key} | {meaning} |" for key, meaning in spec_key_rows()]
    return "\n".join(lines) + "\n"


def package_dependencies(packages: Path = ROOT / "packages") -> Dict[str, List[str]]:
    """Each package's name -> the names of the workspace packages it depends on."""
    names: Dict[str, List[str]] = {}
    for pyproject in sorted(packages.glob("*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        names[project["name"]] = list(project.get("dependencies", []))
    return {
        name: sorted(other for other in names if any(re.match(rf"{other}\b(?!-)", d) for d in deps))
        for name, deps in names.items()
    }


def layer_dot(dependencies: Dict[str, List[str]]) -> str:
    """Graphviz source: a box per package, an arrow from each package to what it uses."""
    travelling = {"execnet-serial", "execnet-channel"}
    lines = [
        "digraph layers {",
        '  rankdir=BT; node [shape=box, style="rounded,filled", fontname="sans-serif"];',
        '  edge [color="#555555"];',
    ]
    for name in dependencies:
        colour = "#d8ecff" if name in travelling else "#f2f2f2"
        lines.append(f'  "{name}" [fillcolor="{colour}"];')
    lines.append(
        '  subgraph cluster_travel { label="travels to every remote interpreter"; '
        'style=dashed; "execnet-serial"; "execnet-channel"; }'
    )
    for name, uses in dependencies.items():
        lines += [f'  "{name}" -> "{other}";' for other in uses]
    lines.append("}")
    return "\n".join(lines)


class LayerGraph(Directive):
    """``.. layer-graph::`` — the packages as a graph drawn by graphviz."""

    def run(self) -> List[nodes.Node]:
        node = graphviz()
        node["code"] = layer_dot(package_dependencies())
        node["options"] = {"docname": self.state.document.settings.env.docname}
        node["alt"] = "the six packages and their one-way dependencies"
        return [node]


def chart_results(results: Dict[str, Any]) -> List[Tuple[str, List[Dict[str, Any]]]]:
    """The runner's results grouped by scenario, skipping cases one side did not run."""
    scenarios: Dict[str, List[Dict[str, Any]]] = {}
    for row in results["results"]:
        if "median" in row.get("original", {}) and "median" in row.get("ours", {}):
            scenarios.setdefault(row["scenario"], []).append(row)
    return sorted(scenarios.items())


def draw_charts(results: Dict[str, Any], outdir: Path) -> List[Tuple[str, str]]:
    """One SVG per scenario in *outdir*; returns (scenario, file name) pairs."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    outdir.mkdir(parents=True, exist_ok=True)
    made = []
    for scenario, rows in chart_results(results):
        labels = [
            f"{row['case']}\n({row['display']['label']}, {row['display']['better']})"
            for row in rows
        ]
        figure, axes = pyplot.subplots(
            1, len(rows), figsize=(2.6 * len(rows) + 0.6, 3.0), squeeze=False
        )
        for ax, row, label in zip(axes[0], rows, labels):
            values = [row["original"]["median"], row["ours"]["median"]]
            bars = ax.bar(["2.1.2", "ours"], values, color=["#b0b0b0", "#2f7ed8"])
            ax.bar_label(bars, fmt="%.3g", fontsize=8)
            ax.set_title(label, fontsize=9)
            ax.tick_params(labelsize=8)
            ax.margins(y=0.2)
        figure.suptitle(scenario, fontsize=11)
        figure.tight_layout()
        name = f"bench-{scenario}.svg"
        figure.savefig(outdir / name, metadata={"Date": None})
        pyplot.close(figure)
        made.append((scenario, name))
    return made


def benchmarks_markdown(results: Dict[str, Any], made: List[Tuple[str, str]]) -> str:
    """The machine, the date and the charts, as markdown for ``{include}``."""
    meta = results["meta"]
    machine = meta["machine"]
    text = [
        f"Run of {meta['date']} ({meta['ours']}) on {machine['nproc']} CPUs "
        f"({machine['cpu']}, {machine['ram_gib']} GiB, Linux {machine['kernel']}), load "
        f"average {machine['loadavg_start'][0]:.2f} at the start; {meta['rounds']} fresh "
        "processes per side and case, alternating; bars are medians.",
        "",
    ]
    for scenario, name in made:
        text += [f"![{scenario}: execnet 2.1.2 and ours]({name})", ""]
    return "\n".join(text)


PEER_COLUMNS = (
    ("original", "execnet 2.1.2"),
    ("ours", "ours"),
    ("ours-fork", "ours (fork)"),
    ("mitogen-local", "mitogen local"),
    ("mitogen-fork", "mitogen fork"),
    ("rpyc", "rpyc classic"),
)


def _figure(value: float) -> str:
    """Three significant digits, whole numbers (with thousands separators) from 100."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def peers_markdown(results: Dict[str, Any]) -> str:
    """The peer cases (medians of every side) as a markdown table, with their run."""
    peers = results.get("peers") or []
    if not peers:
        return "No peer run in this results file.\n"
    meta = results.get("peers_meta") or results["meta"]
    head = "| case | figure | " + " | ".join(label for _, label in PEER_COLUMNS) + " |"
    lines = [
        f"Run of {meta['date']} ({meta['ours']}); medians of {meta['rounds']} fresh "
        "processes per side, the sides taking turns.",
        "",
        head,
        "|" + "---|" * (len(PEER_COLUMNS) + 2),
    ]
    for case in peers:
        display = case["display"]
        cells = []
        for key, _ in PEER_COLUMNS:
            median = case["sides"].get(key, {}).get("median")
            cells.append("n/a" if median is None else _figure(median))
        figure = f"{display['label']}, {display['better']} is better"
        lines.append(f"| {case['case']} | {figure} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def generate(app: Sphinx) -> None:
    """Write docs/_generated/: the spec-key table, the benchmark charts and their page part."""
    outdir = Path(app.srcdir) / "_generated"
    outdir.mkdir(exist_ok=True)
    _write(outdir / "spec_keys.md", spec_keys_markdown())
    for package in PACKAGES + AIO_MODULES:
        _write(outdir / f"api_{package}.rst", api_rst(package))
    _write(outdir / "api_execnet.rst", umbrella_rst())
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    made = draw_charts(results, outdir)
    _write(outdir / "benchmarks.md", benchmarks_markdown(results, made))
    _write(outdir / "peers.md", peers_markdown(results))


PACKAGES = (
    "execnet_serial",
    "execnet_channel",
    "execnet_transport",
    "execnet_group",
    "execnet_rsync",
)
AIO_MODULES = ("execnet_channel.aio", "execnet_group.aio", "execnet_rsync.aio")


def api_rst(package: str) -> str:
    """reStructuredText documenting every name in *package*'s ``__all__`` (autodoc).

    Listed one by one rather than by ``automodule :members:``: some names are loaded
    lazily by the package's ``__getattr__`` (so remote interpreters do not pay for them)
    and autodoc's member scan would not see them.
    """
    import importlib
    import inspect

    module = importlib.import_module(package)
    documented = set(PACKAGES + AIO_MODULES)
    lines = []
    for name in module.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(module, name)
        home = getattr(obj, "__module__", None)
        if home in documented and home != package:
            continue  # a re-export: documented on its home module's page
        target = f"{package}.{name}"
        if inspect.isclass(obj):
            lines += [f".. autoclass:: {target}", "   :members:", "   :show-inheritance:", ""]
        elif callable(obj):
            lines += [f".. autofunction:: {target}", ""]
        else:
            lines += [f".. autodata:: {target}", "   :no-value:", ""]
    return "\n".join(lines)


def umbrella_rst() -> str:
    """The names ``execnet`` exports, each linked to where it is documented."""
    import execnet

    homes = execnet._HOMES
    lines = [".. list-table::", "   :header-rows: 1", "", "   * - name", "     - documented as"]
    for name in sorted(homes):
        lines += [f"   * - ``execnet.{name}``", f"     - :py:obj:`{homes[name]}.{name}`"]
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    # Unchanged files keep their time stamp, so Sphinx does not reread every page.
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def skip_class_aliases(  # noqa: PLR0917  (the signature Sphinx calls)
    app: Sphinx, what: str, name: str, obj: Any, skip: bool, options: Any
) -> Optional[bool]:
    """Skip a class attribute that is another top-level class (``Channel.RemoteError``):
    it is documented where it is defined, and twice would be a duplicate."""
    if what == "class" and isinstance(obj, type) and "." not in obj.__qualname__:
        return True
    return None


def setup(app: Sphinx) -> Dict[str, Any]:
    app.connect("builder-inited", generate)
    app.connect("autodoc-skip-member", skip_class_aliases)
    app.add_directive("layer-graph", LayerGraph)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
