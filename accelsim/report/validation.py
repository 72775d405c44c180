"""The cost model's measured error, read from the ``validation.json`` that ``accelsim validate`` writes
(kernels.calibrate.validate): ``profile``, ``mode``, ``n_points``, ``overall_mape`` {n, mape,
median_ratio}, ``mape_by_pattern`` / ``mape_by_kernel`` {group: {n, mape, median_ratio}}, ``points``.
Only those summary fields are read, so extra fields never break a report.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from accelsim.errors import UserError, expect


@dataclass
class Validation:
    path: Path
    profile: str
    mode: str
    n_points: int
    mape: float  # mean absolute percentage error of predicted vs measured kernel time, as a fraction
    median_ratio: float  # median predicted / measured
    by_pattern: dict[str, dict[str, float]] = field(default_factory=dict)
    by_kernel: dict[str, dict[str, float]] = field(default_factory=dict)
    plot: Path | None = None  # validation.png next to the JSON, when there

    def to_dict(self) -> dict:
        return {"path": str(self.path), "profile": self.profile, "mode": self.mode, "n_points": self.n_points,
                "mape": self.mape, "median_ratio": self.median_ratio, "by_pattern": self.by_pattern}


def _group(doc: dict, key: str, path: Path) -> dict[str, dict[str, float]]:
    raw = doc.get(key) or {}
    expect(isinstance(raw, dict), "expected an object of groups", source=path, field=key)
    out = {}
    for name, g in raw.items():
        expect(isinstance(g, dict) and _finite(g.get("mape")), "expected {n, mape, median_ratio}", source=path,
               field=f"{key}.{name}")
        out[str(name)] = {"n": int(g.get("n", 0)), "mape": float(g["mape"]),
                          "median_ratio": float(g.get("median_ratio", math.nan))}
    return out


def _raw_note(raw) -> str:
    """Measured sparse times are paired with the dense baseline timed beside them (kernels.calibrate);
    the error against the plain medians is stated next to the mode when the file has it."""
    return f"; against unpaired medians {100 * raw:.1f} %" if _finite(raw) else ""


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def load_validation(path: str | Path) -> Validation:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"unreadable validation file ({err.__class__.__name__})", source=path) from None
    expect(isinstance(doc, dict), "expected the JSON object `accelsim validate` writes", source=path)
    overall = doc.get("overall_mape")
    expect(isinstance(overall, dict) and _finite(overall.get("mape")),
           "expected an object with 'mape' (as `accelsim validate` writes)", source=path, field="overall_mape")
    expect(isinstance(doc.get("profile"), str), "expected the validated profile's name", source=path, field="profile")
    png = path.with_name("validation.png")
    return Validation(path=path, profile=doc["profile"], mode=str(doc.get("mode", "")) + _raw_note(
                          ((doc.get("raw") or {}).get("overall") or {}).get("mape")),
                      n_points=int(doc.get("n_points", overall.get("n", 0))), mape=float(overall["mape"]),
                      median_ratio=float(overall.get("median_ratio", math.nan)),
                      by_pattern=_group(doc, "mape_by_pattern", path), by_kernel=_group(doc, "mape_by_kernel", path),
                      plot=png if png.is_file() else None)


def profile_validations(hw: list[str]) -> list[Validation]:
    """The held-out error each fitted profile among ``hw`` carries in its ``fitted:`` block (written by
    ``accelsim calibrate``): the report's fallback when no validation.json is given or found."""
    from accelsim.hardware import load_profile

    out = []
    for name in hw:
        try:
            prof = load_profile(name)
        except UserError:
            continue  # simulated with a profile file that is gone: nothing to say about its error
        held = (prof.fitted or {}).get("heldout")
        if not isinstance(held, dict) or not _finite(held.get("mape")):
            continue
        mode = (f"held-out points of {prof.fitted.get('measurements', '?')}, recorded in the profile by "
                "`accelsim calibrate`") + _raw_note(prof.fitted.get("heldout_mape_raw"))
        out.append(Validation(path=Path(prof.source_file or name), profile=prof.name, mode=mode,
                              n_points=int(held.get("n", 0)), mape=float(held["mape"]),
                              median_ratio=float(held.get("median_ratio", math.nan)),
                              by_pattern=_group(held, "by_pattern", Path(prof.source_file or name))))
    return out
