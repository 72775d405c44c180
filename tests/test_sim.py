"""The event-driven simulator: op timing on engines, overlap, energy, epoch memoisation, results, CLI."""
import json
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from accelsim.errors import UserError
from accelsim.sim.api import simulate_device
from accelsim.sim.device import DeviceSpec
from accelsim.sim.engine import OpSimulator, dependency_order, grad_elements, simulate_step
from accelsim.sim.result import smoothed_loss
from accelsim.sim.schedule import group_ids, plan_epochs, plan_per_step
from accelsim.sim.units import ring_allreduce_s
from accelsim.synth import synth_trace
from accelsim.trace import PHASES, load_trace
from accelsim.workload import Op, StepKind, step_ops


@dataclass
class Cost:
    """A hand-made OpCost."""

    compute_s: float
    memory_s: float
    time_s: float
    work_items: list = field(default_factory=list)
    flops_executed: float = 0.0
    bytes: dict = field(default_factory=dict)
    energy_j: dict = field(default_factory=dict)
    path: str = "test"


def _const(cost):
    return lambda op, pattern: cost


OP = Op("x.fwd", "linear", "fwd", m=4, k=4, n=4, flops=128.0, flops_dense=128.0)


def _time(device, cost):
    return OpSimulator(device, _const(cost)).time(OP, None)


def test_compute_bound_op_takes_its_cost():
    dev = DeviceSpec("t", engines=4)
    t = _time(dev, Cost(compute_s=2.0, memory_s=0.5, time_s=2.0, work_items=[1.0] * 8))
    assert t.duration == pytest.approx(2.0)
    assert t.units == pytest.approx({"compute": 2.0, "memory": 0.0, "idle": 0.0})
    assert t.compute_work == pytest.approx(8.0)


def test_work_items_expose_imbalance():
    # greedy on 2 engines: (3 | 3), then (2 | 2) at t=3, then the last 2 at t=5 -> makespan 7, not 12/2 = 6
    dev = DeviceSpec("t", engines=2)
    t = _time(dev, Cost(compute_s=7.0, memory_s=0.0, time_s=7.0, work_items=[3, 3, 2, 2, 2]))
    assert t.duration == pytest.approx(7.0)
    # one straggler item dominates however many engines there are
    t = _time(DeviceSpec("t", engines=64), Cost(compute_s=5.0, memory_s=0, time_s=5.0, work_items=[5] + [1] * 10))
    assert t.duration == pytest.approx(5.0)


