"""Cost of the sparsity hooks per training step, on BERT-shaped linear layers (CPU or GPU).

Prints, per method, the mean time of before_optimizer_step + after_optimizer_step on ordinary steps
(the hot path of every training step) and on mask-update steps, next to bare in-place masking of all
weights and gradients done three ways. Gradients are random; no forward/backward is timed.

    python benchmarks/bench_sparsity.py --hidden 256 --layers 4 --threads 2
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from accelsim.trainer.sparsity import SparsityConfig, available_methods, build_method


def bert_linears(hidden: int, layers: int, device: str) -> list[tuple[str, nn.Linear]]:
    shapes = {"attention.self.query": (hidden, hidden), "attention.self.key": (hidden, hidden),
              "attention.self.value": (hidden, hidden), "attention.output.dense": (hidden, hidden),
              "intermediate.dense": (hidden, 4 * hidden), "output.dense": (4 * hidden, hidden)}
    return [(f"encoder.layer.{i}.{k}", nn.Linear(fi, fo, bias=False).to(device))
            for i in range(layers) for k, (fi, fo) in shapes.items()]


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_method(name: str, args) -> tuple[float, float, int]:
    layers = bert_linears(args.hidden, args.layers, args.device)
    sparsity = 0.5 if name == "nm" else (0.0 if name == "dense" else args.sparsity)
    steps = args.steps
    cfg = SparsityConfig(method=name, sparsity=sparsity, update_every=args.update_every, end_fraction=1.0,
                         gmp_start_fraction=0.0, gmp_end_fraction=1.0, block_size=16)
    method = build_method(cfg, layers, steps)
    params = [m.weight for _, m in layers]
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    method.attach(opt)
    grads = [torch.randn_like(p) for p in params]
    plain, update = [], []
    for step in range(steps):
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()  # untimed: gives the optimizer state something to reset
        sync(args.device)
        t0 = time.perf_counter()
        method.before_optimizer_step(step)
        change = method.after_optimizer_step(step)
        sync(args.device)
        (update if change is not None else plain).append(time.perf_counter() - t0)
    return mean(plain), mean(update), len(update)


def mean(xs: list[float]) -> float:
    xs = xs[1:] if len(xs) > 1 else xs  # the first call warms caches and allocators
    return sum(xs) / len(xs) if xs else float("nan")


def floor_times(args) -> dict[str, float]:
    """Bare in-place masking of all weights and grads, three ways (why the methods multiply)."""
    layers = bert_linears(args.hidden, args.layers, args.device)
    ws = [m.weight.detach() for _, m in layers]
    gs = [torch.randn_like(w) for w in ws]
    inv = [torch.rand_like(w) < args.sparsity for w in ws]
    keep_bool = [~i for i in inv]
    keep = [k.to(w.dtype) for k, w in zip(keep_bool, ws)]
    ways = {"masked_fill_(bool)": lambda: [t.masked_fill_(i, 0) for ts in (ws, gs) for t, i in zip(ts, inv)],
            "mul_(bool)": lambda: [t.mul_(k) for ts in (ws, gs) for t, k in zip(ts, keep_bool)],
            "_foreach_mul_(0/1 same dtype)": lambda: [torch._foreach_mul_(ts, keep) for ts in (ws, gs)]}
    out = {}
    for name, fn in ways.items():
        ts = []
        for _ in range(10):
            sync(args.device)
            t0 = time.perf_counter()
            fn()
            sync(args.device)
            ts.append(time.perf_counter() - t0)
        out[name] = mean(ts)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--update-every", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", default=",".join(available_methods()))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    params = args.layers * 12 * args.hidden * args.hidden
    print(f"{args.layers} blocks, hidden {args.hidden}: {6 * args.layers} layers, {params / 1e6:.1f}M weights, "
          f"device {args.device}, {args.threads} threads")
    for way, t in floor_times(args).items():
        print(f"bare masking of weights + grads with {way}: {t * 1e3:.3f} ms/step")
    print(f"{'method':<12}{'plain step ms':>15}{'update step ms':>16}{'updates':>9}")
    for name in args.methods.split(","):
        plain, update, n = time_method(name, args)
        print(f"{name:<12}{plain * 1e3:>15.3f}{update * 1e3:>16.3f}{n:>9}")


if __name__ == "__main__":
    main()
