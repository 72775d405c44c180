"""The per-op cost model: hand-computed answers, invariants, properties on every profile, reference points."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim.errors import UserError
from accelsim.hardware import (
    allreduce_time,
    fits_on_chip,
    kernel_time,
    list_profiles,
    load_profile,
    load_profile_text,
    makespan,
    op_cost,
    profile_to_yaml,
    synthetic_pattern,
    training_state_bytes,
)
from accelsim.patterns import pattern_stats
from accelsim.trace import LayerInfo, Manifest
from accelsim.workload import Op, StepKind, step_ops

ROOT = Path(__file__).resolve().parents[1]

def toy(**changes) -> "object":
    """A round-number profile: 1 unit, 1 TFLOP/s peak, one 100 GB/s memory, no overheads."""
    doc = {
        "format": 1, "name": "toy", "kind": "cpu", "description": "hand-computable", "dtype": "fp32",
        "compute": {"units": 1, "unit_name": "unit", "peak": {"fp32": "1 TFLOP/s"}, "vector": {"fp32": "1 TFLOP/s"}},
        "memory": [{"name": "dram", "role": "main", "capacity": "1 GiB", "bandwidth": "100 GB/s",
                    "energy": "10 pJ/B"}],
        "energy": {"compute": {"fp32": "2 pJ/FLOP"}, "static_power": "0 W"},
        "execution": {"overlap": True, "launch_overhead": "0 s", "items_per_unit": 1},
        "paths": {"dense-gemm": {"pattern": "dense", "peak_fraction": 0.5},
                  "csr": {"pattern": "unstructured", "peak_fraction": 0.25, "d_half": 0.1, "exponent": 1.0,
                          "index_bytes_per_nnz": "4 B"},
                  "vector": {"pattern": "vector", "peak_fraction": 1.0}},
        "assumptions": ["compute", "memory", "energy", "execution", "paths"],
    }
    for path, value in changes.items():
        node = doc
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return load_profile_text(yaml.safe_dump(doc), source="toy.yaml")


def linear(m, k, n, density=1.0, phase="fwd"):
    dense = 2.0 * m * k * n
    return Op(name="t", kind="linear", phase=phase, m=m, k=k, n=n, density=density, sparse=density < 1.0,
              flops_dense=dense, flops=dense * density)


# ------------------------------------------------------------------------------------ hand-computed

def test_compute_bound_op_takes_flops_over_peak_times_efficiency():
    c = op_cost(toy(), linear(1000, 1000, 1000))
    # F = 2e9 FLOP at 1e12 * 0.5 -> 4 ms; bytes: W 4 MB + X, Y 8 MB = 12 MB at 100 GB/s -> 0.12 ms
    assert c.compute_s == pytest.approx(4e-3, rel=1e-12)
    assert c.memory_s == pytest.approx(0.12e-3, rel=1e-12)
    assert c.time_s == pytest.approx(4e-3, rel=1e-12)
    assert c.bytes == {"dram": pytest.approx(12e6)}
    assert c.path == "dense-gemm" and c.flops_executed == 2e9
    assert c.energy_j["compute"] == pytest.approx(2e9 * 2e-12)
    assert c.energy_j["memory:dram"] == pytest.approx(12e6 * 10e-12)


def test_memory_bound_op_takes_bytes_over_bandwidth():
    op = Op(name="r", kind="elementwise", phase="fwd", role="residual", elements=1_000_000)
    c = op_cost(toy(), op)
    # 1e6 adds at 1 TFLOP/s = 1 us; read + write 8 MB at 100 GB/s = 80 us
    assert c.compute_s == pytest.approx(1e-6)
    assert c.memory_s == pytest.approx(80e-6)
    assert c.time_s == pytest.approx(80e-6)


def test_a_timed_mask_update_is_priced_per_unit_not_by_its_flops():
    # a top-k is memory- and branch-bound: 1e6 units x 14 ns = 14 ms, where its FLOPs (4e7) at 1 TFLOP/s are 40 us
    op = Op(name="l.mask_update", kind="mask_update", phase="mask_update", role="mask_select", elements=1_000_000,
            flops=4e7)
    assert op_cost(toy(), op).compute_s == pytest.approx(40e-6)
    timed = toy(paths__vector__element_time={"mask_select": {"fwd": "14 ns"}, "mask_group_select": {"fwd": "5 ns"}})
    assert op_cost(timed, op).compute_s == pytest.approx(14e-3)
    # an N:M update (a ranking inside each group of m) has its own time per weight
    group = dataclasses.replace(op, role="mask_group_select")
    assert op_cost(timed, group).compute_s == pytest.approx(5e-3)


def test_a_mask_update_timed_at_several_sizes_is_priced_at_its_own_size():
    # an element time measured at several op sizes (RigL's top-k): a size table, interpolated on log(size)
    prof = toy(paths__vector__element_time={"mask_select": {"fwd": [[262144, "10 ns"], [4194304, "30 ns"]]}})

    def per_unit(n):
        op = Op(name="l.mask_update", kind="mask_update", phase="mask_update", role="mask_select", elements=n)
        return op_cost(prof, op).compute_s / n

    assert per_unit(262144) == pytest.approx(10e-9)
    assert per_unit(1048576) == pytest.approx(20e-9)  # halfway on log(elements) between 2^18 and 2^22
    assert per_unit(4096) == pytest.approx(10e-9) and per_unit(16_777_216) == pytest.approx(30e-9)  # no extrapolation
    again = load_profile_text(profile_to_yaml(prof), source="rt.yaml")
    assert again.paths["vector"].element_time_s["mask_select"]["fwd"] == (
        (262144, pytest.approx(10e-9)), (4194304, pytest.approx(30e-9)))


@pytest.mark.parametrize("table, message", [
    ([[262144, "10 ns"]], "at least two"),
    ([[262144, "10 ns"], [1024, "30 ns"]], "increasing"),
    ([[262144, "10 ns"], [4194304, 30]], "unit"),
    ([[0.5, "10 ns"], [4194304, "30 ns"]], "whole number"),
    ([[262144, "10 ns", 1], [4194304, "30 ns"]], "pair"),
])
def test_a_bad_size_table_is_one_line_naming_its_field(table, message):
    with pytest.raises(UserError) as e:
        toy(paths__vector__element_time={"mask_select": {"fwd": table}})
    text = str(e.value)
    assert "paths.vector.element_time.mask_select.fwd" in text and message in text and "\n" not in text


def test_measured_element_time_replaces_the_flop_estimate_for_its_role_and_phase():
    prof = toy(paths__vector__element_time={"dropout": {"fwd": "10 ns", "bwd": "0.5 ns"}})
    fwd = Op(name="d.fwd", kind="elementwise", phase="fwd", role="dropout", elements=1_000_000)
    bwd = Op(name="d.bwd", kind="elementwise", phase="bwd_input", role="dropout", elements=2_000_000)
    # dropout fwd: 1e6 x 10 ns = 10 ms (the FLOP estimate: 2e6 FLOP at 1 TFLOP/s = 2 us); memory 80 us
    assert op_cost(prof, fwd).compute_s == pytest.approx(10e-3) and op_cost(prof, fwd).time_s == pytest.approx(10e-3)
    # bwd: 2e6 x 0.5 ns = 1 ms
    assert op_cost(prof, bwd).compute_s == pytest.approx(1e-3)
    # other roles keep the FLOP estimate, and the table round-trips through YAML
    gelu = Op(name="g", kind="elementwise", phase="fwd", role="gelu", elements=1_000_000)
    assert op_cost(prof, gelu).compute_s == pytest.approx(8e-6)
    assert op_cost(toy(), fwd).compute_s == pytest.approx(2e-6)
    again = load_profile_text(profile_to_yaml(prof), source="rt.yaml")
    assert again.paths["vector"].element_time_s == {"dropout": {"fwd": pytest.approx(10e-9), "bwd": pytest.approx(0.5e-9)}}


def test_a_role_timed_past_the_cache_is_its_measured_time_not_bounded_again_by_memory():
    # the update's element time (kernels.vector_ops.optimizer_row) was measured streaming from memory
    prof = toy(paths__vector__element_time={"optimizer": {"fwd": "0.1 ns"}, "dropout": {"fwd": "0.01 ns"}})
    update = Op(name="u", kind="optimizer", phase="optimizer", role="optimizer", elements=1_000_000)
    c = op_cost(prof, update)
    # 1e6 x 0.1 ns = 0.1 ms, although its 40 MB take 0.4 ms at the toy's 100 GB/s: the memory port is busy
    # inside the measured time, and the bytes still count
    assert c.time_s == pytest.approx(0.1e-3) and c.memory_s == pytest.approx(0.1e-3) and c.memory_timed
    assert c.bytes == {"dram": pytest.approx(40e6)} and c.energy_j["memory:dram"] == pytest.approx(40e6 * 10e-12)
    # an element time measured in cache is still bounded by the op's traffic: dropout's 8 MB take 80 us (not 10)
    drop = Op(name="d", kind="elementwise", phase="fwd", role="dropout", elements=1_000_000)
    assert op_cost(prof, drop).time_s == pytest.approx(80e-6)
    # without a measured time the update is priced by its traffic, as before
    assert op_cost(toy(), update).time_s == pytest.approx(0.4e-3)


def test_overlap_takes_the_max_and_no_overlap_the_sum():
    op = Op(name="r", kind="elementwise", phase="fwd", role="residual", elements=1_000_000)
    assert op_cost(toy(), op).time_s == pytest.approx(80e-6)
    assert op_cost(toy(execution__overlap=False), op).time_s == pytest.approx(81e-6)
    lin = linear(1000, 1000, 1000)
    assert op_cost(toy(execution__overlap=False), lin).time_s == pytest.approx(4e-3 + 0.12e-3)


def test_launch_and_path_overheads_add():
    prof = toy(execution__launch_overhead="10 us")
    assert op_cost(prof, linear(1000, 1000, 1000)).time_s == pytest.approx(4e-3 + 10e-6)


def test_sparse_op_takes_the_fastest_path_with_the_efficiency_curve():
    c = op_cost(toy(), linear(1000, 1000, 1000, density=0.1))
    # csr: F/(P*0.25) * (x + d0) = 8 ms * 0.2 = 1.6 ms; one unit -> one item, no imbalance
    assert c.path == "csr" and c.compute_s == pytest.approx(1.6e-3, rel=1e-12)
    # W stored: 0.1 * 1e6 * (4 + 4 index) = 0.8 MB; activations 8 MB
    assert c.bytes["dram"] == pytest.approx(8.8e6)
    assert c.candidates["dense-gemm"] == pytest.approx(4e-3)
    assert c.flops_executed == pytest.approx(2e8)
    # at density 0.6 csr costs 8 ms * 0.7 = 5.6 ms > dense 4 ms: the dense path wins
    assert op_cost(toy(), linear(1000, 1000, 1000, density=0.6)).path == "dense-gemm"
    with pytest.raises(UserError, match="cannot run"):
        op_cost(toy(), linear(1000, 1000, 1000), path="csr")  # a dense op has no sparse path
    assert op_cost(toy(), linear(1000, 1000, 1000, density=0.6), path="csr").time_s == pytest.approx(5.6e-3)


def test_bsp_adds_syncs_and_exchange_and_never_overlaps():
    bsp = {"sync": "1 us", "exchange_bandwidth": "1 TB/s", "exchange_energy": "1 pJ/B", "supersteps_per_op": 2}
    prof = toy(execution__bsp=bsp)
    c = op_cost(prof, linear(1000, 1000, 1000))
    assert c.bytes["exchange"] == pytest.approx(8e6)  # the activations cross the exchange
    assert c.memory_s == pytest.approx(0.12e-3 + 8e-6)
    assert c.time_s == pytest.approx(4e-3 + 0.128e-3 + 2e-6)


def test_resident_weights_live_in_sram_and_activations_on_chip_when_they_fit():
    sram = {"name": "sram", "role": "sram", "capacity": "10 MB", "bandwidth": "10 TB/s", "energy": "1 pJ/B"}
    prof = toy(memory=[sram, toy_main()])
    lin = linear(1000, 1000, 1000)  # W 4 MB, activations 8 MB: both fit 10 MB
    on = op_cost(prof, lin, resident=True)
    assert on.bytes == {"sram": pytest.approx(12e6)}
    off = op_cost(prof, lin, resident=False)
    assert off.bytes == {"dram": pytest.approx(4e6), "sram": pytest.approx(8e6)}
    big = linear(2000, 1000, 1000)  # activations (2e6 + 2e6) * 4 B = 16 MB no longer fit
    assert op_cost(prof, big, resident=True).bytes == {"sram": pytest.approx(4e6), "dram": pytest.approx(16e6)}


def test_warm_weights_stay_in_the_cache_that_holds_them():
    """kernel_time times a kernel called again and again (warm); the simulator's ops are cold."""
    l2 = {"name": "l2", "role": "cache", "capacity": "10 MB", "bandwidth": "1 TB/s", "energy": "1 pJ/B"}
    prof = toy(memory=[l2, toy_main()])
    small, big = linear(100, 1000, 1000), linear(100, 2000, 2000)  # W 4 MB (fits half of 10 MB), 16 MB
    assert op_cost(prof, small).bytes["dram"] == pytest.approx(4e6)  # cold: W from main memory
    warm = op_cost(prof, small, warm=True)
    assert "dram" not in warm.bytes and warm.bytes["l2"] == pytest.approx(4e6 + 0.8e6)
    assert op_cost(prof, big, warm=True).bytes["dram"] == pytest.approx(16e6)  # too big to stay cached
    assert kernel_time(prof, "matmul", 100, 1000, 1000) == pytest.approx(warm.time_s)


