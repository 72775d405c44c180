"""FFF (UltraSparseBERT) cases of `accelsim kernels bench`: conditional matmul against the dense FF.

An FFF case is one fast-feedforward layer's forward (K trees of depth D, hidden H, T tokens) run by
every CMM formulation of :mod:`kernels.fff_cpu` and by the dense feedforward of equal width
(N = K(2^(D+1) - 1) neurons), the baseline. Its record has the same fields as a sparse-matmul record
(``op`` = "fff", ``pattern`` = "conditional", ``density`` = the visited fraction K(D+1)/N, so
``ideal_speedup`` is the FLOP ratio, 341.25 at the paper's 1x11) plus ``trees`` and ``depth``, so the
same tables, calibration and validation read it; :func:`accelsim.kernel_time` models it as kind
"fff" (conditional path) and "ff" (the dense baseline).

Every runner writes into preallocated buffers (dense: ``addmm(out=)`` + in-place GELU): steady-state
kernel times. A fresh T x H output per call costs page faults comparable to the whole walk at the
paper's size (benchmarks/bench_fff.py measures both ways).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch

from accelsim.errors import UserError
from accelsim.kernels import fff_cpu
from accelsim.kernels.records import FFF_OP
from accelsim.kernels.registry import Choice, admit, set_threads, time_runners

OP = FFF_OP  # the op name of FFF records (kernels.records)
PATTERN = "conditional"
_SHAPE = re.compile(r"^(\d+)x(\d+)$")
#: max abs deviation from the zeroed dense computation (fp32, different summation orders)
ATOL = 1e-3
#: tokens checked against the reference (the paper's verification, on a prefix of the batch)
CHECK_TOKENS = 256


def parse_shape(text: str) -> tuple[int, int]:
    """'1x11' -> (1, 11): K trees of depth D (UltraSparseBERT-KxD naming)."""
    mt = _SHAPE.match(text.strip())
    if not mt or int(mt.group(1)) < 1 or int(mt.group(2)) > fff_cpu.MAX_DEPTH:
        raise UserError(f"expected an FFF shape KxD (trees x depth, e.g. 1x11, depth <= {fff_cpu.MAX_DEPTH}), "
                        f"got '{text}'", field="fff")
    return int(mt.group(1)), int(mt.group(2))


@dataclass(frozen=True)
class FFFCase:
    tokens: int
    hidden: int
    trees: int
    depth: int
    dtype: str = "float32"
    seed: int = 0
    op: str = OP
    pattern: str = PATTERN

    @property
    def neurons(self) -> int:
        return self.trees * fff_cpu.nodes_per_tree(self.depth)

    @property
    def visited(self) -> int:  # neurons on one token's paths
        return self.trees * (self.depth + 1)

    @property
    def density(self) -> float:
        return self.visited / self.neurons

    @property
    def flops_dense(self) -> float:  # the dense FF of equal width: two T x H x N products
        return 4.0 * self.tokens * self.hidden * self.neurons

    # the sweep's naming: d_in = hidden, d_out = neurons (the dense FF's first layer)
    @property
    def d_in(self) -> int:
        return self.hidden

    @property
    def d_out(self) -> int:
        return self.neurons


@dataclass(frozen=True)
class FFFPath:
    name: str
    family: str  # "dense" (the baseline) or "conditional", as in kernels.registry
    build: Callable[[dict], Callable[[], torch.Tensor]]
    available: Callable[[], str | None] = lambda: None
    impl: str = ""  # the kernels.fff_cpu formulation a conditional runner calls
    doc: str = ""


def _operands(case: FFFCase) -> dict:
    """Weights as the trainer initialises an FFF layer (trainer.fff), input and output buffers."""
    g = torch.Generator().manual_seed(case.seed)
    H, W, T = case.hidden, case.neurons, case.tokens
    x = torch.randn(T, H, generator=g)
    w_in = (torch.rand(W, H, generator=g) * 2 - 1) / H ** 0.5
    b_in = (torch.rand(W, generator=g) * 2 - 1) / H ** 0.5
    w_out = (torch.rand(W, H, generator=g) * 2 - 1) / case.visited ** 0.5
    return {"case": case, "x": x, "w_in": w_in, "b_in": b_in, "w_out": w_out, "w_out_t": w_out.t().contiguous(),
            "h": torch.empty(T, W), "y": torch.empty(T, H)}


def _dense(o: dict) -> Callable[[], torch.Tensor]:
    # the dense FF of equal width: y = GELU(x w_in^T + b_in) w_out, no output bias (as the FFF layer)
    def run():
        torch.addmm(o["b_in"], o["x"], o["w_in"].t(), out=o["h"])
        torch.ops.aten.gelu_(o["h"])
        return torch.mm(o["h"], o["w_out"], out=o["y"])
    return run


def _impl(name: str) -> Callable[[dict], Callable[[], torch.Tensor]]:
    def build(o: dict):
        c = o["case"]
        return lambda: fff_cpu.IMPLS[name](o["x"], o["w_in"], o["b_in"], o["w_out"], c.trees, c.depth, out=o["y"])
    return build


#: registry of the FFF bench's runners (no if/elif over names): dense baseline first
PATHS: dict[str, FFFPath] = {p.name: p for p in (
    FFFPath("dense_torch", "dense", _dense, doc="dense FF of equal width: addmm + GELU + mm (MKL)"),
    FFFPath("fff_walk", "conditional", _impl("walk"), fff_cpu.native_unavailable, "walk",
            doc="per-token tree walk in C, OpenMP over 16-token tiles (kernels/_fff.c)"),
    FFFPath("fff_gather", "conditional", _impl("gather"), impl="gather",
            doc="batched gather: index_select + vecdot + embedding_bag per level"),
)}


def _check(o: dict, path: FFFPath, run: Callable[[], torch.Tensor]) -> str | None:
    """None if the runner's result equals the reference on the first tokens, else what is wrong. The
    reference of a conditional runner is the zeroed dense computation (the paper's check); tokens whose
    path differs (a logit within rounding of 0 under another summation order) are left out, up to 1 %."""
    c = o["case"]
    n = min(c.tokens, CHECK_TOKENS)
    x = o["x"][:n]
    if path.family == "dense":  # the baseline computes every neuron: compare with the plain dense FF
        y, ref = run()[:n], torch.nn.functional.gelu(x @ o["w_in"].t() + o["b_in"]) @ o["w_out"]
        same = torch.ones(n, dtype=torch.bool)
    else:
        ref, ref_nodes, _ = fff_cpu.fff_masked_dense(x, o["w_in"], o["b_in"], o["w_out"], c.trees, c.depth,
                                                     return_paths=True)
        y, nodes, _ = fff_cpu.IMPLS[path.impl](x, o["w_in"], o["b_in"], o["w_out"], c.trees, c.depth,
                                               return_paths=True)
        same = (nodes == ref_nodes).flatten(1).all(1)
        if same.float().mean() < 0.99:
            return f"routing differs from the reference on {int((~same).sum())} of {n} tokens"
    err = float((y - ref)[same].abs().max()) if same.any() else 0.0
    return None if err <= ATOL else f"mismatch vs the reference (max abs err {err:.3g}, atol={ATOL})"


def pick_fastest_fff(case: FFFCase, *, device: str = "cpu", threads: int | None = None, repeats: int = 5,
                     warmup: int = 1, only: tuple[str, ...] | None = None, min_sample_s: float = 2e-3,
                     warm_below_s: float = 0.0, **_) -> Choice:
    """Check every runner against the reference and time the correct ones interleaved (as pick_fastest)."""
    if device != "cpu" or case.dtype != "float32":
        raise UserError(f"FFF bench cases run on the CPU in float32 (the GPU FFF kernel is timed by "
                        f"benchmarks/bench_fff.py), got device={device} dtype={case.dtype}", field="fff")
    threads = threads or torch.get_num_threads()
    set_threads(threads)
    o = _operands(case)
    choice = Choice(case, device, threads, density_actual=case.density)
    runners = {}
    with torch.inference_mode():
        for path in PATHS.values():
            if not admit(path.name, path.available, only, choice):
                continue
            run = path.build(o)
            err = _check(o, path, run)
            if err:
                choice.rejected[path.name] = err
                continue
            runners[path.name] = run
            choice.layouts[path.name] = "row-major, preallocated output"
        return time_runners(choice, runners, warmup=warmup, repeats=repeats, min_sample_s=min_sample_s,
                            warm_below_s=warm_below_s)


def make_fff_record(choice: Choice) -> dict:
    """A measurement record with the fields of kernels.bench.make_record (plus trees and depth)."""
    c: FFFCase = choice.case
    winner = min(choice.times, key=choice.times.get)
    t, dense = choice.times[winner], choice.times["dense_torch"]
    sparse = {p: s for p, s in choice.times.items() if PATHS[p].family != "dense"}
    best = min(sparse, key=sparse.get) if sparse else None
    flops = c.flops_dense * c.density
    ideal = 1.0 / c.density
    return {
        "op": OP, "layer": "fff", "tokens": c.tokens, "d_in": c.hidden, "d_out": c.neurons,
        "m": c.tokens, "k": c.hidden, "n": c.neurons, "trees": c.trees, "depth": c.depth,
        "pattern": PATTERN, "density": c.density, "density_actual": c.density, "dtype": c.dtype,
        "device": choice.device, "threads": choice.threads, "path": winner, "median_s": t, "dense_s": dense,
        "flops_dense": c.flops_dense, "flops_effective": flops, "gflops_dense_equiv": c.flops_dense / t / 1e9,
        "gflops_effective": flops / t / 1e9, "speedup_vs_dense": dense / t, "ideal_speedup": ideal,
        "fraction_of_ideal": dense / t / ideal, "sparse_path": best, "sparse_s": sparse.get(best) if best else None,
        "sparse_speedup_vs_dense": dense / sparse[best] if best else None,
        "times": choice.times, "rejected": choice.rejected, "layouts": choice.layouts,
        "families": {p: PATHS[p].family for p in choice.times},
    }


def iter_fff_cases(cfg):
    """(("fff", case), None) per FFF case of a BenchConfig, (description, reason) per skipped one."""
    for tokens in cfg.tokens:
        for h in cfg.hidden:
            for shape in cfg.fff:
                K, D = parse_shape(shape)
                case = FFFCase(tokens, h, K, D, cfg.dtype, cfg.seed)
                if case.flops_dense / 1e9 > cfg.max_dense_gflop:
                    yield (dict(op=OP, layer="fff", tokens=tokens, d_in=h, d_out=case.neurons, pattern=PATTERN,
                                density=case.density, fff=shape),
                           f"dense FF above max_dense_gflop={cfg.max_dense_gflop}")
                    continue
                yield ("fff", case), None
