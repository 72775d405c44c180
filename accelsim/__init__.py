"""accelsim: what dynamic-sparse training would really cost on real hardware."""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# the public API, imported lazily so that `import accelsim` stays cheap (no simpy, pyarrow or profiles loaded)
_API = {
    "simulate": "accelsim.sim.api",
    "kernel_time": "accelsim.hardware.kernel_time",
    "load_profile": "accelsim.hardware.profile",
}


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'accelsim' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))
