"""Merging sweeps of one machine: rounds pooled per case, derived fields recomputed, other machines refused."""
from __future__ import annotations

import json
import statistics

import pytest

from accelsim.app.cli import main
from accelsim.errors import UserError
from accelsim.kernels.bench import BenchConfig, load_measurements, run_bench
from accelsim.kernels.merge import merge_measurements

TINY = dict(tokens=(24,), hidden=(32,), layers=("ffn_in",), densities=(0.5,), patterns=("block16",),
            ops=("matmul",), repeats=1, warmup=1, threads=(1,), min_sample_s=1e-4, fff=("1x3",))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("merge")
    a, b = d / "a.json", d / "b.json"
    run_bench(BenchConfig(**TINY), out=a)
    run_bench(BenchConfig(**dict(TINY, rounds=2)), out=b)
    return a, b


def test_rounds_are_pooled_and_medians_recomputed(files, tmp_path, capsys):
    a, b = files
    out = tmp_path / "m.json"
    main(["kernels", "merge", str(a), str(b), "--out", str(out)])
    assert "3-3 rounds each" in capsys.readouterr().out
    merged = load_measurements(out)
    one, two = (json.loads(p.read_text())["records"] for p in (a, b))
    assert len(merged["records"]) == len(one) == 2 and merged["config"]["rounds"] == 3
    assert [m["file"] for m in merged["machine"]["merged_from"]] == [str(a), str(b)]
    for rec, r1, r2 in zip(merged["records"], one, two):
        assert (rec["op"], rec.get("trees")) == (r1["op"], r1.get("trees"))
        for path, ts in rec["times_rounds"].items():
            assert ts == [r1["times"][path], *r2["times_rounds"][path]]
            assert rec["times"][path] == statistics.median(ts)
        assert rec["median_s"] == min(rec["times"].values()) and rec["dense_s"] == rec["times"]["dense_torch"]
        assert rec["speedup_vs_dense"] == pytest.approx(rec["dense_s"] / rec["median_s"])
        assert len(rec["busy_before"]) == 3
        # every round's time over the dense baseline's of the same round, pooled in file order
        for path, rs in rec["ratios_rounds"].items():
            firsts = [r1["times"][path] / r1["times"]["dense_torch"]]
            seconds = [t / d for t, d in zip(r2["times_rounds"][path], r2["times_rounds"]["dense_torch"])]
            assert rs == pytest.approx(firsts + seconds) and "dense_torch" not in rec["ratios_rounds"]


def test_ratios_of_files_written_before_them_pair_only_complete_paths(files):
    """A file without ratios_rounds: a path timed in every round (as many times as the dense baseline) is
    paired by round; one that misses rounds (its older rounds dropped by --latest-only) is not."""
    from accelsim.kernels.bench import record_ratios

    rec = {"times": {"dense_torch": 2.0, "a": 1.0, "b": 1.0},
           "times_rounds": {"dense_torch": [2.0, 4.0], "a": [1.0, 1.0], "b": [1.0]}}
    assert record_ratios(rec) == {"a": [0.5, 0.25]}
    assert record_ratios({"times": {"dense_torch": 2.0, "a": 1.0}}) == {"a": [0.5]}
    assert record_ratios(dict(rec, ratios_rounds={"b": [0.3]})) == {"b": [0.3]}
    bad = json.loads(files[1].read_text())
    bad["records"][0]["ratios_rounds"] = {"x": [0.5, -1.0]}
    p = files[1].with_name("bad.json")
    p.write_text(json.dumps(bad))
    with pytest.raises(UserError, match="records\\[0\\].ratios_rounds"):
        load_measurements(p)


