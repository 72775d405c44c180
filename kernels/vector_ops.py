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

from accelsim.kernels.timing import measure


def cases(B: int, S: int, H: int, heads: int, V: int) -> dict[str, tuple[str, tuple, Callable]]:
    """name -> (workload role, input shape, function of the input); the loss case's role is its op name."""
    T = B * S
    labels = torch.randint(0, V, (T,))
    return {
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
    """{case name: {"role", "shape", "elements", "fwd_s", "bwd_s"}} (bert-tiny batch-32 shapes by default)."""
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
    return rows


def element_time(rows: dict) -> dict[str, dict[str, float]]:
    """{role: {"fwd", "bwd": seconds per workload-op element}} over each role's cases (time / elements;
    a backward op counts two elements per activation, accelsim.workload)."""
    acc: dict[str, list[float]] = {}
    for r in rows.values():
        a = acc.setdefault(r["role"], [0.0, 0.0, 0.0])
        a[0] += r["fwd_s"]
        a[1] += r["bwd_s"]
        a[2] += r["elements"]
    return {role: {"fwd": f / n, "bwd": b / (2 * n)} for role, (f, b, n) in acc.items()}