def test_output_pass_is_free_up_to_output_free_bytes():
    prof = toy(paths__csr__output_bandwidth="10 GB/s", paths__csr__output_free_bytes="1 MB")
    base = op_cost(toy(), linear(1000, 1000, 1000, density=0.1), path="csr").time_s
    # Y is 1000 x 1000 fp32 = 4 MB: 3 MB beyond the free 1 MB at 10 GB/s -> +0.3 ms
    assert op_cost(prof, linear(1000, 1000, 1000, density=0.1), path="csr").time_s == pytest.approx(base + 0.3e-3)
    small = linear(200, 1000, 1000, density=0.1)  # Y 0.8 MB: within the free bytes
    assert op_cost(prof, small, path="csr").time_s == pytest.approx(op_cost(toy(), small, path="csr").time_s)


def test_scatter_penalty_charges_scattered_nonzeros_only():
    op = linear(1000, 1000, 1000, density=0.1)
    prof = toy(paths__csr__scatter_penalty=1.0)
    base = op_cost(toy(), op, path="csr").compute_s  # 1.6 ms (test above): t_nnz 0.8 ms + t_row 0.8 ms
    # random mask: every 16x16 tile is touched (block16_frac ~ 1), fill = 0.1 -> t_nnz x (1 + 0.9)
    rand = synthetic_pattern(1000, 1000, 0.1)
    fill = 0.1 / rand["block16_frac"]
    assert op_cost(prof, op, rand, path="csr").compute_s == pytest.approx(base + 0.8e-3 * (1 - fill), rel=1e-9)
    assert op_cost(prof, op, path="csr").compute_s == pytest.approx(base + 0.8e-3 * (1 - fill), rel=1e-9)
    # the same density in 16x16 (or 32x32) blocks fills its tiles: no penalty
    for kind in ("block16", "block32"):
        assert op_cost(prof, op, synthetic_pattern(1000, 1000, 0.1, kind), path="csr").compute_s == \
            pytest.approx(base, rel=1e-9)
    assert op_cost(toy(), op, rand, path="csr").compute_s == pytest.approx(base, rel=1e-12)  # absent by default
    back = load_profile_text(profile_to_yaml(prof), source="again.yaml")
    assert back.paths["csr"].scatter_penalty == 1.0
    with pytest.raises(UserError, match=r"paths\.csr\.scatter_penalty"):
        toy(paths__csr__scatter_penalty=-1)


