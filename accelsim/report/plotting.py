"""Matplotlib plumbing shared by the report and ``accelsim plot``.

Figures are built with the object-oriented API (``matplotlib.figure.Figure``, Agg canvas) and never
through pyplot, so nothing depends on, or changes, the user's interactive backend.
"""
from __future__ import annotations

import io
import math
import re
from pathlib import Path

from matplotlib.figure import Figure

from accelsim.bert import ROLE_BY_SUFFIX

DPI = 110  # sharp enough to read in a browser, small enough that a report stays a few MB


def new_figure(n_panels: int = 1, *, ncols: int = 2, panel: tuple[float, float] = (6.0, 3.6),
               sharex: bool = False) -> tuple[Figure, list]:
    ncols = max(1, min(ncols, n_panels))
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def save_figure(fig: Figure, stem: Path, formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        # a fixed SVG hash salt and no date keep SVGs byte-stable between identical runs
        meta = {"Date": None} if fmt == "svg" else None
        fig.savefig(path, format=fmt, dpi=DPI, metadata=meta)
        paths.append(path)
    return paths


_ROLE_SUFFIX = ROLE_BY_SUFFIX  # HF module suffix -> role (accelsim.bert)


def short_layer(name: str) -> str:
    """'bert.encoder.layer.3.attention.self.query' -> 'L3.q'; 'block3.softmax' -> 'L3.softmax'."""
    m = re.match(r"^(?:.*\.)?(?:layer|layers|block|blocks)\.(\d+)\.(.+)$", name)
    if m:
        return f"L{m.group(1)}.{_ROLE_SUFFIX.get(m.group(2), m.group(2))}"
    m = re.match(r"^block(\d+)\.(.+)$", name)
    return f"L{m.group(1)}.{m.group(2)}" if m else name


def run_colors(names: list[str]) -> dict[str, str]:
    """One colour per run, the same in every figure of a report."""
    return {n: f"C{i % 10}" for i, n in enumerate(names)}
