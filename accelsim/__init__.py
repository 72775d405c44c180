"""accelsim: what dynamic-sparse training would really cost on real hardware."""
from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name: str):
    # lazy, so that `import accelsim` stays cheap (no simpy, pyarrow or hardware profiles loaded)
    if name == "simulate":
        from accelsim.sim.api import simulate

        return simulate
    raise AttributeError(f"module 'accelsim' has no attribute {name!r}")