def test_unaligned_penalty_charges_rows_that_are_not_whole_cache_lines():
    prof = toy(**{"paths__dense-gemm__unaligned_penalty": 0.5})
    aligned, odd_n, odd_k = linear(1024, 1024, 1024), linear(1024, 1024, 1023), linear(1024, 1020, 1024)
    assert op_cost(prof, aligned).time_s == pytest.approx(op_cost(toy(), aligned).time_s, rel=1e-12)
    for op in (odd_n, odd_k):  # compute-bound (F/(P*0.5) ~ 4.3 ms vs ~0.12 ms of traffic): 1.5x
        assert op_cost(prof, op).compute_s == pytest.approx(1.5 * op_cost(toy(), op).compute_s, rel=1e-12)
    assert op_cost(prof, linear(1024, 1024, 1023)).time_s > op_cost(prof, linear(1024, 1024, 1024)).time_s
    assert load_profile_text(profile_to_yaml(prof), source="a.yaml").paths["dense-gemm"].unaligned_penalty == 0.5


def test_tile_fill_on_drawn_masks():
    from accelsim.hardware.kernel_terms import tile_fill
    rng = np.random.default_rng(0)
    rand = rng.random((256, 512)) < 0.05
    stats = pattern_stats(rand)
    assert tile_fill(stats, stats["density"]) == pytest.approx(0.05, abs=0.01)
    blocks = np.kron(rng.random((8, 16)) < 0.2, np.ones((32, 32), dtype=bool))
    stats = pattern_stats(blocks)
    assert tile_fill(stats, stats["density"]) == 1.0
    two_four = np.zeros((64, 64), dtype=bool)
    two_four[:, 0::4] = two_four[:, 2::4] = True
    stats = pattern_stats(two_four)
    assert tile_fill(stats, stats["density"]) == pytest.approx(0.5)
    assert tile_fill(None, 0.3) == 1.0  # no statistics: no penalty


