"""The device-to-device link used for data-parallel gradient all-reduce."""
from __future__ import annotations

import simpy

from accelsim.sim.units.busy import BusyLog


def ring_allreduce_s(nbytes: float, devices: int, bandwidth: float, latency: float) -> float:
    """Ring all-reduce (reduce-scatter + all-gather): each device sends and receives
    2 (N-1)/N of the buffer, in 2 (N-1) steps that each pay the link latency."""
    if devices <= 1 or nbytes <= 0:
        return 0.0
    return 2 * (devices - 1) / devices * nbytes / bandwidth + 2 * (devices - 1) * latency


class Link:
    """Collectives queue on the link one at a time (as NCCL runs one communication stream)."""

    def __init__(self, env: simpy.Environment, devices: int, bandwidth: float, latency: float):
        self.env = env
        self.devices, self.bandwidth, self.latency = devices, bandwidth, latency
        self.channel = simpy.Resource(env, capacity=1)
        self.log = BusyLog()
        self.bytes = 0.0

    def allreduce(self, nbytes: float):
        """Process: all-reduce ``nbytes`` of gradient across the devices."""
        seconds = ring_allreduce_s(nbytes, self.devices, self.bandwidth, self.latency)
        if seconds <= 0:
            return
        with self.channel.request() as req:
            yield req
            start = self.env.now
            yield self.env.timeout(seconds)
            self.log.add(start, self.env.now)
            self.bytes += 2 * (self.devices - 1) / self.devices * nbytes
