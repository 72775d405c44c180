"""Human-readable views of a profile (used by `accelsim hw list/show`): flattened fields with provenance."""
from __future__ import annotations

from dataclasses import dataclass

from accelsim.hardware.profile import HardwareProfile, profile_to_dict
from accelsim.hardware.schema import covers
from accelsim.hardware.quantities import human


@dataclass(frozen=True)
class FieldRow:
    field: str
    value: str
    provenance: str  # the citation, or the assumption's reason
    assumption: bool
    covered_by: str  # the sources/assumptions key that covers this field


def _flatten(data, prefix: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    if isinstance(data, dict):
        for k, v in data.items():
            out.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(data, list) and data and all(isinstance(v, dict) and "name" in v for v in data):
        for v in data:  # memory levels are addressed by name, as in sources/assumptions
            rest = {k: x for k, x in v.items() if k != "name"}
            out.extend(_flatten(rest, f"{prefix}.{v['name']}"))
    else:
        out.append((prefix, data))
    return out


def _item(v) -> str:
    # a size table's [elements, time] pair (accelsim.hardware.element_time) reads "elements: time"
    return f"{v[0]}: {v[1]}" if isinstance(v, list) and len(v) == 2 else str(v)


def field_rows(profile: HardwareProfile) -> list[FieldRow]:
    """Every field of the profile with the citation or assumption covering it (most specific key wins)."""
    data = profile_to_dict(profile)
    for key in ("sources", "assumptions", "fitted", "format"):
        data.pop(key, None)
    rows = []
    for path, value in _flatten(data):
        text = ", ".join(_item(v) for v in value) if isinstance(value, list) else str(value)
        src = max((k for k in profile.sources if covers(k, path)), key=len, default="")
        asm = max((k for k in profile.assumptions if covers(k, path)), key=len, default="")
        if asm and len(asm) >= len(src):
            rows.append(FieldRow(path, text, profile.assumptions[asm] or "(no reason given)", True, asm))
        elif src:
            rows.append(FieldRow(path, text, profile.sources[src], False, src))
        else:
            rows.append(FieldRow(path, text, "", False, ""))
    return rows


def profile_basis(profile: HardwareProfile) -> str:
    """Where a profile's efficiencies come from, read from its ``fitted:`` record: "measured" (accelsim calibrate on
    kernels timed on that machine), "published" (sparse paths fitted to others' published benchmarks) or
    "assumed" (datasheet + assumptions)."""
    fitted = profile.fitted if isinstance(profile.fitted, dict) else {}
    if fitted.get("measurements"):
        return "measured"
    return "published" if fitted.get("data") else "assumed"


def _basis_cell(profile: HardwareProfile) -> str:
    """The basis with the held-out error its fit recorded (what `hw list` shows)."""
    if profile.kind == "ideal":
        return "bound (time = FLOPs / peak)"
    basis, fitted = profile_basis(profile), profile.fitted if isinstance(profile.fitted, dict) else {}
    if basis == "measured" and "mape" in (held := fitted.get("heldout") or {}):
        return f"measured on the CPU it describes: held-out error {held['mape']:.1%} over {held['n']} kernels"
    if basis == "published" and "within_1.35x" in (held := fitted.get("held_out") or {}):
        group = fitted.get("held_out_by_group") or {}
        return (f"published: {held['within_1.35x']:.0%} of {held['n']} held-out points within 1.35x"
                + (f" ({group['within_1.35x']:.0%} holding out author groups)" if "within_1.35x" in group else ""))
    return basis


def summary(profile: HardwareProfile) -> dict[str, str]:
    """One line per profile for `accelsim hw list`."""
    peak = profile.compute.peak_flops[profile.dtype]
    memory = ", ".join(f"{lv.name} {human(lv.capacity_bytes, 'bytes')} @ {human(lv.bandwidth_Bps, 'bandwidth')}"
                       for lv in profile.memory if lv.role in ("sram", "main")) or "none"
    exploits = ", ".join(f"{s.pattern}" + (f" {'/'.join(map(str, s.block_sizes))}" if s.block_sizes else "")
                         + f" ({name})" for name, s in profile.paths.items()
                         if s.pattern not in ("dense", "vector")) or "none"
    return {"name": profile.name, "kind": profile.kind, "dtype": profile.dtype,
            "peak": f"{human(peak, 'flop_rate')} x{profile.compute.count} {profile.compute.unit_name}s",
            "memory": memory, "exploits": exploits, "basis": _basis_cell(profile)}