def toy_main():
    return {"name": "dram", "role": "main", "capacity": "1 GiB", "bandwidth": "100 GB/s", "energy": "10 pJ/B"}


def test_ideal_dense_is_flops_over_peak_and_sparse_exactly_density_times():
    ideal = load_profile("ideal")
    dense = kernel_time(ideal, "matmul", 512, 768, 3072, 1.0)
    assert dense == pytest.approx(2 * 512 * 768 * 3072 / 100e12, rel=1e-12)
    for d in (0.5, 0.1, 0.013, 0.001):
        assert kernel_time(ideal, "matmul", 512, 768, 3072, d) == pytest.approx(d * dense, rel=1e-12)
    op = Op(name="e", kind="elementwise", phase="fwd", role="gelu", elements=10**6)
    assert op_cost(ideal, op).time_s == 0.0  # only trace FLOPs count on the reference line


def test_kernel_kinds_describe_the_forward_layer():
    ideal = load_profile("ideal")
    f = kernel_time(ideal, "matmul", 64, 128, 256, 0.25)
    assert kernel_time(ideal, "matmul_dx", 64, 128, 256, 0.25) == pytest.approx(f)
    assert kernel_time(ideal, "matmul_dw", 64, 128, 256, 0.25) == pytest.approx(f)
    with pytest.raises(UserError):
        kernel_time(ideal, "conv", 1, 1, 1)
    with pytest.raises(UserError):
        kernel_time(ideal, "matmul", 1, 1, 1, density=0.0)
    with pytest.raises(UserError):
        kernel_time(ideal, "matmul", 1, 1, 1, pattern="3:8")
    with pytest.raises(UserError, match="unknown dtype"):
        kernel_time(ideal, "matmul", 4, 4, 4, dtype="int3")
    with pytest.raises(UserError, match="compute.peak"):
        kernel_time("cpu-xeon-8380", "matmul", 4, 4, 4, dtype="bf16")  # Ice Lake has no bf16 peak
    with pytest.raises(UserError, match="at most half"):
        kernel_time(ideal, "matmul", 4, 4, 4, density=0.7, pattern="2:4")


# ------------------------------------------------------------------------------------ work items

def test_work_item_convention_and_imbalance():
    ipu = load_profile("ipu-gc200")  # static partition: one item per tile
    c = op_cost(ipu, linear(512, 768, 3072, density=0.05), path="popsparse-dynamic")
    n, g = len(c.work_items), c.units_per_item
    assert n == 1024 and g == pytest.approx(1472 / 1024)  # more tiles than MAX_ITEMS
    balanced = sum(c.work_items) * g / ipu.compute.count
    assert c.compute_s == pytest.approx(max(balanced, max(c.work_items)))
    assert c.compute_s > 1.05 * balanced  # unstructured rows: the slowest tile sets the time
    assert c.work_items == sorted(c.work_items, reverse=True)
    gpu = load_profile("gpu-a100")
    d = op_cost(gpu, linear(2048, 768, 3072))
    assert len(d.work_items) == 108 * 4 and len(set(d.work_items)) == 1
    assert sum(d.work_items) / 108 == pytest.approx(d.compute_s)  # dense: perfectly balanced
    s = op_cost(gpu, linear(2048, 768, 3072, density=0.02), path="csr-spmm")
    greedy = makespan(s.work_items, 108)
    assert s.compute_s <= greedy * (1 + 1e-12) <= s.compute_s * 4 / 3


