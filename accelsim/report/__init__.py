"""Reports on runs and their simulations: HTML/Markdown documents, comparison tables and curves.

``build_report(runs, out)`` is what ``accelsim report`` and ``accelsim run`` call; ``compare_rows`` feeds
``accelsim compare``; ``write_curves`` draws ``accelsim plot speedup``. Results are read back from
``<run>/sim/<hw>.json`` so a report always shows what the simulator stored; the one thing a report simulates
itself is its BERT-base projection of trained runs (``projection.py``), stored the same way under
``<report>/projection/``.
"""
from __future__ import annotations

_LAZY = {
    "build_report": "accelsim.report.build",
    "load_run": "accelsim.report.data",
    "load_sims": "accelsim.report.data",
    "expand_inputs": "accelsim.report.data",
    "hw_rows": "accelsim.report.tables",
    "write_curves": "accelsim.report.curves",
    "synthetic_sweep_runs": "accelsim.report.curves",
    "load_validation": "accelsim.report.validation",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    # lazy so that `import accelsim.report` (e.g. by the CLI at start-up) does not import matplotlib
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'accelsim.report' has no attribute {name!r}")
