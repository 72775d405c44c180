"""How the Quansight BSR figure rows of points.csv were read (kept so every such number can be re-derived).

Source: Quansight's post "Improvements to BSR Matrix Multiplication in PyTorch" (A. James, October 2023;
Quansight/Quansight-website, apps/consulting/posts/improvements-to-bsr-matrix-multiplication-in-pytorch.md),
its figures as committed with the post's final text (commit ec27a002, "final edits"), under
apps/consulting/public/posts/improvements-to-bsr-matrix-multiplication-in-pytorch/:

* ``bsr_dense_mm_float32_vs_dense.png`` (the post's Figure 5, 1280x960): Triton ``bsr_dense_mm`` speedup over
  dense ``torch.mm`` in float32 on an A100-80G (CUDA 11.8, PyTorch 2.1), against sparsity 10 ... 99 %, block
  sizes 16 / 32 / 64; log y axis: the 10^0 and 10^1 ticks at pixel rows 700.5 and 351.5.
* ``bsr_dense_mm_half_vs_dense.png`` (Figure 7, 1280x1920): the same in float16 (upper panel) and bfloat16
  (lower panel); linear y axes: 0.0 and 3.0 at rows 867.5 and 104.5 (upper), 1803.5 and 1049.5 (lower).

Marker centres: pixels within 40 of a matplotlib tab10 colour (green = block 16, orange = 32, blue = 64), as
connected blobs; a marker is 31 x 32 px and its data point is the centre of its bounding box (a triangle
marker is centred on its box, not its area). Blobs split by the 1x line are merged. Where a later-drawn
marker hides the top of one (orange under blue in Figure 5; green under blue at 95-99 % in Figure 7), the
centre is the visible bottom edge minus 15.5 px. A centre is good to about +-1 px: +-0.7 % on the log axis,
+-0.004 on the linear ones. The x positions fall on the sparsity grid 10, 20, ..., 90, 95, 99 % to < 1 px.

What the post's text says agrees: float32 block 32 and 64 faster than dense at every sparsity shown from
30 % (block 64 from 20 %), block 16 crossing 1x between 60 and 70 %; half precision block 64 crossing at
60 %, block 32 between 80 and 90 %, block 16 between 95 and 99 %. The earlier dataset rows had put each
crossover at speedup 1.0 on the text's sparsity, which for block 16 (2.83x at 99 %) and block 32 (1.78x at
90 %) was the far side of the crossing.

Run ``python benchmarks/published/digitize_quansight.py`` to print the speedups from the pixel readings below.
"""
from __future__ import annotations

SPARSITY = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99)

#: marker centre rows (pixel y) by dtype and block size, one per sparsity; None = hidden
ROWS = {
    "fp32": {16: (817.5, 830.5, 810.5, 786.5, 760.5, 726.5, 683.0, 618.5, 516.5, 441.5, 210.5),
             # orange under blue: visible bottom edge - 15.5 from 20 to 90 %; 99 % hidden
             32: (732.5, 719.5, 695.5, 670.5, 643.5, 610.5, 568.5, 507.5, 399.5, 303.0, None),
             64: (709.5, 690.5, 668.5, 644.5, 619.5, 589.5, 543.5, 481.5, 381.5, 271.5, 135.5)},
    "fp16": {16: (853.5, 851.5, 848.5, 845.5, 840.5, 832.5, 819.5, 796.5, 735.5, 622.5, 146.5),  # 99 %: bottom edge
             32: (812.5, 805.5, 797.5, 785.5, 767.5, 737.5, 696.5, 617.5, 413.5, 144.5, None),  # 99 %: hidden
             64: (738.5, 725.5, 704.5, 677.5, 639.5, 583.5, 483.5, 308.5, 144.5, 148.5, 135.5)},
    "bf16": {16: (1789.5, 1788.5, 1785.5, 1782.5, 1777.5, 1768.5, 1756.5, 1732.5, 1668.5, 1565.5, None),  # 95 %: bottom edge
             32: (1749.5, 1743.5, 1734.5, 1722.5, 1705.5, 1677.5, 1632.5, 1554.5, 1339.5, 1073.5, 1072.5),
             64: (1676.5, 1661.5, 1642.5, 1617.5, 1585.5, 1522.5, 1429.5, 1257.5, 1078.5, 1082.5, 1076.5)},
}


def speedup(dtype: str, row: float) -> float:
    if dtype == "fp32":  # log axis, 349 px per decade
        return 10 ** ((700.5 - row) / (700.5 - 351.5))
    lo, hi = (867.5, 104.5) if dtype == "fp16" else (1803.5, 1049.5)
    return 3.0 * (lo - row) / (lo - hi)


def readings() -> dict[tuple[str, int, int], float]:
    """(dtype, block, sparsity %) -> speedup over dense, 3 significant digits."""
    return {(dt, b, s): float(f"{speedup(dt, y):.3g}")
            for dt, blocks in ROWS.items() for b, ys in blocks.items()
            for s, y in zip(SPARSITY, ys) if y is not None}


if __name__ == "__main__":
    for (dt, b, s), v in readings().items():
        print(f"{dt} block {b:2d} sparsity {s:2d} %: {v}")
