"""How one kernel path's timings changed between two measurement files of the same cases (e.g. before and
after a kernel fix): per case the ratio old / new of the path's median, and its quantiles.

    python benchmarks/compare_sweeps.py OLD.json NEW.json --path blocksparse_c [--by-op] [--out FILE.json]

``--by-op`` adds one summary per product (forward, dX, dW): a change to one product's code leaves the others
as a control for how much the machine itself moved between the two files.

The README's before/after figures: for the AVX2 fix (zen3/kernel-fix.json) OLD is the Zen 3 sweep as committed
before it (`git show c8a1872:benchmarks/results/zen3/kernels-sweep.json`); for the block kernels' loop order
(zen3/kernel-order.json, ``--path blocksparse_c --by-op``) OLD is `git show 71fc38c:...` of the same file; NEW is
benchmarks/results/zen3/kernels-sweep.json as committed with each change.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from accelsim.kernels.bench import load_measurements
from accelsim.kernels.merge import case_key


def ratios(old: dict, new: dict, path: str, op: str | None = None) -> list[float]:
    """old / new time of ``path`` for every case both files timed it in (of product ``op`` if given)."""
    before = {case_key(r): r["times"][path] for r in old["records"] if path in r["times"]}
    return sorted(before[case_key(r)] / r["times"][path] for r in new["records"]
                  if path in r["times"] and case_key(r) in before and op in (None, r["op"]))


def summary(rs: list[float]) -> dict:
    n = len(rs)
    return {"cases": n, "min": rs[0], "p10": rs[n // 10], "median": statistics.median(rs), "p90": rs[(9 * n) // 10],
            "max": rs[-1]} if n else {"cases": 0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--path", action="append", required=True, help="kernel path (repeatable)")
    ap.add_argument("--by-op", action="store_true", help="also one summary per product (fwd, dX, dW)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    old, new = load_measurements(a.old), load_measurements(a.new)
    out = {p: summary(ratios(old, new, p)) for p in a.path}
    if a.by_op:
        ops = sorted({r["op"] for r in new["records"]})
        out.update({f"{p} {op}": summary(ratios(old, new, p, op)) for p in a.path for op in ops})
        out = {k: v for k, v in out.items() if v["cases"]}
    for p, s in out.items():
        print(p, " ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in s.items()))
    if a.out:
        a.out.write_text(json.dumps({"old": str(a.old), "new": str(a.new), "old_over_new": out}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