def test_wave_shortcut_matches_the_per_item_schedule():
    """Equal items, or no more items than engines, skip the per-item processes; the schedule they stand
    for is the same: compare with items perturbed just enough to take the general path."""
    import simpy

    from accelsim.sim.units.compute import ComputeArray

    def run(items, engines):
        env = simpy.Environment()
        arr = ComputeArray(env, engines)
        env.process(arr.run(items, units_per_item=2.0))
        env.run()
        return env.now, arr.log.work, arr.log.intervals

    from accelsim.hardware.items import makespan

    for items, engines in (([1.5] * 10, 4), ([3.0, 1.0, 2.0], 8), ([2.0] * 4, 4)):
        fast = run(items, engines)
        assert fast[0] == pytest.approx(makespan(items, engines)) and fast[1] == pytest.approx(2.0 * sum(items))
        slow = run([d * (1 + 1e-9 * i) for i, d in enumerate(items)], engines)  # unequal: simpy per item
        assert fast[0] == pytest.approx(slow[0]) and fast[1] == pytest.approx(slow[1])
        assert len(fast[2]) == -(-len(items) // engines)  # one interval per wave, not per item


def test_memory_overlaps_compute_only_when_the_profile_allows():
    cost = Cost(compute_s=2.0, memory_s=3.0, time_s=3.0, work_items=[2.0])
    assert _time(DeviceSpec("t", overlap=True), cost).duration == pytest.approx(3.0)
    seq = _time(DeviceSpec("t", overlap=False), replace(cost, time_s=5.0))
    assert seq.duration == pytest.approx(5.0) and seq.units["memory"] == pytest.approx(3.0)
    # BSP: compute, then the sync the cost model charged beyond compute + memory, then the exchange
    bsp = _time(DeviceSpec("t", bsp=True), replace(cost, time_s=5.5))
    assert bsp.duration == pytest.approx(5.5) and bsp.units["idle"] == pytest.approx(0.5)


def test_traffic_timed_inside_a_measured_op_overlaps_even_without_overlap():
    # a CPU profile's update, timed streaming from memory (workload.STREAMED_ROLES): its traffic ran inside it
    timed = Cost(compute_s=2.0, memory_s=1.5, time_s=2.0, work_items=[2.0])
    timed.memory_timed = True
    t = _time(DeviceSpec("t", overlap=False), timed)
    assert t.duration == pytest.approx(2.0) and t.units["memory"] == pytest.approx(0.0)
    assert _time(DeviceSpec("t", overlap=False), Cost(2.0, 1.5, 3.5, [2.0])).duration == pytest.approx(3.5)


def test_fixed_overhead_is_idle_time():
    t = _time(DeviceSpec("t"), Cost(compute_s=1.0, memory_s=0.2, time_s=1.25))
    assert t.duration == pytest.approx(1.25)
    assert t.units["idle"] == pytest.approx(0.25)


def test_dependency_order(rigl_run):
    man = load_trace(rigl_run).manifest
    ops = dependency_order(step_ops(man, {}, StepKind(mask_update=True)))
    phases = [o.phase for o in ops]
    last_fwd = max(i for i, p in enumerate(phases) if p == "fwd")
    first_bwd = min(i for i, p in enumerate(phases) if p.startswith("bwd"))
    assert last_fwd < first_bwd < phases.index("optimizer") < phases.index("mask_update")
    bwd_blocks = [o.block for o in ops if o.phase.startswith("bwd") and o.block >= 0]
    assert bwd_blocks == sorted(bwd_blocks, reverse=True)


# --- whole traces with a small analytic device ------------------------------------------------------

def _flop_cost(peak=1e12, bw=5e11, engines=4, overlap=True, launch=1e-6):
    """Time = FLOPs at peak vs bytes at bandwidth; energy 1 pJ/FLOP and 10 pJ/B; balanced items."""
    def cost(op, pattern):
        work = op.flops or op.elements
        c = work / peak
        nbytes = 4.0 * ((op.m * op.k + op.k * op.n + op.m * op.n) * op.batch if op.m else op.elements)
        m = nbytes / bw
        t = (max(c, m) if overlap else c + m) + launch
        return Cost(compute_s=c, memory_s=m, time_s=t, work_items=[c] * engines, flops_executed=op.flops,
                    bytes={"main": nbytes}, energy_j={"compute": work * 1e-12, "memory:main": nbytes * 1e-11},
                    path="sparse" if op.sparse else "dense")
    return cost


DEV = DeviceSpec("toy", engines=4, peak_flops=1e12, static_w=50.0, link_bandwidth=1e10, link_latency=2e-6)


@pytest.fixture(scope="module")
def rigl_run(tmp_path_factory):
    return synth_trace("bert-tiny", "rigl", 0.9, steps=50, update_every=10, batch_size=4, seq_len=32,
                       out=tmp_path_factory.mktemp("sim") / "rigl")


def test_energy_and_time_parts_sum_to_totals(rigl_run):
    r = simulate_device(load_trace(rigl_run), DEV, _flop_cost())
    assert sum(r.energy_parts.values()) == pytest.approx(r.energy_j, rel=1e-9)
    assert r.energy_parts["static"] == pytest.approx(DEV.static_w * r.time_s, rel=1e-9)
    assert sum(r.by_unit.values()) == pytest.approx(r.time_s, rel=1e-9)
    for breakdown in (r.by_kind, r.by_layer):
        assert sum(v["time_s"] for v in breakdown.values()) == pytest.approx(r.time_s, rel=1e-9)
        assert sum(v["energy_j"] for v in breakdown.values()) == pytest.approx(r.energy_j, rel=1e-9)
    assert r.timeline["time_s"].sum() == pytest.approx(r.time_s, rel=1e-9)
    assert r.timeline["energy_j"].sum() == pytest.approx(r.energy_j, rel=1e-9)
    assert 0 < r.utilisation["compute"] <= 1 and 0 < r.utilisation["flops"] <= 1


@pytest.mark.parametrize("devices", [1, 3])
def test_epoch_memoisation_equals_brute_force(rigl_run, devices):
    trace = load_trace(rigl_run)
    fast = simulate_device(trace, DEV, _flop_cost(), devices)
    slow = simulate_device(trace, DEV, _flop_cost(), devices, plan=plan_per_step(trace), memoize=False)
    assert fast.epochs == 2 and slow.epochs == 50  # ordinary steps + RigL update steps
    assert fast.time_s == pytest.approx(slow.time_s, rel=1e-12)
    assert fast.energy_j == pytest.approx(slow.energy_j, rel=1e-12)
    np.testing.assert_allclose(fast.timeline["time_s"], slow.timeline["time_s"], rtol=1e-12)
    assert slow.events > 10 * fast.events


def test_memoisation_with_distinct_patterns(tmp_path):
    run = synth_trace("bert-tiny", "rigl", 0.8, steps=40, update_every=10, batch_size=2, seq_len=16,
                      out=tmp_path / "r", redraw=True)
    trace = load_trace(run)
    fast = simulate_device(trace, DEV, _flop_cost())
    slow = simulate_device(trace, DEV, _flop_cost(), plan=plan_per_step(trace), memoize=False)
    assert fast.epochs > 2  # every redraw is its own pattern epoch
    assert fast.time_s == pytest.approx(slow.time_s, rel=1e-12)


def test_update_steps_cost_more_and_sparse_beats_dense(rigl_run):
    r = simulate_device(load_trace(rigl_run), DEV, _flop_cost())
    steps = load_trace(rigl_run).steps
    changed = steps["mask_changed"].to_numpy(zero_copy_only=False)
    assert r.timeline["time_s"][changed].min() > r.timeline["time_s"][~changed].max()
    assert r.speedup > 1 and r.energy_ratio < 1
    assert set(r.paths["bert.encoder.layer.0.attention.self.query.fwd"]) == {"sparse"}
    # the trace's FLOPs and the simulated ones are the same ops, up to the 1e-4 density quantisation
    assert r.flops_executed == pytest.approx(r.flops_trace, rel=1e-3)


def test_dense_trace_speedup_is_one(tmp_path):
    run = synth_trace("bert-tiny", "dense", 0.0, steps=20, batch_size=2, seq_len=16, out=tmp_path / "d")
    r = simulate_device(load_trace(run), DEV, _flop_cost(), 2)
    assert r.speedup == pytest.approx(1.0, rel=1e-12) and r.energy_ratio == pytest.approx(1.0, rel=1e-12)
    assert r.epochs == 1


def test_allreduce_overlaps_backward_and_scales(rigl_run):
    trace = load_trace(rigl_run)
    fast_link = replace(DEV, link_bandwidth=1e12)
    one = simulate_device(trace, fast_link, _flop_cost(), 1)
    two = simulate_device(trace, fast_link, _flop_cost(), 2)
    assert one.by_unit["link"] == 0 and two.utilisation["link"] > 0
    assert two.time_s < one.time_s  # half the batch per device outweighs a fast all-reduce
    slow = simulate_device(trace, replace(DEV, link_bandwidth=1e8), _flop_cost(), 2)
    assert slow.by_unit["link"] > 0.5 * slow.time_s and slow.time_s > one.time_s  # waiting on the link


def test_allreduce_formula_and_sparse_gradients():
    assert ring_allreduce_s(1e9, 4, 1e10, 1e-6) == pytest.approx(2 * 3 / 4 * 0.1 + 6e-6)
    assert ring_allreduce_s(1e9, 1, 1e10, 1e-6) == 0.0
    dw = Op("a.dw", "linear", "bwd_weight", layer="a", m=8, k=100, n=4, density=0.25, sparse=True)
    assert grad_elements(dw) == pytest.approx(8 * 4 * 0.25)
    assert grad_elements(replace(dw, sparse=False)) == 32


def test_bsp_allreduce_is_not_overlapped(rigl_run):
    trace = load_trace(rigl_run)
    e = plan_epochs(trace).epochs[0]
    man = trace.manifest
    ops = step_ops(man, e.densities, e.kind)
    # small buckets, so that the tiny model's gradients leave in several all-reduces during backward
    gpu = simulate_step(ops, e.patterns, OpSimulator(DEV, _flop_cost()), 4, 1e5, bucket_bytes=1e4)
    ipu_dev = replace(DEV, bsp=True)
    ipu = simulate_step(ops, e.patterns, OpSimulator(ipu_dev, _flop_cost(overlap=False)), 4, 1e5,
                        bucket_bytes=1e4)
    assert ipu.units["link"] == pytest.approx(ipu.busy["link"])  # all of it exposed
    assert gpu.units["link"] < gpu.busy["link"]  # partly hidden behind backward


def test_time_to_target(rigl_run):
    trace = load_trace(rigl_run)
    loss = trace.steps["loss"].to_numpy()
    target = float(smoothed_loss(loss)[30])
    r = simulate_device(trace, DEV, _flop_cost(), target_loss=target)
    first = int(np.nonzero(smoothed_loss(loss) <= target)[0][0])
    assert r.step_at_target == first <= 30
    assert r.time_to_target_s == pytest.approx(r.timeline["time_s"][: first + 1].sum())
    assert simulate_device(trace, DEV, _flop_cost(), target_loss=0.0).time_to_target_s is None


def test_smoothed_loss_is_a_trailing_mean():
    x = np.array([4.0, 2.0, np.nan, 6.0])
    np.testing.assert_allclose(smoothed_loss(x, window=2), [4.0, 3.0, 2.0, 6.0])


def test_result_save_and_json(rigl_run):
    r = simulate_device(load_trace(rigl_run), DEV, _flop_cost(), 2)
    js, tl = r.save()
    assert js.name == "toy-x2.json" and js.parent.name == "sim"
    data = json.loads(js.read_text())
    assert data["time_s"] == pytest.approx(r.time_s) and "timeline" not in data
    table = pq.read_table(tl)
    assert table.num_rows == 50 and table.column_names == ["step", "time_s", "energy_j", "epoch"]


def test_user_errors(rigl_run):
    trace = load_trace(rigl_run)
    with pytest.raises(UserError, match="no 'link' section"):
        simulate_device(trace, replace(DEV, link_bandwidth=None), _flop_cost(), 2)
    with pytest.raises(UserError, match="cannot split a batch of 4"):
        simulate_device(trace, DEV, _flop_cost(), 5)
    trace.manifest.method = {"name": "mystery"}
    with pytest.raises(UserError, match="unknown method 'mystery'"):
        plan_epochs(trace)
    trace.manifest.method = {"name": "mystery", "dense_grad": "always"}
    assert all(e.kind.dense_grad for e in plan_epochs(trace).epochs)


def test_group_ids():
    ids = group_ids([np.array([1.0, 1.0, 2.0, 1.0, np.nan, np.nan]), np.array([0, 1, 0, 0, 5, 5])])
    assert ids[0] == ids[3] and ids[4] == ids[5] and len(set(ids.tolist())) == 4


def test_quantisation_merges_wobbles(tmp_path):
    """Row statistics that move in the 4th digit (a real trace's mask changes) share one epoch."""
    run = synth_trace("bert-tiny", "rigl", 0.9, steps=30, update_every=10, batch_size=2, seq_len=16,
                      out=tmp_path / "q")
    trace = load_trace(run)
    tbl = trace.patterns
    std = tbl["row_nnz_std"].to_numpy() * (1 + 1e-5 * np.arange(tbl.num_rows))
    trace.patterns = tbl.set_column(tbl.schema.get_field_index("row_nnz_std"), "row_nnz_std",
                                    pa.array(std))
    assert len(plan_epochs(trace).epochs) == 2


# --- with the hardware package's bundled profiles ------------------------------------------------

def test_dense_trace_on_ideal_is_flops_over_peak(tmp_path):
    import accelsim
    from accelsim.hardware import load_profile

    peak = load_profile("ideal").compute.peak_flops["fp32"]
    dense = synth_trace("bert-tiny", "dense", 0.0, steps=12, batch_size=2, seq_len=16, out=tmp_path / "d")
    r = accelsim.simulate(dense, "ideal")
    flops = sum(load_trace(dense).steps[f"flops_{ph}"].to_numpy().sum() for ph in PHASES)
    assert r.time_s == pytest.approx(flops / peak, rel=1e-12)
    assert r.speedup == pytest.approx(1.0, rel=1e-12)
    # a sparse run on the ideal profile: time is its nonzero FLOPs, speedup the FLOP ratio
    sparse = synth_trace("bert-tiny", "rigl", 0.9, steps=12, update_every=5, batch_size=2, seq_len=16,
                         out=tmp_path / "s")
    s = accelsim.simulate(sparse, "ideal")
    sflops = sum(load_trace(sparse).steps[f"flops_{ph}"].to_numpy().sum() for ph in PHASES)
    assert s.time_s == pytest.approx(sflops / peak, rel=1e-4)  # up to the 1e-4 density quantisation
    assert s.speedup == pytest.approx(flops / sflops, rel=1e-4)


def test_engine_reproduces_the_cost_model_on_every_profile(rigl_run):
    """The simpy schedule of each op's work items gives the cost model's own time (its makespan)."""
    from accelsim.hardware import list_profiles, load_profile, op_cost

    trace = load_trace(rigl_run)
    epoch = plan_epochs(trace).epochs[1]
    ops = [o for o in step_ops(trace.manifest, epoch.densities, epoch.kind) if o.block <= 0]
    for name in list_profiles():
        prof = load_profile(name)
        sim = OpSimulator(DeviceSpec.from_profile(prof), lambda op, pat: op_cost(prof, op, pat))
        for op in ops:
            pat = epoch.patterns.get(op.layer) if op.layer else None
            assert sim.time(op, pat).duration == pytest.approx(op_cost(prof, op, pat).time_s, rel=1e-9), \
                (name, op.name)


def test_multi_device_profile_and_ring_formula(rigl_run):
    from accelsim.hardware import allreduce_time, load_profile

    prof = load_profile("gpu-a100")
    dev = DeviceSpec.from_profile(prof)
    assert ring_allreduce_s(3e8, 8, dev.link_bandwidth, dev.link_latency) == \
        pytest.approx(allreduce_time(prof, 3e8, 8))
    import accelsim
    r = accelsim.simulate(rigl_run, prof, devices=2)
    assert r.devices == 2 and r.utilisation["link"] > 0


def test_cli_simulate(rigl_run, capsys):
    from accelsim.app.cli import main

    main(["simulate", str(rigl_run), "--hw", "ideal,cpu-zen3", "--target-loss", "9.9", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert [d["hardware"] for d in data] == ["ideal", "cpu-zen3"]
    assert (rigl_run / "sim" / "ideal.json").is_file() and (rigl_run / "sim" / "cpu-zen3-timeline.parquet").is_file()
    main(["simulate", str(rigl_run), "--hw", "ideal", "--no-save"])
    out = capsys.readouterr().out
    assert "ideal" in out and "speedup" in out
    with pytest.raises(SystemExit) as err:
        main(["simulate", str(rigl_run), "--hw", "no-such-profile"])
    assert err.value.code == 2
