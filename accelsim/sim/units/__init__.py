"""Hardware units of the event-driven model, one small class per unit (in the manner of simpy's
own resources): a pool of compute engines, a memory port, a device-to-device link. Each unit keeps
a :class:`BusyLog` of when it worked so the engine can attribute time to units."""
from accelsim.sim.units.busy import BusyLog
from accelsim.sim.units.compute import ComputeArray
from accelsim.sim.units.link import Link, ring_allreduce_s
from accelsim.sim.units.memory import MemoryPort

__all__ = ["BusyLog", "ComputeArray", "Link", "MemoryPort", "ring_allreduce_s"]
