"""The non-product ops of a BERT step timed one at a time: seconds per element for a CPU profile's
``vector`` path (``element_time``), per accelsim.workload role (softmax, layernorm, gelu, residual,
dropout, and the MLM loss over the vocabulary).

Each op is timed forward alone and forward + backward (autograd, a fixed upstream gradient); backward =
the difference. Runners are interleaved (kernels.timing.measure), medians. Used by
``accelsim hw calibrate-local`` (kernels.local) and benchmarks/bench_vector_ops.py.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from accelsim.hardware.element_time import from_rows
from accelsim.kernels.timing import measure


def split_heads(B: int, S: int, heads: int):
    """Q/K/V into (batch, heads, seq, head_dim) order, contiguous, as the batched attention products read them."""
    return lambda x: x.view(B, S, heads, -1).transpose(1, 2).contiguous()


def cases(B: int, S: int, H: int, heads: int, V: int) -> dict[str, tuple[str, tuple, Callable]]:
    """name -> (workload role, input shape, function of the input); the loss case's role is its op name."""
    T = B * S
    labels = torch.randint(0, V, (T,))
    return {
        "head layout": ("head_layout", (B, S, H), split_heads(B, S, heads)),
        "softmax": ("softmax", (B, heads, S, S), lambda x: torch.softmax(x, -1)),
        "layernorm": ("layernorm", (T, H), lambda x: F.layer_norm(x, (H,))),
        "gelu": ("gelu", (T, 4 * H), F.gelu),
        "residual": ("residual", (T, H), lambda x: x + x),
        "dropout (attention)": ("dropout", (B, heads, S, S), lambda x: F.dropout(x, 0.1, training=True)),
        "dropout (hidden)": ("dropout", (T, H), lambda x: F.dropout(x, 0.1, training=True)),
        "mlm loss": ("loss", (T, V), lambda x: F.cross_entropy(x, labels)),
    }


def time_op(shape: tuple, fn: Callable, repeats: int) -> tuple[float, float]:
    """(forward, backward) median seconds of ``fn`` on a random input of ``shape``."""
    x = torch.randn(shape, requires_grad=True)
    gy = torch.randn_like(fn(x))

    def fwd():
        with torch.no_grad():
            return fn(x)

    def both():
        x.grad = None
        fn(x).backward(gy)

    t, _ = measure({"fwd": fwd, "both": both}, repeats=repeats, keep=("fwd", "both"))  # never drop either
    return t["fwd"], max(t["both"] - t["fwd"], 0.0)


def measure_ops(batch: int = 32, seq: int = 128, hidden: int = 128, heads: int = 2, vocab: int = 8192,
                repeats: int = 7, progress: Callable[[str, dict], None] | None = None) -> dict[str, dict]:
    """{case name: {"role", "shape", "elements", "fwd_s", "bwd_s"[, "bwd_elements"]}} (bert-tiny batch-32 shapes
    by default), plus the bias gradient and the optimizer step (:func:`bias_grad_row`, :func:`optimizer_rows`)."""
    torch.manual_seed(0)
    rows = {}
    for name, (role, shape, fn) in cases(batch, seq, hidden, heads, vocab).items():
        fwd_s, bwd_s = time_op(shape, fn, repeats)
        n = 1
        for d in shape:
            n *= d
        rows[name] = {"role": role, "shape": list(shape), "elements": n, "fwd_s": fwd_s, "bwd_s": bwd_s}
        if progress:
            progress(name, rows[name])
    for name, row in (("bias grad", bias_grad_row(batch * seq, 4 * hidden, repeats)), *optimizer_rows(repeats).items()):
        rows[name] = row
        if progress:
            progress(name, row)
    return rows


def bias_grad_row(tokens: int, width: int, repeats: int) -> dict:
    """A linear layer's bias gradient, dY (tokens x width) summed over the tokens, as autograd computes it:
    a backward op of one element per element of dY (accelsim.workload._bias_grad)."""
    from accelsim.workload import BIAS_GRAD

    dY = torch.randn(tokens, width)
    t, _ = measure({"sum": lambda: dY.sum(0)}, repeats=repeats, keep=("sum",))
    return {"role": BIAS_GRAD, "shape": [tokens, width], "elements": tokens * width, "fwd_s": 0.0,
            "bwd_s": t["sum"], "bwd_elements": 1}


