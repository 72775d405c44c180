"""Sparsity methods: exact budgets, masked forwards, schedules, distributions, resume, errors."""
from __future__ import annotations

import io
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from accelsim.errors import UserError
from accelsim.trainer.sparsity import (CubicSchedule, DropGrowSchedule, SparsityConfig, allocate, available_methods,
                              build_method, cosine_drop_fraction, erk, layer_densities)
from accelsim.trainer.sparsity.masks import Grid, nm_valid
from accelsim.trainer.sparsity.methods.snfs import split_proportionally

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: extra threads only add contention on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SPARSE = ["static", "set", "rigl", "snfs", "gmp", "block-set", "block-rigl", "nm"]


def make_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 16))


def linears(model: nn.Sequential) -> list[tuple[str, nn.Linear]]:
    return [(f"l{i}", mod) for i, mod in enumerate(model) if isinstance(mod, nn.Linear)]


def cfg_for(method: str, **kw) -> SparsityConfig:
    base = dict(method=method, sparsity=0.5 if method == "nm" else 0.8, update_every=3, end_fraction=0.9,
                drop_fraction=0.3, block_size=16, gmp_start_fraction=0.1, gmp_end_fraction=0.8)
    base.update(kw)
    return SparsityConfig(**base)


def batch(step: int) -> torch.Tensor:
    return torch.randn(8, 48, generator=torch.Generator().manual_seed(1000 + step))


def train_step(model, method, opt, step):
    opt.zero_grad(set_to_none=True)
    model(batch(step)).pow(2).mean().backward()
    method.before_optimizer_step(step)
    opt.step()
    return method.after_optimizer_step(step)


def run(method_name: str, steps: int = 24, opt_cls=torch.optim.AdamW, **kw):
    model = make_model()
    method = build_method(cfg_for(method_name, **kw), linears(model), steps)
    opt = opt_cls(model.parameters(), lr=1e-2)
    method.attach(opt)
    return model, method, opt


# ------------------------------------------------------------------ exact budgets and masked forwards

@pytest.mark.parametrize("name", SPARSE)
def test_exact_counts_and_zero_forward(name):
    steps = 24
    model, method, opt = run(name, steps)
    layers = dict(linears(model))
    seen_forward = []

    def check_forward(mod, _inp, lname=None):
        mask = method.masks[lname]
        seen_forward.append(bool((mod.weight[~mask] == 0).all()))
    for lname, mod in layers.items():
        mod.register_forward_pre_hook(lambda mod, inp, lname=lname: check_forward(mod, inp, lname))

    total_target = sum(method.targets[n] * method.grids[n].unit_numel for n in layers)
    updates = moved = 0
    for step in range(steps):
        change = train_step(model, method, opt, step)
        assert (change is not None) == method.step_kind(step).mask_update
        for n, mod in layers.items():
            mask = method.masks[n]
            assert mask.dtype == torch.bool and mask.shape == mod.weight.shape
            assert (mod.weight[~mask] == 0).all()
            assert method.densities()[n] == pytest.approx(mask.sum().item() / mask.numel())
        if change is None:
            continue
        updates += 1
        counts = {n: int(method.masks[n].sum()) for n in layers}
        if name == "snfs":  # per-layer budgets move between layers, the total never changes
            assert sum(counts.values()) == total_target
        elif name == "gmp":
            assert all(counts[n] == method.target_at(n, step) for n in layers)
        else:
            for n in layers:
                assert counts[n] == method.targets[n] * method.grids[n].unit_numel
        if name.startswith("block"):
            assert all(method.grids[n].b == 16 and method.grids[n].is_union_of_units(method.masks[n])
                       for n in layers)
        if name == "nm":
            assert all(nm_valid(method.masks[n], 2, 4) for n in layers)
        moved += sum(change.grown.values()) + sum(change.pruned.values())
    assert all(seen_forward) and seen_forward
    assert updates > 0 or name == "static"
    assert moved > 0 or name == "static"  # the topology really changed (late cosine updates may not)
    if name == "gmp":  # the cubic schedule ends exactly on the distribution's targets
        assert {n: int(method.masks[n].sum()) for n in layers} == method.targets


