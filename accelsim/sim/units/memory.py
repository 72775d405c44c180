"""The memory side of a device: traffic of an op between its memory levels and the engines."""
from __future__ import annotations

import simpy

from accelsim.sim.units.busy import BusyLog


class MemoryPort:
    """One port per device: an op's transfers queue on it (capacity 1), whatever level they touch.
    The cost model has already turned bytes per level into seconds; the port decides *when* those
    seconds happen (overlapped with compute, after it, or in a BSP exchange phase)."""

    def __init__(self, env: simpy.Environment):
        self.env = env
        self.port = simpy.Resource(env, capacity=1)
        self.log = BusyLog()

    def transfer(self, seconds: float):
        """Process: hold the port for ``seconds``."""
        if seconds <= 0:
            return
        with self.port.request() as req:
            yield req
            start = self.env.now
            yield self.env.timeout(seconds)
            self.log.add(start, self.env.now)
