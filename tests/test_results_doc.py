"""docs/results.md is generated from benchmarks/results/ and must match what the script writes today."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "make_results_doc.py"


def _module():
    spec = importlib.util.spec_from_file_location("make_results_doc", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve the module by name
    spec.loader.exec_module(mod)
    return mod


def test_committed_results_doc_matches_the_result_files():
    run = subprocess.run([sys.executable, "-P", str(SCRIPT), "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr + "\n(regenerate: python benchmarks/make_results_doc.py)"


def test_check_fails_on_a_stale_doc(tmp_path):
    stale = tmp_path / "results.md"
    stale.write_text((REPO / "docs" / "results.md").read_text().replace("| **overall** |", "| overall |", 1))
    run = subprocess.run([sys.executable, "-P", str(SCRIPT), "--check", "--out", str(stale)],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "out of date" in run.stderr


def test_figures_come_from_the_files(tmp_path):
    mod = _module()
    machine = {"cpu_model": "Test CPU", "logical_cores": 4, "isa_flags": ["avx2"], "date": "2030-01-02T00:00:00"}
    (tmp_path / "box").mkdir()
    trainer = {"model": "bert-tiny", "batch_size": 2, "seq_len": 8, "threads": 4, "steps": 10, "machine": machine,
               "median_step_s_dense": 0.25, "median_step_s_rigl90": 0.3, "masked_vs_dense_ratio": 1.2,
               "tracing_overhead_fraction": 0.004, "mask_update_extra_s": 0.05,
               "mask_update_amortised_fraction_dT100": 0.0005}
    (tmp_path / "box" / "trainer.json").write_text(json.dumps(trainer))
    (tmp_path / "box" / "notes.json").write_text(json.dumps({"machine": machine, "x": 1}))
    text = mod.build(tmp_path)
    assert "## `box`" in text and "Test CPU" in text and "2030-01-02" in text
    assert "| median step, dense | 250 ms |" in text and "1.2× dense" in text and "0.40 %" in text
    # a file no renderer knows is listed, not dropped
    assert "`notes.json`" in text.split("Other files")[1]


def test_a_new_result_kind_is_one_registered_function(tmp_path):
    mod = _module()
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "widget.json").write_text(json.dumps({"speed": 3.14159}))
    try:
        @mod.renders("widget.json", "Widget speed")
        def widget(path, d):
            return [f"speed {mod.sig(d['speed'])}"]
        text = mod.build(tmp_path)
    finally:
        mod.KINDS.pop()
    assert "### Widget speed" in text and "speed 3.14" in text and "Other files" not in text


def test_step_spread_sets_restart_steps_apart(monkeypatch):
    import types

    import pyarrow as pa

    spec = importlib.util.spec_from_file_location("simulate_sparse_training", SCRIPT.with_name("simulate_sparse_training.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    wall = [2.0, 1.5, 1.0, 1.0, 3.0, 1.0, 1.0, 1.0, 1.2, 1.0, 1.0, 1.0]  # chunks of 4: steps 0-1, 4-5, 8-9 restart
    changed = [False] * 12
    changed[6] = True  # an update step: left out while other steps do not update
    steps = pa.table({"wall_s": wall, "mask_changed": changed})
    monkeypatch.setattr("accelsim.trace.load_trace", lambda run: types.SimpleNamespace(steps=steps))
    out = mod.step_spread("run", chunk=4)
    assert out["median_s"] == 1.0
    assert out["restart_max_over_median"] == 3.0 and out["other_max_over_median"] == 1.0
    wall[6] = 5.0
    steps = pa.table({"wall_s": wall, "mask_changed": [True] * 12})  # every step updates: none left out
    assert mod.step_spread("run", chunk=4)["other_max_over_median"] == 5.0


def test_held_out_rows_are_summarised_per_source():
    _module()
    sys.path.insert(0, str(REPO / "benchmarks"))
    from results_renderers_validation import _held_out_by_source

    rows = [{"source": "a", "published": 1.0, "predicted": 2.0}, {"source": "a", "published": 1.0, "predicted": 1.2},
            {"source": "a", "published": 2.0, "predicted": 2.0}, {"source": "b", "published": 4.0, "predicted": 1.0},
            {"source": "b", "published": 1.0, "predicted": None}]
    lines = _held_out_by_source({"profiles": {"gpu-x": {"held_out_rows": rows}}})
    a = next(line for line in lines if line.startswith("| gpu-x: a |"))
    b = next(line for line in lines if line.startswith("| gpu-x: b |"))
    # a: |log| errors 0.69, 0.18, 0 -> median 0.18 (1.2x), 2 of 3 within 1.35x, mean log err +0.29 (over-predicted)
    assert a.split(" | ")[1:5] == ["3", "0.18", "1.2×", "67 %"] and a.endswith("| 1.34× |")
    # b: one predicted row 4x under; the unpredicted row is not counted
    assert b.split(" | ")[1:5] == ["1", "1.4", "4×", "0 %"] and b.endswith("| 0.25× |")


def test_held_out_rows_are_summarised_per_family_with_their_sources():
    _module()
    sys.path.insert(0, str(REPO / "benchmarks"))
    from results_renderers_validation import _held_out_by_family

    rows = [{"source": "a", "family": "2:4 @ tc", "published": 1.0, "predicted": 1.1, "no_path": False},
            {"source": "b", "family": "2:4 @ tc", "published": 1.0, "predicted": 2.0, "no_path": False},
            {"source": "a", "family": "block/b16 @ bsr", "published": 2.0, "predicted": 1.0, "no_path": False},
            {"source": "a", "family": "block/b16 @ bsr", "published": 2.0, "predicted": None, "no_path": False}]
    lines = _held_out_by_family({"profiles": {"gpu-x": {"held_out_rows": rows}}})
    tc = next(line for line in lines if line.startswith("| gpu-x: 2:4 @ tc (2 sources) |"))
    bsr = next(line for line in lines if line.startswith("| gpu-x: block/b16 @ bsr (1 source) |"))
    assert tc.split(" | ")[1] == "2" and tc.endswith("| 50 % |")  # 1.1x within 1.35x, 2x not
    assert bsr.split(" | ")[1] == "1" and bsr.endswith("| 0 % |")  # the unpredicted row is not counted


def test_shape_bins_count_each_distinct_size_once():
    """cross_shape.py's terciles are of distinct product sizes: 40 rows at one size fill one bin, none is empty,
    and the bins order by size."""
    from types import SimpleNamespace

    sys.path.insert(0, str(REPO / "benchmarks"))
    from cross_shape import bins_of

    rows = [SimpleNamespace(tokens=4096, in_features=4096, out_features=4096) for _ in range(40)]
    rows += [SimpleNamespace(tokens=t, in_features=1024, out_features=1024) for t in (1, 16, 64, 256, 1024)]
    bins = bins_of(rows)
    assert set(bins) == {0, 1, 2} and set(bins[:40]) == {2}  # 4096^3 is the largest of 6 distinct sizes
    assert bins[40:] == [0, 0, 1, 1, 2]
