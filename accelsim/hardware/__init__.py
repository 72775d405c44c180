"""Hardware profiles (hwconfigs/*.yaml) and the per-op analytic cost model the simulator schedules."""
from accelsim.hardware.capacity import allreduce_time, fits_on_chip, training_state_bytes
from accelsim.hardware.cost import OpCost, op_cost
from accelsim.hardware.kernel_time import kernel_time
from accelsim.hardware.items import MAX_ITEMS, makespan
from accelsim.hardware.profile import (
    BSP,
    Compute,
    Energy,
    Execution,
    HardwareProfile,
    Link,
    MemoryLevel,
    PathSpec,
    fittable_params,
    list_profiles,
    load_profile,
    load_profile_text,
    param_bounds,
    profile_to_dict,
    profile_to_yaml,
    with_params,
)
from accelsim.hardware.synthetic import SYNTHETIC_KINDS, synthetic_pattern
from accelsim.hardware.quantities import format_quantity, parse_quantity

__all__ = [
    "BSP", "Compute", "Energy", "Execution", "HardwareProfile", "Link", "MemoryLevel", "PathSpec", "OpCost",
    "MAX_ITEMS", "SYNTHETIC_KINDS", "allreduce_time", "fits_on_chip", "fittable_params", "format_quantity",
    "kernel_time", "list_profiles", "load_profile", "load_profile_text", "makespan", "op_cost", "param_bounds",
    "parse_quantity", "profile_to_dict", "profile_to_yaml", "synthetic_pattern", "training_state_bytes",
    "with_params",
]
