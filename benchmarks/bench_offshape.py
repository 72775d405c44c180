"""Issue 20: a kernel sweep with on-grid shapes (fitted, 1-in-5 cases held out) and off-shape shapes
(irregular token counts and widths, non-powers of two, up to 4096, held out WHOLE: never seen by the fit).

    python benchmarks/bench_offshape.py --out benchmarks/results/zen5-f26m2/offshape/sweep.json
    python benchmarks/bench_offshape.py --reduced ...      # the reduced sweep (fewer / smaller off-shape blocks)

then

    accelsim calibrate <sweep.json> --hw <base profile> --threads 1 --out <fitted.yaml>
    accelsim validate <sweep.json> --hw <fitted.yaml> --threads 1 --out <dir>

The measurements file lists the held-out shapes under ``config.heldout_shapes`` ([tokens, hidden] pairs);
`accelsim calibrate` leaves every case of those shapes out of the fit (kernels.points.ShapeSplit) and
`accelsim validate` reports their error (``off_shape``) apart from the on-grid held-out cases (``on_grid``).

Timing: 1 thread, by the thread's CPU time where kernels.timing offers it (a thread descheduled on the
shared machine is not running the kernel), else wall time; every sparse time is still paired with the dense
baseline of its own round (kernels.points.paired_time). Each block is written as soon as it is measured
(a sweep cut short keeps what it has), with os.getloadavg() before and after it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from pathlib import Path

from accelsim.kernels import timing
from accelsim.kernels.bench import BenchConfig, run_bench, write_measurements
from accelsim.kernels.local import PATHS

#: (tokens, hidden, layers, fff shapes): the fitted grid: calibrate-local's (tokens 256/1024 x hidden 256/768)
#: and, unless --narrow, a wider irregular spread the fit also sees (few and many tokens, widths to 3072, a
#: weight beyond the 32 MiB L3, an ffn_out product, token counts that end in a partial 128-token tile of csr_c at
#: k up to 4096), so that a held-out shape is inside the fitted range rather than an extrapolation from four shapes
CALIBRATE_LOCAL = [(256, 256, ("ffn_in", "attn"), ("1x7", "1x11")), (256, 768, ("ffn_in", "attn"), ("1x7", "1x11")),
                   (1024, 256, ("ffn_in", "attn"), ("1x7", "1x11")), (1024, 768, ("ffn_in", "attn"), ("1x7", "1x11"))]
WIDER = [(128, 512, ("ffn_in", "ffn_out", "attn"), ("1x7",)), (48, 1536, ("attn",), ()),
         (2048, 384, ("ffn_in",), ("1x7",)), (512, 1536, ("attn",), ()), (128, 3072, ("attn",), ()),
         (384, 1152, ("ffn_out",), ()), (160, 1024, ("ffn_in",), ()), (320, 896, ("ffn_out",), ()),
         (72, 2048, ("attn",), ())]
ON_GRID = CALIBRATE_LOCAL + WIDER
#: held out whole: token counts and widths the grid never has, non-powers of two, widths up to 4096
#: (1000 is not a multiple of 16: its block cases cannot exist, the others run)
OFF_SHAPE = [(96, 320, ("ffn_in", "attn"), ("1x7", "1x11")), (200, 1000, ("ffn_out",), ("1x7",)),
             (1500, 640, ("ffn_in",), ("1x7",)), (640, 2560, ("attn",), ()), (96, 4096, ("attn",), ())]
#: --reduced: the off-shape blocks a ~15-20 min sweep on the loaded 2-core machine can afford
OFF_SHAPE_REDUCED = [(96, 320, ("ffn_in", "attn"), ("1x7", "1x11")), (200, 1000, ("ffn_out",), ("1x7",)),
                     (1500, 640, ("ffn_in",), ("1x7",)), (384, 2560, ("attn",), ()), (96, 4096, ("attn",), ())]
#: one middle density (the issue's 0.15-0.35 csr_c error) besides the curve's two ends
DENSITIES = (0.5, 0.2, 0.05)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--reduced", action="store_true")
    ap.add_argument("--narrow", action="store_true", help="fit on calibrate-local's four shapes only")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=1, help="rounds per block (a sparse time is the median of its "
                    "ratios to the dense time of its own round): more rounds, less noise, proportionally longer")
    args = ap.parse_args(argv)
    off = OFF_SHAPE_REDUCED if args.reduced else OFF_SHAPE
    fit = CALIBRATE_LOCAL if args.narrow else ON_GRID
    # on-grid and off-shape blocks alternate: a sweep cut short still has both kinds
    blocks = [b for pair in zip(fit, off) for b in pair] + fit[len(off):] + off[len(fit):]
    clock = getattr(timing, "thread_cpu_clock", None) if args.threads == 1 else None
    out = Path(args.out)
    docs, t0 = [], time.perf_counter()
    log = []
    for i, (tokens, hidden, layers, fff) in enumerate(blocks):
        load0, b0 = os.getloadavg(), time.perf_counter()
        cfg = BenchConfig(tokens=(tokens,), hidden=(hidden,), layers=layers, densities=DENSITIES, fff=fff,
                          threads=(args.threads,), repeats=args.repeats, rounds=args.rounds, paths=PATHS)
        with clock() if clock else contextlib.nullcontext():
            docs.append(run_bench(cfg))
        entry = {"tokens": tokens, "hidden": hidden, "layers": list(layers), "fff": list(fff),
                 "off_shape": (tokens, hidden, layers, fff) in off, "records": len(docs[-1]["records"]),
                 "wall_s": time.perf_counter() - b0, "loadavg_before": load0, "loadavg_after": os.getloadavg()}
        log.append(entry)
        print(json.dumps(entry), flush=True)
        doc = dict(docs[0], records=[r for d in docs for r in d["records"]],
                   skipped=[r for d in docs for r in d["skipped"]])
        doc["config"] = dict(doc["config"], tokens=sorted({b[0] for b in blocks[:i + 1]}),
                             hidden=sorted({b[1] for b in blocks[:i + 1]}), layers=sorted({x for b in blocks[:i + 1] for x in b[2]}),
                             blocks=log, heldout_shapes=[[b[0], b[1]] for b in blocks[:i + 1] if b in off],
                             clock="thread CPU time" if clock else "wall time",
                             sweep_wall_s=time.perf_counter() - t0, reduced=args.reduced,
                             narrow=args.narrow)
        write_measurements(doc, out)
    print(f"sweep: {sum(e['records'] for e in log)} records in {time.perf_counter() - t0:.0f} s -> {out}")


if __name__ == "__main__":
    main()
