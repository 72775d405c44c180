"""`accelsim hw calibrate-local` (kernels.local) and the "which CPU is this profile" note (kernels.machine)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from accelsim.app.cli import main
from accelsim.hardware import load_profile
from accelsim.hardware.quantities import format_quantity
from accelsim.kernels.local import LocalConfig, _blocks, _monotone_bandwidths, calibrate_local, default_name, scale_to_cores
from accelsim.kernels.machine import cpu_profile_note, machine_info

#: smaller than LocalConfig.quick(): the test checks the plumbing (measure, fit, write, load back), not the fit
TINY = dataclasses.replace(LocalConfig.quick(), hidden=(64,), fff=(), ops=("matmul", "matmul_dx"),
                           densities=(0.5, 0.2, 0.05), vector_shape=(2, 32, 32, 2, 256))


def test_calibrate_local_writes_a_profile_of_this_machine(tmp_path):
    lines = []
    summary = calibrate_local(tmp_path, config=TINY, say=lines.append)
    here = machine_info()
    prof = load_profile(summary["profile"])
    assert prof.name == default_name(here) and prof.kind == "cpu"
    assert prof.compute.count == here["logical_cores"]
    # every machine figure is this machine's measurement and says so
    for key in ("compute.clock", "compute.peak.fp32", "memory.l2.bandwidth", "memory.dram.bandwidth",
                "paths.vector.element_time"):
        assert "calibrate-local" in prof.sources[key], key
    # the template's borrowed mask_select (an assumption there) is measured here: no assumption left covering it
    assert not [k for k in prof.assumptions if k.startswith("paths.vector.element_time")]
    assert 0.3e9 < prof.compute.clock_hz < 7e9
    assert prof.compute.peak_flops["fp32"] == pytest.approx(summary["peak_fp32_GFLOPs"] * 1e9)
    assert prof.memory[0].bandwidth_Bps == pytest.approx(summary["bandwidth_GBps"]["l2"] * 1e9, rel=1e-3)
    # the fit and its held-out score, on the sweep written next to the profile
    assert prof.fitted["measurements_sha256"] and (tmp_path / "kernels-sweep.json").is_file()
    assert summary["n_heldout"] == prof.fitted["n_heldout"] and summary["n_train"] >= 2
    assert summary["heldout_mape"] == prof.fitted["heldout_mape"]
    # the profile describes this machine: no warning for it
    note, foreign = cpu_profile_note(prof, here)
    assert not foreign and "this machine" in note
    doc = json.loads((tmp_path / "calibrate-local.json").read_text())
    assert doc["wall_s"] > 0 and set(doc["stages"]) == {"peak", "memory", "vector", "sweep", "fit", "validate"}
    # the C kernels' tiling terms come from their sources for this CPU's ISA, before the fit (issue 20)
    from accelsim.kernels.cpu._native import structure_terms
    terms = structure_terms(here["isa_flags"])
    assert prof.paths["csr-spmm-fwd"].row_multiple == terms["csr_c"]["row_multiple"]
    assert prof.paths["bsr16-fwd"].chunk_bytes == terms["blocksparse_c"]["chunk_bytes"]
    assert "structure_terms" in prof.sources["paths.csr-spmm-dx.row_multiple"]
    # the sparse execution's own work (accelsim.workload.sparse_execution_ops) is timed per element too
    from accelsim.workload import FORMAT_BUILD, GATHER, MASK_SCORE, MASK_SELECT, SCATTER
    et = prof.paths["vector"].element_time_s
    assert et[GATHER]["fwd"] > 0 and et[SCATTER]["bwd"] > 0 and et[FORMAT_BUILD]["fwd"] > 0
    # and a mask update's top-k, timed at several weight sizes (a size table), and block pooling (a top-k is
    # slower per weight than one streaming pass)
    from accelsim.kernels.vector_ops import SELECT_SHAPES
    select = et[MASK_SELECT]["fwd"]
    assert [n for n, _ in select] == sorted(r * c for r, c in SELECT_SHAPES)
    assert min(t for _, t in select) > et[MASK_SCORE]["fwd"] > 0
    from accelsim.workload import MASK_GROUP_SELECT
    assert 0 < et[MASK_GROUP_SELECT]["fwd"] < min(t for _, t in select)  # ranking in groups of 4 beats a top-k
    assert any(line.startswith("sweep:") for line in lines)


def test_a_noisy_copy_probe_cannot_order_the_levels_wrongly():
    # CI, quick config, a busy machine: the L2 copy read slower than the L3 one and the profile failed its schema
    levels = [{"name": "l2"}, {"name": "l3"}, {"name": "dram"}]
    got = _monotone_bandwidths(levels, {"l2": {"copy_GBps": 90.0}, "l3": {"copy_GBps": 120.0},
                                        "dram": {"copy_GBps": 30.0}})
    assert got == {"l2": 90.0, "l3": 90.0, "dram": 30.0}
    ordered = {"l2": {"copy_GBps": 200.0}, "l3": {"copy_GBps": 120.0}, "dram": {"copy_GBps": 30.0}}
    assert _monotone_bandwidths(levels, ordered) == {k: v["copy_GBps"] for k, v in ordered.items()}


def test_calibrate_local_cli_refuses_a_bad_name(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["hw", "calibrate-local", "--quick", "--out", str(tmp_path), "--name", "my cpu/1"])
    assert exc.value.code == 2 and "--name" in capsys.readouterr().err


def test_blocks_smallest_first():
    assert _blocks((256, 1024), (256, 768)) == [(256, 256), (1024, 256), (256, 768), (1024, 768)]
    assert _blocks((128,), (64,)) == [(128, 64)]


def test_cpu_note_names_the_cpu_and_flags_another_one():
    zen3 = load_profile("cpu-zen3")
    here = dict(machine_info(), cpu_family_model="26/2", logical_cores=2, cpu_model="AMD EPYC")
    note, foreign = cpu_profile_note(zen3, here)
    assert foreign and "family 25 model 1" in note and "family 26 model 2" in note and "calibrate-local" in note
    assert "\n" not in note
    same = dict(here, cpu_family_model="25/1")
    assert cpu_profile_note(zen3, same)[1] is False
    assert cpu_profile_note(load_profile("gpu-a100"), here) is None
    xeon, foreign = cpu_profile_note(load_profile("cpu-xeon-8380"), here)
    assert not foreign and "not measured on this machine" in xeon  # a datasheet profile is never "this machine"


def test_cpu_local_alias_loads_the_zen3_calibration():
    assert load_profile("cpu-local") == load_profile("cpu-zen3")


def test_capacities_print_in_binary_units():
    assert format_quantity(40 * 2**20, "bytes") == "40 MiB"
    assert format_quantity(23 * 2**30, "bytes") == "23 GiB"
    assert format_quantity(1.5e6, "bytes") == "1.5 MB"  # not a whole number of KiB steps: decimal


def test_hw_show_prints_the_yaml_units(capsys):
    main(["hw", "show", "gpu-a100"])
    out = capsys.readouterr().out
    assert "40 MiB" in out and "41.94304" not in out


def test_a_profile_fitted_at_fewer_threads_scales_to_all_cores():
    # --threads 1 on a busy machine: fitted at 1 thread, written for all cores, the scaling an assumption
    zen3 = load_profile("cpu-zen3")
    four = scale_to_cores(zen3, 2, 4)
    assert four.compute.count == 4
    assert four.compute.peak_flops["fp32"] == pytest.approx(2 * zen3.compute.peak_flops["fp32"])
    loss = zen3.paths["vector"].element_time_s["loss"]["fwd"]
    assert four.paths["vector"].element_time_s["loss"]["fwd"] == pytest.approx(loss / 2)
    # RigL's top-k runs on one thread at any thread count (mask-update.json's one_thread_ratio): its table stays
    select = zen3.paths["vector"].element_time_s["mask_select"]["fwd"]
    assert four.paths["vector"].element_time_s["mask_select"]["fwd"] == tuple(
        (n, pytest.approx(t)) for n, t in select)
    assert four.paths["csr-spmm-fwd"] == zen3.paths["csr-spmm-fwd"]  # efficiencies as fitted
    assert "scaled linearly to 4 cores" in four.assumptions["compute"]
    assert scale_to_cores(zen3, 2, 2) is zen3


def test_run_and_simulate_warn_once_per_foreign_cpu_profile(capsys):
    from accelsim.app.cli._notes import warn_foreign_cpus

    here = machine_info()
    zen3_is_here = here["cpu_family_model"] == "25/1" and here["logical_cores"] == 2
    warned = warn_foreign_cpus(["cpu-zen3", "cpu-local", "gpu-a100", "no-such-profile"])
    err = capsys.readouterr().err
    assert len(warned) == (0 if zen3_is_here else 1)  # the alias is the same profile: one warning
    assert err.count("\n") == len(warned) and all(line.startswith("accelsim: warning: cpu-zen3 describes")
                                                   for line in err.splitlines())


def test_structure_terms_follow_the_isa_branch_of_the_c_sources(tmp_path):
    from accelsim.kernels.cpu import _native

    # csr_c: NA_MAX accumulators x VL lanes of the branch the compiler takes for this ISA
    assert _native.structure_terms({"avx512f", "avx", "avx2"})["csr_c"]["row_multiple"] == 8 * 16
    assert _native.structure_terms({"avx", "avx2"})["csr_c"]["row_multiple"] == 8 * 8
    assert _native.structure_terms(set())["csr_c"]["row_multiple"] == 8 * 4
    terms = _native.structure_terms(set())
    assert terms["csr_c"]["chunk_bytes"] == 192 * 1024 and terms["blocksparse_c"]["chunk_bytes"] == 1 << 20
    src = tmp_path / "k.c"
    src.write_text("#define A (3 << 2)\n#define B sizeof(float)\n")
    assert _native._define(src, "A") == 12
    with pytest.raises(ValueError):  # anything but integer arithmetic is refused, never evaluated
        _native._define(src, "B")

