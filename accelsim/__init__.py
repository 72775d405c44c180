"""accelsim: what dynamic-sparse training would really cost on real hardware."""
from __future__ import annotations

__version__ = "0.1.0"
