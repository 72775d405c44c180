"""A pool of identical compute engines (GPU SMs, CPU cores, FPGA PEs, IPU tiles)."""
from __future__ import annotations

from collections import deque
from typing import Sequence

import simpy

from accelsim.sim.units.busy import BusyLog


class ComputeArray:
    """``engines`` engines, each a simpy process pulling the op's work items from one shared queue
    in order (greedy list scheduling, as a GPU block scheduler or a thread pool runs them), so that
    uneven items show up as a makespan longer than their mean: the load imbalance of irregular
    sparsity.

    Pull-based engines rather than one process per item contending for a ``simpy.Resource``: the
    schedule is the same (FIFO, next free engine), but it costs one event per item instead of four,
    which matters at 1024 items per op."""

    def __init__(self, env: simpy.Environment, engines: int):
        if engines < 1:
            raise ValueError("a compute array needs at least one engine")
        self.env = env
        self.engines = engines
        self.log = BusyLog()

    def _engine(self, queue: deque, units: float):
        while queue:
            duration = queue.popleft()
            start = self.env.now
            yield self.env.timeout(duration)
            self.log.add(start, self.env.now, units)

    def run(self, items: Sequence[float], whole_s: float = 0.0, units_per_item: float = 1.0):
        """Process: run the work items (or, with none, one op spanning all engines for ``whole_s``).

        On very wide devices the cost model emits fewer items than engines, each standing for
        ``units_per_item`` engines working together; its busy time counts for all of them."""
        if len(items) == 0:
            start = self.env.now
            yield self.env.timeout(whole_s)
            self.log.add(start, self.env.now, units=self.engines)
            return
        durations = [float(d) for d in items]
        if len(durations) <= self.engines or max(durations) == min(durations):
            # one item per engine, or equal items: greedy scheduling runs in rounds of whole waves that
            # start together, logged as such; skipping one process per item keeps wide devices (thousands
            # of tiles, or hundreds of SMs x blocks) from costing a simpy event per item at every op the
            # memo cannot answer (FFF routing statistics change at every step)
            for wave in range(0, len(durations), self.engines):
                chunk = durations[wave:wave + self.engines]
                self.log.add_parallel(self.env.now, chunk, units_per_item)
                yield self.env.timeout(max(chunk))
            return
        queue = deque(durations)
        workers = min(self.engines, len(queue))  # engines that would never get an item stay idle
        yield self.env.all_of([self.env.process(self._engine(queue, units_per_item)) for _ in range(workers)])
