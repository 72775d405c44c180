"""The measurement pipeline end to end on tiny shapes: records, derived numbers, files, loading."""
from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from accelsim.app.cli import main
from accelsim.errors import UserError
from accelsim.kernels.bench import SCHEMA, BenchConfig, load_measurements, run_bench

TINY = dict(tokens=(24,), hidden=(32,), layers=("ffn_in",), densities=(1.0, 0.5, 0.1),
            repeats=1, warmup=1, threads=(1,), min_sample_s=1e-4, fff=())


@pytest.fixture(scope="module")
def doc(tmp_path_factory):
    prev = torch.get_num_threads()
    out = tmp_path_factory.mktemp("bench") / "m.json"
    d = run_bench(BenchConfig(**TINY), out=out)
    assert torch.get_num_threads() == prev  # the sweep restores the caller's thread count
    d["_out"] = out
    return d


def test_records_cover_the_grid(doc):
    recs = doc["records"]
    # 3 ops x (unstructured 3 + 2:4 at 0.5 only + block16 3 + block32 3) densities
    assert len(recs) == 3 * (3 + 1 + 3 + 3)
    assert {(r["op"], r["pattern"]) for r in recs} >= {("matmul_dw", "block32"), ("matmul", "2:4")}
    assert not any(r["pattern"] == "2:4" and r["density"] != 0.5 for r in recs)
    mach = doc["machine"]
    for key in ("cpu_model", "logical_cores", "isa_flags", "torch", "torch_mkl", "numpy", "date"):
        assert key in mach
    assert mach["threads_measured"] == [1]


