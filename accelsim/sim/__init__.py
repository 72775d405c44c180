"""The event-driven simulator: a trace's steps scheduled on a hardware profile.

Public names are imported lazily so that ``import accelsim.sim.methods`` (used by the synthetic
trace generator) does not pull in simpy and the hardware package.
"""
from __future__ import annotations

_LAZY = {"simulate": "accelsim.sim.api", "simulate_many": "accelsim.sim.api", "SimResult": "accelsim.sim.result"}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'accelsim.sim' has no attribute {name!r}")
