"""The non-product ops of a BERT step, one at a time: measured time per element against what the profile's
`vector` path predicts for the same workload op (accelsim.workload roles: softmax, layernorm, gelu,
residual, dropout, and the MLM loss over the vocabulary). The data for calibrating that path, which
benchmarks/bench_step_breakdown.py shows is the whole-step gap.

Each op is timed forward alone and forward + backward (autograd, a fixed upstream gradient); backward =
the difference. Runners are interleaved (kernels.timing.measure), medians. Printed last: the vector path's
``element_time`` table (seconds per element of the workload op: a backward op counts two elements per
activation, accelsim.workload) that these timings give, per role over its cases.

    python benchmarks/bench_vector_ops.py [--batch 32] [--seq 128] [--hidden 128] [--heads 2] [--vocab 8192]
                                          [--hw cpu-local] [--out benchmarks/results/<machine>/vector-ops.json]
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from accelsim.hardware import op_cost
from accelsim.workload import Op
from accelsim.kernels.machine import machine_info
from accelsim.kernels.vector_ops import cases, element_time, time_op


def predicted(hw: str, role: str, elements: int) -> tuple[float, float]:
    """(forward, backward) seconds of the workload's ops of this role for these activation elements."""
    fwd = Op(f"x.{role}.fwd", "elementwise", "fwd", role=role, elements=elements)
    bwd = Op(f"x.{role}.bwd", "elementwise", "bwd_input", role=role, elements=2 * elements)
    return op_cost(hw, fwd).time_s, op_cost(hw, bwd).time_s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--hw", default="cpu-local")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    rows = {}
    print(f"batch {a.batch} x {a.seq}, hidden {a.hidden}, {a.heads} heads, vocab {a.vocab}; "
          f"{torch.get_num_threads()} threads; ns per element, profile {a.hw}")
    print(f"{'op':<20} {'elements':>10} {'fwd':>7} {'bwd':>7} {'pred fwd':>9} {'pred bwd':>9}")
    for name, (role, shape, fn) in cases(a.batch, a.seq, a.hidden, a.heads, a.vocab).items():
        m_fwd, m_bwd = time_op(shape, fn, a.repeats)
        n = math.prod(shape)
        p_fwd, p_bwd = predicted(a.hw, role, n)
        rows[name] = {"role": role, "shape": list(shape), "elements": n, "fwd_s": m_fwd, "bwd_s": m_bwd,
                      "predicted_fwd_s": p_fwd, "predicted_bwd_s": p_bwd}
        print(f"{name:<20} {n:>10} {m_fwd / n * 1e9:7.2f} {m_bwd / n * 1e9:7.2f} {p_fwd / n * 1e9:9.2f} "
              f"{p_bwd / n * 1e9:9.2f}")
    table = element_time(rows)
    print("element_time:  # seconds per element of the workload op")
    for role, t in table.items():
        print(f"  {role}: {{fwd: {t['fwd'] * 1e9:.3g} ns, bwd: {t['bwd'] * 1e9:.3g} ns}}")
    if a.out:
        a.out.write_text(json.dumps({"machine": machine_info(), "args": vars(a) | {"out": str(a.out)},
                                     "threads": torch.get_num_threads(), "ops": rows, "element_time": table},
                                    indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
