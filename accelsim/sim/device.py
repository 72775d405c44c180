"""What the engine needs to know about a device, read once from a hardware profile.

The engine never reads profile fields itself: it sees a :class:`DeviceSpec` and a cost function
``cost(op, pattern) -> OpCost``. That keeps the event model independent of the profile format and
lets tests drive it with a tiny hand-made device.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from accelsim.errors import UserError
from accelsim.workload import Op


class CostLike(Protocol):
    """The fields of :class:`accelsim.hardware.OpCost` the engine reads."""

    compute_s: float
    memory_s: float
    time_s: float
    flops_executed: float
    bytes: dict[str, float]
    energy_j: dict[str, float]
    work_items: Sequence[float]
    path: str


CostFn = Callable[[Op, "dict | None"], CostLike]


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    kind: str = "ideal"
    engines: int = 1  # compute units work items are scheduled on
    peak_flops: float = 1.0  # matrix peak in the profile dtype, FLOP/s (for utilisation only)
    static_w: float = 0.0  # charged for every second of the run, per device
    overlap: bool = True  # an op's memory traffic overlaps its compute (roofline max) or follows it (sum)
    bsp: bool = False  # bulk-synchronous ops: compute, then sync, then exchange (IPU)
    grad_bytes: int = 4  # bytes per gradient element on the wire (the profile dtype)
    link_bandwidth: float | None = None  # B/s per device and direction; None: no multi-device link
    link_latency: float = 0.0  # s per ring step

    @classmethod
    def from_profile(cls, profile: Any) -> "DeviceSpec":
        link = profile.link
        return cls(name=profile.name, kind=profile.kind, engines=int(profile.compute.count),
                   peak_flops=float(profile.compute.peak_flops[profile.dtype]),
                   static_w=float(profile.energy.static_power_w), overlap=bool(profile.execution.overlap),
                   bsp=profile.execution.bsp is not None, grad_bytes=int(profile.dtype_bytes()),
                   link_bandwidth=None if link is None else float(link.bandwidth_Bps),
                   link_latency=0.0 if link is None else float(link.latency_s))

    def check_devices(self, devices: int) -> None:
        if devices < 1:
            raise UserError(f"expected at least one device, got {devices}", field="devices")
        if devices > 1 and not self.link_bandwidth:
            raise UserError(f"profile {self.name!r} has no 'link' section, so it cannot run data-parallel "
                            f"on {devices} devices", field="devices")
