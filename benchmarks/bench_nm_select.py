"""N:M mask selection on this CPU: the trainer's ranking inside each group (kernels.cpu.nm.NMSelector) against
torch.topk over the last dimension of the grouped weight (what it replaced), side by side in one process, on
bert-small / BERT-base FFN weights at 2:4, 1:4, 4:8 and 2:8. Both keep the same weights (checked).

    python -P benchmarks/bench_nm_select.py --out benchmarks/results/<machine>/nm-select.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from accelsim.kernels.cpu.nm import NMSelector
from accelsim.kernels.host_memory import retain_freed_memory
from accelsim.kernels.machine import machine_info
from accelsim.kernels.timing import measure

SHAPES = ((2048, 512), (3072, 768))
PATTERNS = ((2, 4), (1, 4), (4, 8), (2, 8))


def topk_select(w: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """The n largest |w| of every m consecutive inputs by torch.topk over each group."""
    rows, cols = w.shape
    groups = w.abs().view(rows, cols // m, m)
    index = torch.topk(groups, n, dim=-1, sorted=False).indices
    return torch.zeros(groups.shape, dtype=torch.bool).scatter_(-1, index, True).view(rows, cols)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    retain_freed_memory()  # the trainer's allocator policy
    torch.manual_seed(0)
    rows = []
    for shape in SHAPES:
        w = torch.randn(shape)
        for n, m in PATTERNS:
            ranked = NMSelector(w, n, m)
            t, _ = measure({"topk": lambda: topk_select(w, n, m), "ranked": lambda: ranked(w)},
                           repeats=args.repeats, keep=("topk", "ranked"))
            same = bool(torch.equal(ranked(w), topk_select(w, n, m)))
            rows.append({"shape": list(shape), "n": n, "m": m, "topk_ms": t["topk"] * 1e3,
                         "ranked_ms": t["ranked"] * 1e3, "same_mask": same})
            r = rows[-1]
            print(f"{shape[0]}x{shape[1]} {n}:{m}  topk {r['topk_ms']:.2f} ms  ranked {r['ranked_ms']:.2f} ms  "
                  f"x{r['topk_ms'] / r['ranked_ms']:.2f}  same mask {r['same_mask']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine_info(), "threads": args.threads, "repeats": args.repeats,
                                    "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