def test_dense_leaves_everything_alone():
    model, method, opt = run("dense", sparsity=0.0)
    assert all(d == 1.0 for d in method.densities().values())
    for step in range(6):
        assert train_step(model, method, opt, step) is None
        assert not method.step_kind(step).sparse_compute
    assert all(bool((mod.weight != 0).all()) for _, mod in linears(model))


def test_static_magnitude_init_keeps_largest_weights():
    model = make_model()
    before = {n: mod.weight.detach().abs().clone() for n, mod in linears(model)}
    method = build_method(cfg_for("static", init="magnitude"), linears(model), 10)
    for n, mask in method.masks.items():
        assert before[n][mask].min() >= before[n][~mask].max()


def test_step_kinds():
    _, rigl, _ = run("rigl")
    _, snfs, _ = run("snfs")
    _, static, _ = run("static")
    assert [rigl.step_kind(s).dense_grad for s in range(6)] == [False, False, True, False, False, True]
    assert all(snfs.step_kind(s).dense_grad for s in range(6))
    assert not any(static.step_kind(s).mask_update or static.step_kind(s).dense_grad for s in range(30))


def test_target_densities_follow_integer_targets():
    _, rigl, _ = run("rigl")
    _, block, _ = run("block-set")
    for method in (rigl, block):
        for n, d in method.target_densities().items():
            assert d == method.densities()[n]  # held exactly at the target from the start
    _, gmp, _ = run("gmp")
    assert all(d == 1.0 for d in gmp.densities().values())
    assert sum(d * gmp.masks[n].numel() for n, d in gmp.target_densities().items()) == pytest.approx(
        0.2 * sum(m.numel() for m in gmp.masks.values()), abs=1)


def test_hyperparameters_are_json():
    for name in available_methods():
        _, method, _ = run(name, sparsity=0.0 if name == "dense" else cfg_for(name).sparsity)
        hp = json.loads(json.dumps(method.hyperparameters()))
        assert hp["name"] == name


# ------------------------------------------------------------------ distributions

def test_erk_matches_hand_computed_values():
    # eps = 0.1 * 1800 / ((20+30) + (30+40)) = 1.5; densities eps*(r+c)/(r*c)
    d = erk({"a": (20, 30), "b": (30, 40)}, 0.1)
    assert d["a"] == pytest.approx(1.5 * 50 / 600) and d["b"] == pytest.approx(1.5 * 70 / 1200)


def test_erk_makes_small_layer_dense_and_resolves():
    # first eps = 5050/220 gives the 10x10 layer 4.6 > 1: it goes dense, then eps = (5050-100)/200
    d = erk({"small": (10, 10), "big": (100, 100)}, 0.5)
    assert d["small"] == 1.0 and d["big"] == pytest.approx(0.495)
    assert 100 * d["small"] + 10000 * d["big"] == pytest.approx(5050)


def test_uniform_and_allocation_are_exact():
    assert layer_densities("uniform", {"a": (4, 4), "b": (8, 2)}, 0.25) == {"a": 0.25, "b": 0.25}
    dens = erk({"a": (32, 48), "b": (64, 32), "c": (16, 64)}, 0.2)
    units = {"a": 32 * 48, "b": 64 * 32, "c": 16 * 64}
    counts = allocate(dens, units)
    assert sum(counts.values()) == round(0.2 * sum(units.values()))
    assert all(abs(counts[n] - dens[n] * units[n]) < 1 for n in units)


# ------------------------------------------------------------------ schedules

def test_cosine_drop_schedule():
    assert cosine_drop_fraction(0, 0.3, 100) == pytest.approx(0.3)
    assert cosine_drop_fraction(25, 0.3, 100) == pytest.approx(0.15 * (1 + math.cos(math.pi / 4)))
    assert cosine_drop_fraction(50, 0.3, 100) == pytest.approx(0.15)
    assert cosine_drop_fraction(100, 0.3, 100) == 0.0
    sched = DropGrowSchedule(update_every=10, drop_fraction=0.3, t_end=75)
    assert [s for s in range(100) if sched.is_update(s)] == [9, 19, 29, 39, 49, 59, 69]
    assert sched.fraction(49) == pytest.approx(0.15 * (1 + math.cos(math.pi * 50 / 75)))


