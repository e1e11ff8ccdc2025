"""The benchmark runner works end to end (a quick run, no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import parts

RUN = parts.ROOT / "benchmarks" / "run.py"


def test_quick_run_reports_a_side_that_fails_without_stopping(tmp_path: Path) -> None:
    original = parts.oracle_python()
    without_execnet = parts.interpreter("3.8")  # a plain CPython: `import execnet` fails
    done = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--only", "roundtrip", "--output", str(tmp_path),
         "--original-python", original, "--ours-python", without_execnet],
        capture_output=True, text=True, timeout=100, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["meta"]["quick"] is True
    assert report["meta"]["versions"]["original"]["execnet"] == "2.1.2"
    [entry] = report["results"]
    assert (entry["scenario"], entry["case"]) == ("roundtrip", "roundtrip")
    assert entry["display"] == {"mode": "time", "label": "µs/roundtrip", "better": "lower"}
    assert len(entry["original"]["seconds"]) == 1
    assert entry["original"]["median"] > 0
    assert "No module named 'execnet'" in entry["ours"]["error"]
    assert entry["met"] is False
    results_md = (tmp_path / "RESULTS.md").read_text()
    assert "| roundtrip | roundtrip |" in results_md
    assert "**FAILED**" in results_md
    assert "QUICK run" in results_md
    assert "## Notes" in results_md


def test_targets_are_judged_on_the_ratio_and_the_absolute_figure(run: ModuleType) -> None:
    faster = {"original": run.Side([2.0, 2.2, 1.8], "MiB", 1024.0),
              "ours": run.Side([0.5, 0.6, 0.4], "MiB", 1024.0)}  # fmt: skip
    entry = run.summarize("bulk", "send", faster)
    assert entry["display"]["better"] == "higher"
    assert entry["ratio"] == 4.0  # ours/original rate
    assert entry["ours"]["median"] == 2048.0
    assert entry["met"] is True

    slower = {"original": run.Side([1.0], "MiB", 1024.0), "ours": run.Side([0.5], "MiB", 1024.0)}
    entry = run.summarize("bulk", "send", slower)
    assert entry["ratio"] == 2.0
    assert entry["met"] is False
    assert entry["missed"] == "ratio"

    startup = {"original": run.Side([0.080]), "ours": run.Side([0.030])}
    entry = run.summarize("startup", "popen", startup)
    assert entry["display"]["label"] == "ms"
    assert abs(entry["ratio"] - 0.375) < 1e-9
    assert entry["met"] is False  # 30 ms misses the absolute 25 ms
    assert entry["missed"] == "absolute figure only"


def test_a_kept_notes_section_survives_a_rewrite(tmp_path: Path, run: ModuleType) -> None:
    results_md = tmp_path / "RESULTS.md"
    assert run.kept_notes(results_md).startswith("## Notes")
    results_md.write_text(
        "# old table\n\n| a |\n\n## Notes\n\nprofile: hot spot in _frames.py:12\n"
    )
    assert run.kept_notes(results_md) == "## Notes\n\nprofile: hot spot in _frames.py:12\n"


def _load_profiler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_profile", RUN.parent / "profile.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_profiler_sums_py_spy_stacks_per_process() -> None:
    profile = _load_profiler()
    stage = 'process 12:"python -c import os\ndef R(n):\n    return os.read(0, n)\n"'
    raw = "\n".join(
        [
            'process 11:"python bulk.py --case send";<module> (bulk.py:3);send (_channel.py:9) 6',
            'process 11:"python bulk.py --case send";<module> (bulk.py:3) 2',
            f'process 11:"python bulk.py";{stage};serve (_serve.py:5);decode (_decoder.py:7) 3',
            f'process 11:"python bulk.py";{stage} 1',
        ]
    )
    records = list(profile.records(raw))
    assert [(role, count) for role, _, count in records] == [
        ("local", 6),
        ("local", 2),
        ("remote", 3),
        ("remote", 1),
    ]
    assert records[2][1] == ["serve (_serve.py:5)", "decode (_decoder.py:7)"]
    text = profile.summarize(raw, top=5)
    assert "local process(es): 8 samples" in text
    assert "75.0%  send (_channel.py:9)" in text
    assert "remote process(es): 3 samples" in text  # a stack of process frames only: none
    assert "100.0%  decode (_decoder.py:7)" in text


def test_only_picks_scenarios_and_cases_by_glob(run: ModuleType) -> None:
    assert run.selected(None, "bulk", "send")
    assert run.selected("startup:popen,roundtrip", "startup")
    assert run.selected("startup:popen,roundtrip", "startup", "popen")
    assert not run.selected("startup:popen,roundtrip", "startup", "popen_other")
    assert run.selected("startup:popen,roundtrip", "roundtrip", "roundtrip")
    assert not run.selected("startup:popen", "bulk")
    assert run.selected("b*:re*", "bulk", "receive")