def past_the_cache(bytes_each: int) -> int:
    """How many copies of a working set of ``bytes_each`` bytes make twice the last-level cache (64 MiB where sysfs
    does not say): an op timed over that many streams from memory, as over a whole model in a step."""
    from accelsim.kernels.probe import l3_size

    return max(1, -(-2 * (l3_size() or 32 << 20) // bytes_each))


#: models whose whole update the optimizer rows time (vocabulary: the trainer's tokenizer, 8192), a size table over
#: their parameter counts: the time per parameter depends on the tensors a model has, not only on the bytes it
#: streams (Zen 5, 2 threads: 0.62 / 0.68 / 0.47 ns for bert-mini / small / base,
#: benchmarks/results/zen5-f26m2/optimizer.json)
OPTIMIZER_MODELS = ("bert-mini", "bert-small", "bert-base")
OPTIMIZER_VOCAB = 8192


def optimizer_rows(repeats: int) -> dict[str, dict]:
    """The trainer's update (accelsim.trainer.train): global-norm gradient clipping to 1.0, then its AdamW step
    (kernels.optim.adamw), over the parameters of each of :data:`OPTIMIZER_MODELS` whose state (weight, gradient,
    two moments) is at least twice the last-level cache, as a step streams it from memory; one ``sized`` row per
    model (a size table of seconds per parameter). A model whose state would stay in the cache is left out: a
    training step's forward and backward pass evict it."""
    import dataclasses

    from accelsim.bert import PRESETS, bert_param_shapes, bert_params
    from accelsim.kernels.optim import adamw
    from accelsim.workload import OPTIMIZER

    rows = {}
    for name in OPTIMIZER_MODELS:
        dims = dataclasses.replace(PRESETS[name], vocab=OPTIMIZER_VOCAB)
        n = bert_params(dims)
        if past_the_cache(16 * n) > 1:
            continue
        params = [torch.nn.Parameter(torch.randn(s)) for s in bert_param_shapes(dims)]
        for p in params:
            p.grad = torch.randn_like(p)
        opt = adamw(params, lr=1e-4, weight_decay=0.01)

        def step():
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()

        t, _ = measure({"step": step}, repeats=repeats, keep=("step",))
        rows[f"optimizer {name}"] = {"role": OPTIMIZER, "shape": [n], "elements": n, "fwd_s": t["step"],
                                     "bwd_s": 0.0, "sized": True}
        del params, opt
    return rows


def element_time(rows: dict) -> dict[str, dict]:
    """{role: {"fwd", "bwd": seconds per workload-op element}} over each role's cases (time / elements;
    a backward op counts two elements per activation, accelsim.workload); a role whose rows are ``sized`` (one
    op timed at several sizes, forward only) gets a size table of them instead of their pooled mean."""
    acc: dict[str, list[float]] = {}
    sized: dict[str, list[tuple[int, float]]] = {}
    for r in rows.values():
        if r.get("sized"):  # one op timed at several sizes: a size table (accelsim.hardware.element_time)
            if r["fwd_s"] > 0:
                sized.setdefault(r["role"], []).append((r["elements"], r["fwd_s"] / r["elements"]))
            continue
        a = acc.setdefault(r["role"], [0.0, 0.0, 0.0, 0.0])
        a[0] += r["fwd_s"]
        a[1] += r["bwd_s"]
        a[2] += r["elements"]
        a[3] += r.get("bwd_elements", 2) * r["elements"]  # workload's backward elements per input element
    out = {}
    for role, (f, b, n, nb) in acc.items():
        # a role timed in one direction only (the bias gradient, the optimizer) has no entry for the other
        out[role] = {k: v for k, v, timed in (("fwd", f / n, f > 0), ("bwd", b / nb, b > 0)) if timed}
    for role, points in sized.items():
        out[role] = {"fwd": from_rows(points)}
    return out


def evictor():
    """Writes a buffer of twice the last-level cache (64 MiB where sysfs does not say), pushing out what a timed
    op would otherwise find in cache."""
    from accelsim.kernels.probe import l3_size

    buf = torch.empty(2 * (l3_size() or 32 << 20) // 4)
    return lambda: buf.fill_(1.0)


#: the weight and density the sparse-execution work is timed at (accelsim.workload.sparse_execution_ops): a
#: BERT-base-sized 768 x 3072 layer at the densities sparse execution runs (about 0.1)
EXECUTION_SHAPE, EXECUTION_DENSITY = (3072, 768), 0.1
#: the weight shapes RigL's drop and grow are timed at (a size table; on the Zen 5 15-18 ns per weight among the
#: other ops, as in a step): 16 K to 8 M weights, bert-tiny's smallest layer to a BERT-large FFN's 2x
SELECT_SHAPES = ((128, 128), (512, 512), (1024, 1024), EXECUTION_SHAPE, (4096, 2048))


def rigl_select(w: torch.Tensor, g: torch.Tensor, active: torch.Tensor, drop_fraction: float = 0.3) -> torch.Tensor:
    """RigL's drop and grow over units (accelsim.trainer.sparsity.masks drop_smallest / grow_largest, inlined:
    kernels sits below the trainer): drop ``drop_fraction`` of the active units of smallest |w|, grow as many of
    largest |g| outside the kept ones; returns the new mask."""
    k = int(drop_fraction * int(active.sum()))
    drop = torch.zeros(active.shape, dtype=torch.bool)
    drop.view(-1)[torch.topk(w.abs().masked_fill(~active, float("inf")).reshape(-1), k, largest=False,
                             sorted=False).indices] = True
    kept = active & ~drop
    grow = torch.zeros(active.shape, dtype=torch.bool)
    grow.view(-1)[torch.topk(g.abs().masked_fill(kept, float("-inf")).reshape(-1), k, sorted=False).indices] = True
    return kept | grow


def select_case(rows: int, cols: int):
    """RigL's drop and grow over a rows x cols weight at EXECUTION_DENSITY, ready to time."""
    w, g = torch.randn(rows, cols), torch.randn(rows, cols)
    active = torch.rand(rows, cols) < EXECUTION_DENSITY
    return lambda: rigl_select(w, g, active)


def block_pool(w: torch.Tensor, g: torch.Tensor, b: int = 16) -> torch.Tensor:
    """block-RigL's pass over every weight: L1 of the weights and L2 of the gradient per b x b block, and the new
    block mask expanded back to the weights (masks.Grid.l1 / l2 / expand)."""
    rows, cols = w.shape
    wb = w.reshape(rows // b, b, cols // b, b).abs().sum(dim=(1, 3))
    gb = g.reshape(rows // b, b, cols // b, b).square().sum(dim=(1, 3)).sqrt()
    return (wb + gb > 0).repeat_interleave(b, 0).repeat_interleave(b, 1)


def mask_apply_row(repeats: int = 5) -> dict:
    """A sparse method's masking around the optimizer step (SparsityMethod.before_optimizer_step and apply_masks:
    the gradients multiplied by their masks in one multi-tensor op before the update, the weights after it), timed
    over EXECUTION_SHAPE weights whose weights, gradients and masks are twice the last-level cache, as a step's
    stream from memory. Elements: two per weight, as accelsim.workload.sparse_execution_ops counts them."""
    from accelsim.workload import MASK_APPLY

    torch.manual_seed(0)
    count = past_the_cache(3 * 4 * EXECUTION_SHAPE[0] * EXECUTION_SHAPE[1])
    W = [torch.randn(EXECUTION_SHAPE) for _ in range(count)]
    G = [torch.randn(EXECUTION_SHAPE) for _ in range(count)]
    K = [(torch.rand(EXECUTION_SHAPE) < EXECUTION_DENSITY).float() for _ in range(count)]

    def apply():
        torch._foreach_mul_(G, K)
        torch._foreach_mul_(W, K)

    t, _ = measure({"apply": apply}, repeats=repeats, keep=("apply",))
    elements = 2 * count * EXECUTION_SHAPE[0] * EXECUTION_SHAPE[1]
    return {"role": MASK_APPLY, "shape": list(EXECUTION_SHAPE), "elements": elements, "fwd_s": t["apply"],
            "bwd_s": 0.0}


def execution_rows(repeats: int = 5) -> dict[str, dict]:
    """The sparse execution's own work around its kernels (accelsim.kernels.cpu.autograd), timed as the
    trainer runs it, in element_time's row format (role = accelsim.workload's GATHER, SCATTER, ...):

    * gather / gather tiles: the values of a layer's forward and input-gradient formats index-selected from the
      dense weight (SparseWeight.refresh; elements: the values gathered), for the unstructured (CSR) and the
      block-16 family, with the weight out of cache as in a step (the optimizer streamed every weight since:
      :func:`evictor`); scattered values cost about twice a tile's contiguous ones;
    * scatter: the masked weight gradient written into a zero-filled dense-shaped buffer (a backward op:
      two elements per weight, as workload counts it);
    * format_build: a layer's formats and pattern statistics rebuilt from a new mask (elements: the mask's),
      the mean of the unstructured and block-16 families (the two the CPU profile picks between);
    * mask_select / mask_score: a mask update (workload._mask_update_ops): RigL's drop and grow top-k over the
      units of its grid (timed on weights at SELECT_SHAPES, a size table: elements = units), and block-RigL's
      pooling of weights and gradient into 16 x 16 block scores with the mask expanded back (elements: the weights);
    * mask_group_select: an N:M method's mask update, 2:4 per weight (flat in the weight's size);
    * mask_apply: the gradient and the weight multiplied by the mask around the optimizer step
      (:func:`mask_apply_row`)."""
    from accelsim.kernels.cpu.autograd import Paths, SparseWeight, scatter_to_dense
    from accelsim.kernels.cpu.nm import NMSelector
    from accelsim.patterns import pattern_stats
    from accelsim.workload import (FORMAT_BUILD, GATHER, GATHER_TILES, MASK_GROUP_SELECT, MASK_SCORE, MASK_SELECT,
                                   SCATTER)

    torch.manual_seed(0)
    rows, cols = EXECUTION_SHAPE
    numel = rows * cols
    W = torch.randn(rows, cols)
    # block-aligned 16x16 mask at the density (a block-RigL layer); unstructured at the same density
    blocks = torch.rand(rows // 16, cols // 16) < EXECUTION_DENSITY
    mask_b = blocks.repeat_interleave(16, 0).repeat_interleave(16, 1)
    mask_u = torch.rand(rows, cols) < EXECUTION_DENSITY
    index = mask_u.reshape(-1).nonzero().squeeze(1)
    vals = torch.randn(index.numel())

    evict = evictor()

    def refresh(fmt):
        def run():
            evict()
            fmt.refresh(W, force=True)  # as after an optimizer step: the values are gathered again
        return run

    def scatter():
        return scatter_to_dense((rows, cols), index, vals)

    def build(mask, family):
        def run():
            pattern_stats(mask.numpy())
            return SparseWeight(mask, Paths(family, family, family))
        return run

    G = torch.randn(rows, cols)  # a dense gradient (RigL's growth score)
    group = NMSelector(W, 2, 4)  # the trainer's N:M selection (SR-STE), buffers allocated once as there

    # the forward and input-gradient formats of each family, values gathered as the trainer does
    fmt_u = SparseWeight(mask_u, Paths("unstructured", "unstructured", "unstructured"))
    fmt_b = SparseWeight(mask_b, Paths("block16", "block16", "block16"))
    selects = {f"select {r}x{c}": select_case(r, c) for r, c in SELECT_SHAPES}
    t, _ = measure({"gather_u": refresh(fmt_u), "gather_b": refresh(fmt_b), "evict": evict, "scatter": scatter,
                    "build_u": build(mask_u, "unstructured"), "build_b": build(mask_b, "block16"),
                    "score": lambda: block_pool(W, G), "group": lambda: group(W), **selects}, repeats=repeats,
                   keep=("gather_u", "gather_b", "evict", "scatter", "build_u", "build_b", "score", "group", *selects))
    # elements: the values of both formats a refresh fills (forward and input gradient); the eviction timed beside
    # it is taken off (index_select of values scattered over a weight in main memory waits on every line: on the
    # Zen 5 a bert-small RigL-90 step gathers for 14.5 ms, 6x the time of the same gather from cache)
    nnz_u, nnz_b = 2 * int(mask_u.sum()), 2 * int(mask_b.sum())
    return {
        "gather": {"role": GATHER, "shape": [rows, cols], "elements": nnz_u,
                   "fwd_s": max(t["gather_u"] - t["evict"], 0.0), "bwd_s": 0.0},
        "gather tiles": {"role": GATHER_TILES, "shape": [rows, cols], "elements": nnz_b,
                         "fwd_s": max(t["gather_b"] - t["evict"], 0.0), "bwd_s": 0.0},
        "scatter": {"role": SCATTER, "shape": [rows, cols], "elements": numel, "fwd_s": 0.0, "bwd_s": t["scatter"]},
        "format build": {"role": FORMAT_BUILD, "shape": [rows, cols], "elements": numel,
                         "fwd_s": (t["build_u"] + t["build_b"]) / 2, "bwd_s": 0.0},
        # a top-k is memory- and branch-bound: priced per unit of the method's grid, not by its FLOPs
        **{f"mask {key}": {"role": MASK_SELECT, "shape": [r, c], "elements": r * c, "fwd_s": t[key], "bwd_s": 0.0,
                           "sized": True} for key, (r, c) in zip(selects, SELECT_SHAPES)},
        "mask score": {"role": MASK_SCORE, "shape": [rows, cols], "elements": numel, "fwd_s": t["score"],
                       "bwd_s": 0.0},
        "mask group select": {"role": MASK_GROUP_SELECT, "shape": [rows, cols], "elements": numel,
                              "fwd_s": t["group"], "bwd_s": 0.0},
        "mask apply": mask_apply_row(repeats),
    }