def test_gmp_cubic_schedule_values():
    sched = CubicSchedule.from_config(SparsityConfig(update_every=10, gmp_start_fraction=0.1,
                                                     gmp_end_fraction=0.55), 100)
    assert (sched.t0, sched.n, sched.t_final) == (10, 4, 50)  # floor((55 - 10) / 10) = 4 updates
    assert sched.sparsity(10, 0.8) == 0.0
    assert sched.sparsity(30, 0.8) == pytest.approx(0.8 * (1 - 0.5 ** 3))
    assert sched.sparsity(20, 0.8) == pytest.approx(0.8 * (1 - 0.75 ** 3))
    assert sched.sparsity(50, 0.8) == pytest.approx(0.8) and sched.sparsity(90, 0.8) == pytest.approx(0.8)
    assert [s for s in range(100) if sched.is_update(s)] == [19, 29, 39, 49]


# ------------------------------------------------------------------ hand-made selection cases

def _one_layer(method, sparsity, drop_fraction, **kw):
    layer = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        layer.weight.copy_((torch.arange(16, dtype=torch.float32) + 1).reshape(4, 4) / 16)
    cfg = SparsityConfig(method=method, sparsity=sparsity, distribution="uniform", init="magnitude",
                         update_every=1, end_fraction=1.0, drop_fraction=drop_fraction, **kw)
    return layer, build_method(cfg, [("w", layer)], 1000)


def test_rigl_grows_where_dense_gradient_is_largest():
    layer, rigl = _one_layer("rigl", 0.5, 0.25)  # magnitude init keeps flat 8..15; k = round(0.25*8) = 2
    assert rigl.masks["w"].flatten().nonzero().flatten().tolist() == list(range(8, 16))
    grad = torch.full((16,), 0.01)
    grad[[3, 5]] = torch.tensor([-5.0, 4.0])  # largest among the masked positions
    grad[12] = 100.0  # larger, but already active: must not count
    grad[8] = 1.0  # just-dropped position with a smaller gradient than 3 and 5
    layer.weight.grad = grad.reshape(4, 4).clone()
    assert rigl.step_kind(0).dense_grad and rigl.step_kind(0).mask_update
    rigl.before_optimizer_step(0)
    assert (layer.weight.grad.flatten()[:8] == 0).all()  # the optimizer sees a masked gradient
    change = rigl.after_optimizer_step(0)
    assert rigl.masks["w"].flatten().nonzero().flatten().tolist() == [3, 5, 10, 11, 12, 13, 14, 15]
    assert change.pruned == {"w": 2} and change.grown == {"w": 2}
    flat = layer.weight.detach().flatten()
    assert flat[3] == 0 and flat[5] == 0 and flat[8] == 0 and flat[9] == 0  # grown start at zero
    assert flat[10] == 11 / 16


def test_snfs_redistributes_to_layer_with_larger_momentum():
    a, b = nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False)
    cfg = SparsityConfig(method="snfs", sparsity=0.5, distribution="uniform", init="random", update_every=1,
                         end_fraction=1.0, drop_fraction=0.25, momentum=0.5)
    snfs = build_method(cfg, [("a", a), ("b", b)], 1000)
    old_a = snfs.masks["a"].clone()
    a.weight.grad = torch.where(old_a, 1.0, 10.0)  # momentum of a's missing weights beats its dropped ones
    b.weight.grad = torch.full((4, 4), 0.1)
    snfs.before_optimizer_step(0)
    assert snfs.layer_scores() == pytest.approx({"a": 0.5, "b": 0.05})  # (1 - beta) * g on active weights
    change = snfs.after_optimizer_step(0)
    # each layer drops 2; the 4 regrown go 10:1 -> 3.64:0.36 -> largest remainder gives a all 4
    assert change.pruned == {"a": 2, "b": 2} and change.grown == {"a": 4, "b": 0}
    assert int(snfs.masks["a"].sum()) == 10 and int(snfs.masks["b"].sum()) == 6
    assert int((snfs.masks["a"] & ~old_a).sum()) == 4


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 10), st.integers(0, 50)), min_size=1, max_size=6), st.data())
def test_split_proportionally_properties(layers, data):
    weights, capacity = [w for w, _ in layers], [c for _, c in layers]
    total = data.draw(st.integers(0, sum(capacity)))
    out = split_proportionally(total, weights, capacity)
    assert sum(out) == total and all(0 <= o <= c for o, c in zip(out, capacity))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 300), st.integers(1, 300)), min_size=1, max_size=5),
       st.floats(0.01, 1.0), st.sampled_from(["uniform", "erk"]))