def test_skewed_histogram_costs_more_than_uniform_rows():
    ipu = load_profile("ipu-gc200")
    op = linear(512, 768, 3072, density=0.1)
    uniform = synthetic_pattern(3072, 768, 0.1)
    skewed = dict(uniform)
    skewed["row_model"] = None  # a real pattern row: histogram only
    skewed["row_nnz_hist"] = [2765] + [0] * 14 + [307]  # 10 % of rows full, the rest empty
    skewed["row_nnz_min"], skewed["row_nnz_max"], skewed["row_nnz_mean"] = 0.0, 768.0, 76.8
    del skewed["row_model"]
    a = op_cost(ipu, op, uniform, path="popsparse-dynamic")
    b = op_cost(ipu, op, skewed, path="popsparse-dynamic")
    assert b.compute_s > 1.5 * a.compute_s


def test_makespan_is_greedy_list_scheduling():
    assert makespan([3, 3, 2, 2, 2], 2) == 7.0  # greedy: (3,2,2) and (3,2)
    assert makespan([5, 1], 4) == 5.0
    assert makespan([], 3) == 0.0


# ------------------------------------------------------------------------------------ patterns

def test_synthetic_pattern_matches_drawn_masks():
    rng = np.random.default_rng(0)
    for kind, density in (("unstructured", 0.1), ("unstructured", 0.4), ("block16", 0.2), ("2:4", 0.5)):
        rows, cols = (2048, 1024) if kind == "block16" else (512, 1024)  # enough block rows for the spread
        if kind == "unstructured":
            mask = rng.random((rows, cols)) < density
        elif kind == "block16":
            mask = np.kron(rng.random((rows // 16, cols // 16)) < density, np.ones((16, 16), dtype=bool))
        else:
            mask = np.zeros((rows, cols), dtype=bool)
            groups = np.argsort(rng.random((rows, cols // 4, 4)), axis=2)[:, :, :2]
            np.put_along_axis(mask.reshape(rows, cols // 4, 4), groups, True, axis=2)
        real = pattern_stats(mask)
        model = synthetic_pattern(rows, cols, density, kind)
        assert model["density"] == pytest.approx(real["density"], abs=0.015), kind
        assert model["row_nnz_mean"] == pytest.approx(real["row_nnz_mean"], rel=0.08), kind
        assert model["row_nnz_std"] == pytest.approx(real["row_nnz_std"], rel=0.15, abs=0.5), kind
        assert model["row_nnz_max"] == pytest.approx(real["row_nnz_max"], rel=0.15, abs=2), kind
        for key in ("block4_frac", "block8_frac", "block16_frac", "block32_frac", "nm_2_4_frac", "nm_4_8_frac"):
            assert model[key] == pytest.approx(real[key], abs=0.03), (kind, key)
        hist_model, hist_real = np.array(model["row_nnz_hist"]), np.array(real["row_nnz_hist"])
        assert hist_model.sum() == rows and np.abs(hist_model - hist_real).sum() <= 0.25 * rows, kind


def test_two_four_and_block_paths_follow_the_pattern_statistics():
    a100 = load_profile("gpu-a100")
    fwd = linear(3072, 10240, 3072, density=0.5)
    two_four = synthetic_pattern(3072, 10240, 0.5, "2:4")
    assert op_cost(a100, fwd, two_four, dtype="fp16").path == "2:4-sparse-tc"
    assert op_cost(a100, linear(3072, 3072, 10240, 0.5, "bwd_input"), two_four, dtype="fp16").path == "dense-gemm"
    almost = dict(two_four, nm_2_4_frac=0.999)
    assert op_cost(a100, fwd, almost, dtype="fp16").path == "dense-gemm"
    assert op_cost(a100, fwd, two_four, dtype="fp32").path == "dense-gemm"  # no fp32 sparse tensor cores
    blocky = synthetic_pattern(3072, 768, 0.1, "block16")
    # published A100 block-16 data (benchmarks/published/points.csv): fp32 BSR beats dense from ~70 % (Triton)
    # or ~85 % (cuSPARSE) sparsity, half-precision Triton BSR only past 95 %, so at 90 % fp32 takes Triton's
    # block-16 path (1.7-2x faster than cuSPARSE's bsr-fp32 from 75 to 97 % sparsity) and bf16 stays dense
    c = op_cost(a100, linear(4096, 768, 3072, density=0.1), blocky, dtype="fp32")
    assert c.path == "bsr-b16" and c.block == 16
    assert op_cost(a100, linear(4096, 768, 3072, density=0.1), blocky).path == "dense-gemm"
    assert op_cost(a100, linear(4096, 768, 3072, density=0.1)).path == "dense-gemm"  # random: blocks all full


# ------------------------------------------------------------------------------------ properties

PROFILES = {name: load_profile(name) for name in list_profiles()}
_shape = st.integers(min_value=1, max_value=1024)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(PROFILES)), st.sampled_from(["matmul", "matmul_dx", "matmul_dw"]),
       st.sampled_from(["unstructured", "block16", "block4", "2:4"]), _shape, _shape, _shape,
       st.floats(1e-4, 1.0), st.floats(1e-4, 1.0))
def test_more_density_is_never_faster(name, kind, pattern, m, k, n, d1, d2):
    lo, hi = sorted((d1, d2))
    if pattern == "2:4":
        lo, hi = lo / 2, hi / 2
    t_lo = kernel_time(PROFILES[name], kind, m, k, n, lo, pattern)
    t_hi = kernel_time(PROFILES[name], kind, m, k, n, hi, pattern)
    assert t_lo <= t_hi * (1 + 1e-9)


def _scale_bandwidth(profile, factor, level_index):
    memory = list(profile.memory)
    if memory:
        i = level_index % len(memory)
        memory[i] = dataclasses.replace(memory[i], bandwidth_Bps=memory[i].bandwidth_Bps * factor)
    bsp = profile.execution.bsp
    if bsp is not None:
        bsp = dataclasses.replace(bsp, exchange_bandwidth_Bps=bsp.exchange_bandwidth_Bps * factor)
    return dataclasses.replace(profile, memory=tuple(memory),
                               execution=dataclasses.replace(profile.execution, bsp=bsp))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(PROFILES)), _shape, _shape, _shape, st.floats(1e-3, 1.0),
       st.floats(1.0, 100.0), st.integers(0, 3), st.sampled_from(["linear", "elementwise", "optimizer", "attn"]))
def test_more_bandwidth_is_never_slower(name, m, k, n, density, factor, level, kind):
    prof = PROFILES[name]
    faster = _scale_bandwidth(prof, factor, level)
    op = {"linear": linear(m, k, n, density),
          "elementwise": Op(name="e", kind="elementwise", phase="fwd", role="gelu", elements=m * k),
          "optimizer": Op(name="o", kind="optimizer", phase="optimizer", elements=m * n, flops=10.0 * m * n),
          "attn": Op(name="a", kind="attn_matmul", phase="fwd", m=m, k=k, n=n, batch=4,
                     flops_dense=8.0 * m * k * n, flops=8.0 * m * k * n)}[kind]
    for resident in (True, False):
        assert op_cost(faster, op, resident=resident).time_s <= op_cost(prof, op, resident=resident).time_s * (1 + 1e-9)


# ------------------------------------------------------------------------------------ reference points

def test_a100_fp16_two_four_linear_is_about_1_38x_not_2x():
    """PyTorch 'Accelerating BERT with semi-structured (2:4) sparsity' tutorial (pytorch/tutorials,
    advanced_source/semi_structured_sparse.py): nn.Linear(10240, 3072) fp16 on x of 3072 x 10240,
    A100 80GB: dense 0.870 ms, 2:4 sparse 0.630 ms, speedup 1.382x."""
    a100 = load_profile("gpu-a100")
    dense = kernel_time(a100, "matmul", 3072, 10240, 3072, 1.0, dtype="fp16")
    sparse = kernel_time(a100, "matmul", 3072, 10240, 3072, 0.5, "2:4", dtype="fp16")
    assert dense == pytest.approx(0.870e-3, rel=0.05)
    # the 2:4 path is fitted to 11 published A100 rows (benchmarks/published/points.csv), this one among
    # them; a per-call overhead the 1-token row of pytorch#111339 needs costs this product ~0.17 ms
    assert sparse == pytest.approx(0.630e-3, rel=0.2)
    assert 1.1 <= dense / sparse <= 1.5  # far under the 2x of the datasheet's "sparse" peak


def test_a100_cusparse_csr_fp32_never_crosses_over():
    """graphcore-research/sparsity-benchmarks (PopSparse paper, Li et al. 2023, arXiv:2303.16999): cuSPARSE
    CSR fp32 on A100 at m=k=4096 reaches 0.4-0.6x of dense throughput from 75 % to 97 % sparsity."""
    a100 = load_profile("gpu-a100")
    dense = kernel_time(a100, "matmul", 4096, 4096, 4096, 1.0, dtype="fp32")
    ratios = [dense / kernel_time(a100, "matmul", 4096, 4096, 4096, d, dtype="fp32", path="csr-spmm")
              for d in (0.25, 0.15, 0.1, 0.05, 0.03)]
    assert all(0.35 <= r <= 0.65 for r in ratios), ratios
    assert ratios == sorted(ratios)  # relatively better as it gets sparser, but never crosses 1
    assert kernel_time(a100, "matmul", 4096, 4096, 4096, 0.03, dtype="fp32") == pytest.approx(dense)


#: every committed calibration: the profile and the machine (cpu family/model) its sweep was measured on
CALIBRATIONS = {"hwconfigs/cpu-zen3.yaml": "25/1",  # Zen 3 guest without AVX-512 (dev machine since 2026-11-29)
                "benchmarks/results/zen5/cpu-zen5.yaml": None}  # Zen 5 guest with AVX-512 (up to 2026-11-22)


@pytest.mark.parametrize("profile_file", sorted(CALIBRATIONS))
def test_committed_calibration_predicts_its_sweep(profile_file):
    """A calibrated profile (benchmarks/bench_calibration.py) and the sweep named in its fitted: block: its
    held-out cases, predicted now through kernel_time, reproduce the error recorded at fitting time and stay
    within the issue's per-class target, and the model puts the CSR/dense crossover of the bert-base FFN
    product on the side the sweep measured wherever the two differ by 25 %. Pure arithmetic on committed
    files: fails when the cost model, the profile or the data drift apart."""
    from accelsim.kernels.bench import load_measurements
    from accelsim.kernels.validation import validate

    prof = load_profile(ROOT / profile_file)
    sweep = ROOT / prof.fitted["measurements"]
    assert sweep.is_file() and sweep.parent.parent.name == "results", sweep
    family = CALIBRATIONS[profile_file]
    isa = prof.fitted["machine"]["isa_flags"]
    assert ("avx512f" not in isa) if family == "25/1" else ("avx512f" in isa)
    assert family is None or prof.fitted["machine"]["cpu_family_model"] == family
    report = validate(sweep, prof)
    assert report["mode"].startswith("held-out") and report["n_points"] >= 100
    assert report["overall_mape"]["mape"] == pytest.approx(prof.fitted["heldout_mape"], rel=1e-6)
    # the issue's 10 % is met on the Zen 3 (docs/hardware-profiles.md: 8.2 %, 2026-12-06), not on the Zen 5's
    # older fit (11.5 %); these bounds catch a fit or a model change that makes it worse
    assert report["overall_mape"]["mape"] <= (0.10 if family == "25/1" else 0.16)
    assert all(g["mape"] <= 0.20 for g in report["mape_by_pattern"].values()), report["mape_by_pattern"]
    recs = [r for r in load_measurements(sweep)["records"] if (r["op"], r["tokens"], r["d_in"], r["d_out"],
                                                               r["pattern"]) == ("matmul", 512, 768, 3072, "unstructured")]
    dense = kernel_time(prof, "matmul", 512, 768, 3072, 1.0)
    clear = {r["density"]: r["sparse_s"] < r["dense_s"] for r in recs
             if not 0.8 <= r["sparse_s"] / r["dense_s"] <= 1.25}
    assert True in clear.values() and False in clear.values(), clear  # both sides of the crossover measured
    for d, sparse_wins in clear.items():
        assert (kernel_time(prof, "matmul", 512, 768, 3072, d, path="csr-spmm-fwd") < dense) == sparse_wins, d


def test_cpu_local_is_not_the_zen5_calibration():
    """cpu-zen3 (bundled as cpu-local until 2026-12-06; the old name still loads it) describes the Zen 3 dev
    machine (its own clock and 256-bit FMA peak), not the Zen 5 the first calibration was fitted on: a profile
    swap would silently change every cpu-zen3 figure in README and docs."""
    local, zen5 = load_profile("cpu-local"), load_profile(ROOT / "benchmarks/results/zen5/cpu-zen5.yaml")
    assert local == load_profile("cpu-zen3") and "cpu-local" not in list_profiles()
    assert local.name == "cpu-zen3" and zen5.name == "cpu-zen5"
    assert local.compute.peak_flops["fp32"] < 0.5 * zen5.compute.peak_flops["fp32"]


# ------------------------------------------------------------------------------------ capacity

def _manifest(hidden, inter, layers, density, batch=8, seq=128, vocab=30522, params=None):
    infos = []
    for b in range(layers):
        for role, shape in (("q", [hidden, hidden]), ("k", [hidden, hidden]), ("v", [hidden, hidden]),
                            ("attn_out", [hidden, hidden]), ("ffn_in", [inter, hidden]), ("ffn_out", [hidden, inter])):
            infos.append(LayerInfo(f"bert.encoder.layer.{b}.{role}", role, shape, density))
    listed = sum(i.shape[0] * i.shape[1] for i in infos)
    model = dict(layers=layers, hidden=hidden, heads=max(hidden // 64, 1), intermediate=inter, vocab=vocab,
                 seq_len=seq, params=params or listed + vocab * hidden)
    return Manifest(model=model, batch_size=batch, dtype="fp16", method={"name": "rigl"}, layers=infos)


def test_fits_on_chip():
    tiny = _manifest(128, 512, 2, 0.1, vocab=1000)
    base = _manifest(768, 3072, 12, 1.0, batch=32)
    assert fits_on_chip("ipu-gc200", tiny) and not fits_on_chip("ipu-gc200", base)
    assert not fits_on_chip("gpu-a100", tiny)  # no software-managed SRAM level
    assert fits_on_chip("wafer-wse2", base)
    sparse = training_state_bytes(_manifest(768, 3072, 12, 0.1, batch=32))
    assert sparse < training_state_bytes(base)
    ops = step_ops(tiny, {}, StepKind())
    ipu = load_profile("ipu-gc200")
    step_on = sum(op_cost(ipu, op, resident=True).time_s for op in ops)
    step_off = sum(op_cost(ipu, op, resident=False).time_s for op in ops)
    assert step_on < step_off  # streaming weights from off-chip memory costs time


def test_allreduce_time_is_the_ring_formula():
    a100 = load_profile("gpu-a100")
    assert allreduce_time(a100, 1e9, 1) == 0.0
    assert allreduce_time(a100, 1e9, 8) == pytest.approx(2 * 7 / 8 * 1e9 / 300e9 + 2 * 7 * 5e-6)
    with pytest.raises(ValueError):
        allreduce_time("ideal", 1e9, 2)


def test_every_op_of_a_training_step_is_costed_on_every_profile():
    man = _manifest(128, 512, 2, 0.2, vocab=1000)
    ops = step_ops(man, {}, StepKind(mask_update=True, dense_grad=True))
    kinds = {op.kind for op in ops}
    assert kinds == {"linear", "attn_matmul", "elementwise", "embedding", "optimizer", "mask_update"}
    for prof in PROFILES.values():
        for op in ops:
            c = op_cost(prof, op)
            assert c.time_s >= 0 and np.isfinite(c.time_s) and c.work_items
            assert all(v >= 0 for v in c.energy_j.values())


def test_efficiency_parameters_are_recoverable_with_scipy():
    """The calibration workflow of docs/hardware-profiles.md: refit csr-spmm on cpu-local from timings the
    model itself produced with known parameters, starting elsewhere; least_squares must find them. Two
    shapes are needed: on one shape the per-row term (d_half, proportional to the problem size) and the
    fixed overhead are both intercepts and cannot be told apart."""
    from scipy.optimize import least_squares

    from accelsim.hardware import fittable_params, param_bounds, with_params

    base = load_profile(Path(__file__).parent / "data" / "cpu-simple.yaml")  # one CSR path for every phase
    keys = ["paths.csr-spmm.peak_fraction", "paths.csr-spmm.d_half", "paths.csr-spmm.overhead"]
    truth = dict(zip(keys, [0.2, 0.05, 0.5e-3]))
    target = with_params(base, truth)
    densities = [0.01, 0.03, 0.1, 0.2, 0.4]
    shapes = [(512, 768, 3072), (128, 768, 768)]
    data = [(s, d, kernel_time(target, "matmul", *s, d, path="csr-spmm")) for s in shapes for d in densities]

    def residuals(x):
        prof = with_params(base, dict(zip(keys, x)))
        return [np.log(kernel_time(prof, "matmul", *s, d, path="csr-spmm") / t) for s, d, t in data]

    start = [fittable_params(base)[k] for k in keys]
    lo, hi = zip(*map(param_bounds, keys))
    fit = least_squares(residuals, start, bounds=(lo, np.minimum(hi, [1.0, 1.0, 0.1])), x_scale=[0.1, 0.01, 1e-3])
    assert fit.x == pytest.approx([truth[k] for k in keys], rel=0.02)
    fitted = with_params(base, dict(zip(keys, fit.x)), source="fitted in tests/test_cost.py")
    assert fitted.sources["paths.csr-spmm.d_half"] == "fitted in tests/test_cost.py"
    again = fittable_params(load_profile_text(profile_to_yaml(fitted)))
    assert again == pytest.approx(fittable_params(fitted), rel=1e-12)


def test_top_level_kernel_time_is_the_simulators_cost_model():
    import accelsim

    assert accelsim.kernel_time is kernel_time
    t = accelsim.kernel_time("cpu-local", "matmul", 512, 768, 3072, density=0.1, pattern="block32")
    assert t == kernel_time(accelsim.load_profile("cpu-local"), "matmul", 512, 768, 3072, 0.1, pattern="block32")
    assert 0 < t < accelsim.kernel_time("cpu-local", "matmul", 512, 768, 3072)
    with pytest.raises(AttributeError):
        accelsim.no_such_thing


def test_sparse_execution_gather_charges_the_values_of_the_chosen_formats():
    """The trainer's sparse execution gathers, every step, the values its forward and input-gradient formats store:
    nnz on a CSR path, every value of the kept tiles on a block path (timed apart, GATHER_TILES), nothing on a
    dense one. Elementwise FLOPs of a gather are one per value, so flops_executed counts the charged values."""
    from accelsim.workload import GATHER

    times = {"gather": {"fwd": "2 ns"}, "gather_tiles": {"fwd": "0.5 ns"}}
    rng = np.random.default_rng(0)
    scattered = pattern_stats(rng.random((256, 256)) < 0.1)  # every 32x32 tile holds a nonzero
    gather = Op("l.gather", "elementwise", "fwd", layer="l", role=GATHER, density=scattered["density"],
                elements=2 * scattered["nnz"], m=512, k=256, n=256)
    block32 = {"pattern": "block", "block_sizes": [32], "peak_fraction": 1.0}
    csr_wins = toy(paths__vector__element_time=times)
    tiles_win = toy(paths__vector__element_time=times, paths__bsr32=block32, paths__csr__peak_fraction=0.001)
    dense_wins = toy(paths__vector__element_time=times, paths__csr__peak_fraction=0.001)
    assert op_cost(csr_wins, gather, scattered).flops_executed == 2 * scattered["nnz"]
    # whole tiles at a quarter of a scattered value's time: 2 x 65536 values weigh 32768 scattered ones
    assert op_cost(tiles_win, gather, scattered).flops_executed == 2 * 256 * 256 * 0.25
    assert op_cost(dense_wins, gather, scattered).flops_executed == 0
    # without the layer's products (m = 0) the op is priced as counted
    assert op_cost(tiles_win, dataclasses.replace(gather, m=0), scattered).flops_executed == 2 * scattered["nnz"]
