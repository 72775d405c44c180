"""The C CSR kernel's last, partial token chunk (issue 20's ``tail_penalty``): kernels/cpu/_csr.c computes
tokens in chunks of NA_MAX x VL (128 with AVX-512) with the chunk's output row in registers; a last chunk of
w < 128 tokens runs ``row_tail``, whose output row stays in memory, so each nonzero waits on the previous one's
store. This times the kernel alone (no transpose or copy) at 1 thread for token counts 16 ... 256 at a few
(k, n, density), and reports each run's cost in full 128-token chunks: the partial chunk's cost is
(t(m) - full chunks x t(128)) / t(128), which the cost model charges as 1 + tail_penalty x w / 128.

    python benchmarks/bench_tail_chunks.py [--out benchmarks/results/<machine>/offshape/tail-chunks.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from accelsim.kernels.cpu import _native
from accelsim.kernels.cpu.csr_c import csr_arrays
from accelsim.kernels.machine import machine_info
from accelsim.kernels.timing import measure, thread_cpu_clock

TOKENS = (128, 16, 32, 48, 64, 80, 96, 112, 144, 160, 200, 256)
#: (k, n, density): a small and a wide reduction, and a 4096-wide one at low density (11 k panels)
SHAPES = ((1024, 1024, 0.2), (320, 1280, 0.2), (4096, 1024, 0.05))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--reps", type=int, default=9)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    lib = _native.load_csr()[0]
    chunk = _native.structure_terms(machine_info().get("isa_flags", []))["csr_c"]["row_multiple"]
    rows = []
    for k, n, density in SHAPES:
        W = torch.randn(n, k) * (torch.rand(n, k) < density)
        A = csr_arrays(W)
        per_chunk = None
        for m in TOKENS:
            XT = torch.randn(k, m)
            YT = torch.empty(n, m)

            def call():
                lib.csr_spmm_t(XT.data_ptr(), k, m, XT.stride(0), A.row_ptr.data_ptr(), A.col.data_ptr(),
                               A.val.data_ptr(), n, YT.data_ptr(), YT.stride(0), 1)
            with thread_cpu_clock():  # 1 thread: a descheduled thread is not running the kernel
                t = measure({"call": call}, repeats=args.reps, keep=("call",))[0]["call"]
            per_chunk = t if m == chunk else per_chunk
            full, w = divmod(m, chunk)
            tail = (t / per_chunk - full) if w else None
            rows.append({"k": k, "n": n, "density": density, "tokens": m, "seconds": t, "full_chunks": full,
                         "tail_tokens": w, "tail_in_full_chunks": tail,
                         "implied_tail_penalty": (tail - 1.0) * chunk / w if w else None})
            print(f"k {k:5d} n {n:5d} density {density:.2f} tokens {m:4d}: {t * 1e3:7.3f} ms"
                  + (f"  tail of {w:3d} = {tail:.2f} full chunks (tail_penalty {(tail - 1) * chunk / w:+.2f})" if w else ""),
                  flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": machine_info(), "chunk_tokens": chunk, "threads": 1,
                                        "clock": "thread CPU time", "rows": rows}, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