def test_allocation_properties(shapes, density, dist):
    shapes = {f"l{i}": s for i, s in enumerate(shapes)}
    dens = layer_densities(dist, shapes, density)
    assert all(0 < d <= 1 + 1e-12 for d in dens.values())
    units = {n: r * c for n, (r, c) in shapes.items()}
    assert sum(dens[n] * units[n] for n in units) == pytest.approx(density * sum(units.values()))
    counts = allocate(dens, units)
    assert all(1 <= counts[n] <= units[n] and abs(counts[n] - dens[n] * units[n]) < 1 + 1e-9 for n in units)


def test_split_proportionally_caps_and_stays_exact():
    assert split_proportionally(10, [1.0, 0.0], [3, 20]) == [3, 7]
    assert split_proportionally(4, [10.0, 1.0], [10, 10]) == [4, 0]
    assert split_proportionally(7, [0.0, 0.0], [2, 5]) == [2, 5]
    out = split_proportionally(101, [0.3, 0.5, 0.2], [40, 100, 100])
    assert sum(out) == 101 and out[0] <= 40


def test_srste_nm_forward_gradient_and_decay():
    layer = nn.Linear(8, 3, bias=False)
    cfg = SparsityConfig(method="nm", n=2, m=4, srste_lambda=0.5)
    nm = build_method(cfg, [("w", layer)], 10)
    dense = nm.dense["w"].clone()
    mask = nm.masks["w"].clone()
    assert nm_valid(mask, 2, 4) and torch.equal(layer.weight.detach(), dense * mask)
    grad = torch.randn(3, 8)
    layer.weight.grad = grad.clone()
    nm.before_optimizer_step(0)
    # straight-through gradient everywhere, plus lambda * W on the pruned weights
    assert torch.allclose(layer.weight.grad, grad + 0.5 * dense * ~mask)
    assert torch.equal(layer.weight.detach(), dense)  # the optimizer updates the dense weights
    with torch.no_grad():
        layer.weight.sub_(layer.weight.grad)  # a plain SGD step with lr 1
    change = nm.after_optimizer_step(0)
    new_dense = dense - (grad + 0.5 * dense * ~mask)
    assert torch.allclose(nm.dense["w"], new_dense, rtol=0, atol=1e-6)
    assert nm_valid(nm.masks["w"], 2, 4)
    new_dense = nm.dense["w"]
    top2 = new_dense.abs().reshape(3, 2, 4).topk(2, dim=-1).indices.sort(-1).values
    assert torch.equal(nm.masks["w"].reshape(3, 2, 4).nonzero()[:, 2].reshape(3, 2, 2), top2)
    assert torch.equal(layer.weight.detach(), new_dense * nm.masks["w"])
    assert change.pruned == change.grown
    # a step skipped by the trainer (no before_optimizer_step) must not lose the pruned dense weights
    kept_dense = nm.dense["w"].clone()
    nm.after_optimizer_step(1)
    assert torch.equal(nm.dense["w"], kept_dense)
    assert torch.equal(layer.weight.detach(), kept_dense * nm.masks["w"])


# ------------------------------------------------------------------ optimizer state

@pytest.mark.parametrize("opt_cls,keys", [(torch.optim.AdamW, ("exp_avg", "exp_avg_sq")),
                                          (lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),
                                           ("momentum_buffer",))])
