"""The C CSR kernel (kernels/cpu/_csr.c) of this checkout against an earlier version of its source, same
process, same operands, calls interleaved (kernels.timing.measure): what a kernel change bought, free of
the machine drift that separates two sweeps (a shared VM runs 10-40 % slower for spells of seconds).

Both sources are built with the project's own flags (kernels.native.build); the old one is read from git
(``--old-rev``) or a file (``--old-file``). Every result is checked against dense torch before timing.

    python benchmarks/compare_csr_versions.py --old-rev 23d8f03 [--threads 2] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

import torch

from accelsim.kernels.cpu import _native
from accelsim.kernels.cpu.csr_c import csr_arrays
from accelsim.kernels.machine import machine_info
from accelsim.kernels.native import build
from accelsim.kernels.timing import measure

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "kernels/cpu/_csr.c"
#: (tokens m, k = columns of the sparse operand, rows n, density): the FFN's dX (k = 3072) and forward
#: (k = 768), the attention width, and a k between the two
CASES = [(m, k, n, d) for m in (128, 512, 2048) for (k, n) in ((3072, 768), (768, 3072), (768, 768), (1536, 768))
         for d in (0.5, 0.2, 0.05)]


def _run(lib, XT: torch.Tensor, A, YT: torch.Tensor, threads: int) -> None:
    rc = lib.csr_spmm_t(XT.data_ptr(), A.cols, XT.shape[1], XT.stride(0), A.row_ptr.data_ptr(), A.col.data_ptr(),
                        A.val.data_ptr(), A.rows, YT.data_ptr(), YT.stride(0), threads)
    if rc:
        raise SystemExit(f"csr_spmm_t returned {rc}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    old = ap.add_mutually_exclusive_group(required=True)
    old.add_argument("--old-rev", help="git revision holding the old kernels/cpu/_csr.c")
    old.add_argument("--old-file", type=Path, help="the old source file")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "_csr_old.c"
        if args.old_rev:
            src.write_text(subprocess.run(["git", "show", f"{args.old_rev}:{SOURCE}"], cwd=ROOT, check=True,
                                          capture_output=True, text=True).stdout)
        else:
            src.write_text(args.old_file.read_text())
        old_lib, why = build(src, "csr-old", "the old CSR kernel")
    new_lib, why_new = _native.load_csr()
    if old_lib is None or new_lib is None:
        raise SystemExit(why or why_new)
    old_lib.csr_spmm_t.argtypes = new_lib.csr_spmm_t.argtypes
    g = torch.Generator().manual_seed(0)
    rows = []
    print(f"{'m':>5} {'k':>5} {'n':>5} {'dens':>5} {'panels':>6} {'old ms':>9} {'new ms':>9} {'old/new':>7}")
    for m, k, n, d in CASES:
        W = torch.randn(n, k, generator=g) * (torch.rand(n, k, generator=g) < d)
        X = torch.randn(m, k, generator=g)
        XT, A, ref = X.T.contiguous(), csr_arrays(W), (X @ W.T).T
        outs = {"old": torch.empty(n, m), "new": torch.empty(n, m)}
        libs = {"old": old_lib, "new": new_lib}
        for name in libs:
            _run(libs[name], XT, A, outs[name], args.threads)
            torch.testing.assert_close(outs[name], ref, rtol=1e-3, atol=1e-3)
        times, _ = measure({name: (lambda lib=lib, Y=outs[name]: _run(lib, XT, A, Y, args.threads))
                            for name, lib in libs.items()}, repeats=args.repeats, warm_below_s=0.05)
        row = dict(m=m, k=k, n=n, density=d, panels=new_lib.csr_panels(k), old_s=times["old"], new_s=times["new"],
                   speedup=times["old"] / times["new"])
        rows.append(row)
        print(f"{m:5d} {k:5d} {n:5d} {d:5.2f} {row['panels']:6d} {row['old_s'] * 1e3:9.3f} {row['new_s'] * 1e3:9.3f} "
              f"{row['speedup']:7.2f}")
    by_k = {k: statistics.median(r["speedup"] for r in rows if r["k"] == k) for k in sorted({r["k"] for r in rows})}
    print("median old/new by k: " + ", ".join(f"k={k}: {v:.2f}x" for k, v in by_k.items()))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": machine_info("cpu"), "old": args.old_rev or str(args.old_file),
                                        "threads": args.threads, "rows": rows, "median_speedup_by_k": by_k},
                                       indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