def test_record_fields_and_arithmetic(doc):
    for r in doc["records"]:
        assert r["threads"] == 1 and r["dtype"] == "float32" and r["layer"] == "ffn_in"
        assert (r["m"], r["k"], r["n"]) == {"matmul": (24, 32, 128), "matmul_dx": (24, 128, 32),
                                            "matmul_dw": (128, 24, 32)}[r["op"]]
        times = r["times"]
        assert r["median_s"] == times[r["path"]] == min(times.values())
        assert r["dense_s"] == times["dense_torch"]
        assert r["flops_dense"] == 2 * r["m"] * r["k"] * r["n"]
        assert math.isclose(r["gflops_dense_equiv"], r["flops_dense"] / r["median_s"] / 1e9)
        assert math.isclose(r["gflops_effective"], r["gflops_dense_equiv"] * r["density_actual"])
        assert math.isclose(r["speedup_vs_dense"], r["dense_s"] / r["median_s"])
        assert r["speedup_vs_dense"] >= 1.0  # the winner is at least as fast as the dense path it beat
        assert math.isclose(r["ideal_speedup"], 1 / r["density_actual"])
        assert math.isclose(r["fraction_of_ideal"], r["speedup_vs_dense"] * r["density_actual"])
        b = {"block16": 16, "block32": 32}.get(r["pattern"], 1)
        units = (32 // b) * (128 // b)  # the weight is 128x32: whole blocks (or weights) are kept
        assert r["density_actual"] == max(round(r["density"] * units), 1) / units
        if r["sparse_path"]:
            assert r["sparse_path"] not in ("dense_torch", "nm_decompress_dense")
            assert math.isclose(r["sparse_speedup_vs_dense"], r["dense_s"] / r["sparse_s"])
        assert not any(v.startswith("mismatch") for v in r["rejected"].values())


def test_files_written_and_loaded(doc):
    out = doc["_out"]
    loaded = load_measurements(out)
    assert loaded["schema"] == SCHEMA and len(loaded["records"]) == len(doc["records"])
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert len(rows) == len(doc["records"]) and float(rows[0]["median_s"]) > 0


def test_oversized_products_are_skipped_with_a_reason():
    d = run_bench(BenchConfig(**dict(TINY, ops=("matmul",), patterns=("unstructured",), densities=(0.1,),
                                     hidden=(32, 64), max_dense_gflop=2 * 24 * 32 * 128 / 1e9)))
    assert [r["d_in"] for r in d["records"]] == [32]
    assert d["skipped"][0]["d_in"] == 64 and "max_dense_gflop" in d["skipped"][0]["reason"]


def _write(tmp_path, doc_or_text, name="bad.json"):
    p = tmp_path / name
    p.write_text(doc_or_text if isinstance(doc_or_text, str) else json.dumps(doc_or_text))
    return p


def test_load_measurements_errors(tmp_path, doc):
    good = json.loads(doc["_out"].read_text())
    with pytest.raises(UserError, match="no such measurements file"):
        load_measurements(tmp_path / "missing.json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_measurements(_write(tmp_path, "{nope"))
    with pytest.raises(UserError, match="field 'schema'"):
        load_measurements(_write(tmp_path, dict(good, schema="other/1")))
    with pytest.raises(UserError, match="field 'records'.*non-empty"):
        load_measurements(_write(tmp_path, dict(good, records=[])))
    cases = [("median_s", -1.0, r"records\[0\]\.median_s.*positive"),
             ("density", 1.5, r"records\[0\]\.density.*\(0, 1\]"),
             ("op", "conv", r"records\[0\]\.op.*unknown op"),
             ("m", "12", r"records\[0\]\.m.*expected int"),
             ("path", "nonexistent", r"records\[0\]\.path.*no entry in times")]
    for key, value, pattern in cases:
        bad = json.loads(json.dumps(good))
        bad["records"][0][key] = value
        with pytest.raises(UserError, match=pattern):
            load_measurements(_write(tmp_path, bad))
    bad = json.loads(json.dumps(good))
    del bad["records"][1]["threads"]
    with pytest.raises(UserError, match=r"records\[1\]\.threads.*missing"):
        load_measurements(_write(tmp_path, bad))


def test_config_validation():
    with pytest.raises(UserError, match="unknown pattern"):
        run_bench(BenchConfig(**dict(TINY, patterns=("diagonal",))))
    with pytest.raises(UserError, match="density 0.0"):
        run_bench(BenchConfig(**dict(TINY, densities=(0.0,))))


def test_cli_bench_quick_and_user_errors(tmp_path, capsys):
    out = tmp_path / "cli.json"
    main(["kernels", "bench", "--quick", "--out", str(out), "--tokens", "16", "--hidden", "32",
          "--densities", "1,0.1", "--patterns", "unstructured,block16", "--ops", "matmul",
          "--repeats", "1", "--threads", "1", "--fff", "none"])
    assert len(load_measurements(out)["records"]) == 4
    assert "wrote" in capsys.readouterr().out
    main(["kernels", "bench", "--quick", "--out", str(out), "--tokens", "16", "--hidden", "32", "--ops", "matmul",
          "--densities", "0.5", "--patterns", "block16", "--repeats", "1", "--threads", "1", "--fff", "1x3",
          "--paths", "blocksparse_c,fff_walk", "--rounds", "2"])
    recs = load_measurements(out)["records"]
    assert [r["op"] for r in recs] == ["matmul", "fff"] and "fff 1x3" in capsys.readouterr().out
    assert all(set(r["times_rounds"]["dense_torch"]) and len(r["times_rounds"]["dense_torch"]) == 2 for r in recs)
    assert "csr_torch" not in recs[0]["times"] and "fff_gather" not in recs[1]["times"]
    with pytest.raises(SystemExit) as exc:
        main(["kernels", "bench", "--quick", "--threads", "one,two"])
    assert exc.value.code == 2
    assert "--threads" in capsys.readouterr().err


def test_quiet_gate_records_the_load_it_saw():
    d = run_bench(BenchConfig(**dict(TINY, ops=("matmul",), patterns=("block16",), densities=(0.5,),
                                     quiet_below=1.01, quiet_max_wait_s=0.0)))
    (rec,) = d["records"]
    assert 0.0 <= rec["busy_before"] <= 1.0
    assert set(rec["families"]) == set(rec["times"])
    assert (rec["families"]["dense_torch"], rec["families"]["blocksparse_c"], rec["families"]["csr_torch"]) == \
        ("dense", "block", "unstructured")


def test_cli_pick_and_paths(capsys):
    main(["kernels", "pick", "--op", "matmul_dw", "--tokens", "16", "--d-in", "32", "--d-out", "64",
          "--density", "0.5", "--pattern", "block16", "--threads", "1", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "fastest" in out and "blocksparse_c" in out and "sddmm_torch" in out
    main(["kernels", "paths"])
    assert "csr_mkl" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["kernels", "pick", "--pattern", "2:4", "--density", "0.3"])
    assert exc.value.code == 2 and "2:4 fixes the density" in capsys.readouterr().err


def test_fff_cases_time_the_cmm_kernels_against_the_dense_ff(tmp_path):
    from accelsim.kernels.fff_cpu import native_unavailable

    out = tmp_path / "fff.json"
    d = run_bench(BenchConfig(**dict(TINY, ops=(), fff=("1x4", "2x3"))), out=out)
    assert [(r["trees"], r["depth"]) for r in d["records"]] == [(1, 4), (2, 3)]
    for r in d["records"]:
        neurons, visited = r["trees"] * (2 ** (r["depth"] + 1) - 1), r["trees"] * (r["depth"] + 1)
        assert (r["op"], r["pattern"], r["m"], r["k"], r["n"]) == ("fff", "conditional", 24, 32, neurons)
        assert math.isclose(r["density"], visited / neurons) and math.isclose(r["ideal_speedup"], neurons / visited)
        assert r["flops_dense"] == 4 * 24 * 32 * neurons  # both products of the dense FF of equal width
        assert not r["rejected"]  # every runner matched the zeroed dense computation
        expected = {"dense_torch", "fff_gather"} | (set() if native_unavailable() else {"fff_walk"})
        assert set(r["times"]) == expected
        assert r["families"] == {k: "dense" if k == "dense_torch" else "conditional" for k in expected}
        assert r["sparse_path"] in expected - {"dense_torch"}
        assert math.isclose(r["fraction_of_ideal"], r["speedup_vs_dense"] / r["ideal_speedup"])
    good = load_measurements(out)
    bad = json.loads(json.dumps(good))
    del bad["records"][0]["trees"]
    with pytest.raises(UserError, match=r"records\[0\]\.trees"):
        load_measurements(_write(tmp_path, bad))
    with pytest.raises(UserError, match="FFF shape KxD"):
        run_bench(BenchConfig(**dict(TINY, fff=("7",))))


def test_machine_mismatch_names_what_differs(doc):
    from accelsim.kernels.machine import machine_mismatch

    here = doc["machine"]
    assert machine_mismatch(here, dict(here)) is None
    assert machine_mismatch(None, here) is None
    other = dict(here, isa_flags=here["isa_flags"] + ["amx_tile"], logical_cores=here["logical_cores"] + 2)
    msg = machine_mismatch(other, here)
    assert "isa_flags" in msg and "logical_cores" in msg and "cpu_model" not in msg
    # older profiles record fewer keys: what one side lacks is not compared
    assert machine_mismatch({"cpu_model": here["cpu_model"]}, here) is None
