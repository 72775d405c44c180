"""Files for a validation report: the per-point CSV and the predicted-vs-measured scatter."""
from __future__ import annotations

import csv
from pathlib import Path

COLORS = {"dense": "black", "unstructured": "tab:blue", "2:4": "tab:purple", "block16": "tab:orange",
          "block32": "tab:red"}


def write_rows_csv(rows: list[dict], path: Path) -> None:
    cols = [k for k in rows[0] if not isinstance(rows[0][k], (dict, list))]
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def scatter_png(rows: list[dict], path: Path, title: str = "") -> None:
    """Log-log predicted vs measured seconds, one colour per pattern, with the y = x line and ±2x band."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on CI machines
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=120)
    for pattern in sorted({r["pattern"] for r in rows}):
        sel = [r for r in rows if r["pattern"] == pattern]
        ax.scatter([r["measured_s"] for r in sel], [r["predicted_s"] for r in sel], s=14, alpha=0.75,
                   label=f"{pattern} ({len(sel)})", color=COLORS.get(pattern))
    lo = min(min(r["measured_s"], r["predicted_s"]) for r in rows) / 1.5
    hi = max(max(r["measured_s"], r["predicted_s"]) for r in rows) * 1.5
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, label="predicted = measured")
    ax.fill_between([lo, hi], [lo / 2, hi / 2], [lo * 2, hi * 2], color="grey", alpha=0.12, label="within 2x")
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel="measured time (s)",
           ylabel="predicted time (s)", title=title)
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, which="both", alpha=0.2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
