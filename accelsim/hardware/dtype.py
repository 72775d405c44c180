"""One profile, any precision it has a peak for: ``with_dtype`` (``accelsim simulate/compare --dtype``).

A profile names the dtype it trains in; the published sparse-vs-dense points span fp32, tf32, bf16 and
fp16, and before this a copied profile was the only way to change precision. The switch changes which
peak, path fractions and bytes per element the cost model uses (all already per dtype in the profile);
it invents nothing: a dtype the profile has no matrix peak for is refused. TF32 is a tensor-core matmul
mode, so elementwise work in a tf32 run runs at the fp32 vector rate (and energy) when the profile gives
no separate tf32 entry.
"""
from __future__ import annotations

import dataclasses

from accelsim.errors import UserError
from accelsim.hardware.profile import HardwareProfile, load_profile
from accelsim.hardware.schema import DTYPE_BYTES

#: a dtype a table may lack -> the entry that stands for it (tf32 changes only the matmul units)
STAND_IN = {"tf32": "fp32"}


def _table(table: dict, dtype: str, what: str, profile: HardwareProfile) -> dict:
    if dtype in table:
        return table
    if STAND_IN.get(dtype) in table:
        return {**table, dtype: table[STAND_IN[dtype]]}
    raise UserError(f"profile {profile.name!r} has no {what} entry for {dtype!r} (has {', '.join(table)})",
                    source=profile.source_file, field=what)


def with_dtype(profile: HardwareProfile | str, dtype: str | None) -> HardwareProfile:
    """``profile`` training in ``dtype`` (None or its own dtype: unchanged). Its name gets '@<dtype>' so
    results of several precisions of one profile stay apart (sim/<name>.json, tables)."""
    profile = load_profile(profile)
    if dtype is None or dtype == profile.dtype:
        return profile
    if dtype not in DTYPE_BYTES:
        raise UserError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPE_BYTES)}", field="--dtype")
    if dtype not in profile.compute.peak_flops:
        raise UserError(f"profile {profile.name!r} has no compute.peak entry for {dtype!r} (has "
                        f"{', '.join(profile.compute.peak_flops)})", source=profile.source_file, field="--dtype")
    compute = dataclasses.replace(profile.compute, vector_flops=_table(profile.compute.vector_flops, dtype,
                                                                        "compute.vector", profile))
    energy = dataclasses.replace(profile.energy, pj_per_flop=_table(profile.energy.pj_per_flop, dtype,
                                                                     "energy.compute", profile))
    return dataclasses.replace(profile, name=f"{profile.name}@{dtype}", dtype=dtype, compute=compute, energy=energy)