def test_optimizer_state_of_changed_weights_is_reset(opt_cls, keys):
    model, method, opt = run("rigl", 12, opt_cls=opt_cls)
    checked = 0
    for step in range(12):
        old = {n: m.clone() for n, m in method.masks.items()}
        change = train_step(model, method, opt, step)
        if change is None:
            continue
        for n, mod in linears(model):
            state = opt.state[mod.weight]
            new = method.masks[n]
            pruned, grown = old[n] & ~new, new & ~old[n]
            assert pruned.sum() == change.pruned[n] and grown.sum() == change.grown[n]
            for key in keys:
                assert (state[key][~new] == 0).all() and (state[key][grown] == 0).all()
                checked += int(pruned.sum())
            assert (mod.weight[grown] == 0).all()
    assert checked > 0


def test_pruned_state_was_nonzero_before_reset():
    """Guards the test above: the reset must actually have something to clear."""
    model, method, opt = run("rigl", 12)
    for step in range(2):
        train_step(model, method, opt, step)
    kept_state = {n: opt.state[mod.weight]["exp_avg_sq"].clone() for n, mod in linears(model)}
    old = {n: m.clone() for n, m in method.masks.items()}
    train_step(model, method, opt, 2)
    nonzero = sum(int((kept_state[n][old[n] & ~method.masks[n]] != 0).sum()) for n in old)
    assert nonzero > 0


# ------------------------------------------------------------------ resume

@pytest.mark.parametrize("name", ["dense", "static", "set", "rigl", "snfs", "gmp", "block-set", "block-rigl", "nm"])
def test_state_dict_round_trip_reproduces_run(name):
    steps, cut = 18, 7
    kw = {"sparsity": 0.0} if name == "dense" else {}
    model, method, opt = run(name, steps, **kw)
    for step in range(cut):
        train_step(model, method, opt, step)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sparsity": method.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    ref = []
    for step in range(cut, steps):
        train_step(model, method, opt, step)
        ref.append({n: m.clone() for n, m in method.masks.items()})

    model2 = make_model(seed=123)  # different init: everything must come from the checkpoint
    method2 = build_method(cfg_for(name, **kw), linears(model2), steps)
    model2.load_state_dict(ckpt["model"])
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-2)
    opt2.load_state_dict(ckpt["opt"])
    method2.attach(opt2)
    method2.load_state_dict(ckpt["sparsity"])
    for i, step in enumerate(range(cut, steps)):
        train_step(model2, method2, opt2, step)
        assert all(torch.equal(ref[i][n], method2.masks[n]) for n in ref[i]), f"masks differ after step {step}"
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q)


def test_load_state_dict_rejects_other_method():
    _, rigl, _ = run("rigl")
    _, set_, _ = run("set")
    with pytest.raises(UserError, match="rigl"):
        set_.load_state_dict(rigl.state_dict())


# ------------------------------------------------------------------ bad arguments

@pytest.mark.parametrize("kw,match", [
    (dict(method="rigl", sparsity=1.0), "sparsity.*\\[0, 1\\)"),
    (dict(method="rigl", sparsity=-0.1), "sparsity"),
    (dict(method="magic"), "unknown method 'magic'.*rigl.*snfs"),
    (dict(method="rigl", sparsity=0.5, distribution="lognormal"), "distribution.*'erk', 'uniform'.*lognormal"),
    (dict(method="nm", sparsity=0.0, n=2, m=5), "m=5 does not divide the input dimension 48"),
    (dict(method="nm", sparsity=0.9, n=2, m=4), "fixes the sparsity at 0.5"),
    (dict(method="block-rigl", sparsity=0.5, block_size=20), "block size 20 does not divide"),
    (dict(method="static", sparsity=0.5, init="zeros"), "init"),
    (dict(method="gmp", sparsity=0.5, update_every=70), "GMP pruning window"),
    (dict(method="nm", sparsity=0.5, n=5, m=4), "field 'n'"),
])
def test_bad_arguments_raise_user_error(kw, match):
    with pytest.raises(UserError, match=match):
        build_method(SparsityConfig(**kw), linears(make_model()), 100)


def test_grid_expand_round_trip():
    g = Grid((32, 48), 16)
    units = torch.tensor([[True, False, True], [False, True, False]])
    full = g.expand(units)
    assert full.shape == (32, 48) and int(full.sum()) == 3 * 256 and torch.equal(g.units_of(full), units)
    assert g.is_union_of_units(full)
    full[0, 1] = False
    assert not g.is_union_of_units(full)