def test_latest_only_keeps_a_changed_kernels_newest_rounds(files, tmp_path):
    """A C kernel rebuilt between two sweeps: its older rounds are dropped, the other paths' are pooled."""
    a, b = files
    one, two = (json.loads(p.read_text())["records"] for p in (a, b))
    if not any("blocksparse_c" in r["times"] for r in one):
        pytest.skip("the C block kernel could not be built here")
    out = tmp_path / "m.json"
    main(["kernels", "merge", str(a), str(b), "--out", str(out), "--latest-only", "blocksparse_c"])
    merged = load_measurements(out)
    assert merged["machine"]["merged_from"][0]["dropped_paths"] == ["blocksparse_c"]
    assert "dropped_paths" not in merged["machine"]["merged_from"][1]
    for rec, r1, r2 in zip(merged["records"], one, two):
        for path, ts in rec["times_rounds"].items():
            older = [] if path == "blocksparse_c" else [r1["times"][path]]
            assert ts == [*older, *r2["times_rounds"][path]], path
    with pytest.raises(UserError, match="no file times kernel path 'nope'"):
        merge_measurements([a, b], latest_only=("nope",))


def test_other_machines_and_single_files_are_refused(files, tmp_path):
    a, b = files
    other = json.loads(b.read_text())
    other["machine"]["cpu_model"] = "another CPU"
    c = tmp_path / "c.json"
    c.write_text(json.dumps(other))
    with pytest.raises(UserError, match="machine.cpu_model"):
        merge_measurements([a, c])
    with pytest.raises(UserError, match="at least two"):
        merge_measurements([a])


def test_compare_sweeps_ratios_per_path_and_product(files, tmp_path):
    """benchmarks/compare_sweeps.py (the before/after figures under benchmarks/results/): old / new per shared case, and per
    product with --by-op."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "compare_sweeps", Path(__file__).resolve().parents[1] / "benchmarks" / "compare_sweeps.py")
    cmp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cmp)
    a, b = files
    old, new = json.loads(a.read_text()), json.loads(b.read_text())
    for rec in new["records"]:  # the new file: every path twice as fast
        rec["times"] = {p: t / 2 for p, t in rec["times"].items()}
    newf = tmp_path / "new.json"
    newf.write_text(json.dumps(new))
    out = tmp_path / "cmp.json"
    assert cmp.main([str(a), str(newf), "--path", "dense_torch", "--by-op", "--out", str(out)]) == 0
    got = json.loads(out.read_text())["old_over_new"]
    ops = sorted({r["op"] for r in old["records"]})
    assert set(got) == {"dense_torch", *(f"dense_torch {op}" for op in ops)}
    expect = sorted(o["times"]["dense_torch"] / n["times"]["dense_torch"]
                    for o, n in zip(old["records"], new["records"]))
    assert got["dense_torch"]["cases"] == len(old["records"])
    assert got["dense_torch"]["median"] == pytest.approx(statistics.median(expect))
    assert got["dense_torch"]["min"] == pytest.approx(expect[0]) and got["dense_torch"]["max"] == pytest.approx(expect[-1])


def test_rounds_of_changed_kernel_code_are_not_pooled(files, tmp_path):
    """Files record their C kernels' source hashes: a path timed with two versions is refused unless
    --latest-only keeps one file's rounds; the merged file records the hash of the rounds it kept."""
    a, b = files
    one, two = (json.loads(p.read_text()) for p in (a, b))
    if not any("blocksparse_c" in r["times"] for r in one["records"]):
        pytest.skip("the C block kernel could not be built here")
    assert set(one["machine"]["kernel_sources"]) >= {"blocksparse_c", "fff_walk"}
    two["machine"]["kernel_sources"] = dict(two["machine"]["kernel_sources"], blocksparse_c="0" * 16)
    b2 = tmp_path / "b2.json"
    b2.write_text(json.dumps(two))
    with pytest.raises(UserError, match="'blocksparse_c' was timed with different versions"):
        merge_measurements([a, b2])
    merged = merge_measurements([a, b2], latest_only=("blocksparse_c",))
    assert merged["machine"]["kernel_sources"]["blocksparse_c"] == "0" * 16
    assert merged["machine"]["kernel_sources"]["fff_walk"] == one["machine"]["kernel_sources"]["fff_walk"]
    assert merged["machine"]["merged_from"][1]["kernel_sources"]["blocksparse_c"] == "0" * 16
