"""The report's answer first: which hardware trains these runs fastest and cheapest, and what sparsity buys.

Definitions (stated in the report next to the numbers):

* *real hardware*: every simulated profile except kind ``ideal`` (time = FLOPs / peak), which is shown
  apart as a bound;
* *best sparse run*: the sparse run with the largest speedup over the dense run on any real hardware;
* *Amdahl limit* of a run: dense FLOPs / the FLOPs the method needs over the whole run (1 / FLOP ratio),
  what a machine whose time follows FLOPs would gain. A speedup above it means the dense run is limited
  by something other than FLOPs on that hardware (memory capacity or bandwidth).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.hardware.describe import profile_basis
from accelsim.report.data import RunData, simulated_profiles
from accelsim.report.tables import HwRow
from accelsim.report.units import fmt_energy, fmt_ratio, fmt_share, fmt_time


@dataclass(frozen=True)
class ProfileInfo:
    name: str  # as simulated: <hw> or <hw>-x<N>
    kind: str
    dtype: str
    # where its efficiencies come from: "measured" (fitted by accelsim calibrate to kernels timed on that machine),
    # "published" (sparse paths fitted to others' published benchmarks) or "assumed" (datasheet + assumptions)
    basis: str = "assumed"
    # for a CPU profile: which CPU it describes, and whether that is not the machine building the report
    cpu_note: tuple[str, bool] | None = None

    @property
    def is_bound(self) -> bool:
        return self.kind == "ideal"


def profile_info(runs: list[RunData], hardware: list[str]) -> dict[str, ProfileInfo]:
    """Kind and training dtype of each simulated profile (dtype from the profile; '?' if it cannot be loaded)."""
    from accelsim.kernels.machine import cpu_profile_note

    out = {}
    for h, prof in simulated_profiles(runs, hardware).items():
        doc = next((r.sims[h].doc for r in runs if h in r.sims), {})
        if prof is None:
            kind, dtype, basis, note = str(doc.get("kind", "?")), "?", "assumed", None
        else:
            kind, dtype, basis, note = prof.kind, prof.dtype, profile_basis(prof), cpu_profile_note(prof)
        out[h] = ProfileInfo(h, str(doc.get("kind", kind)), dtype, basis, note)
    return out


def basis_text(prof) -> str:
    """One cell saying how a profile's figures were obtained, with the held-out error its fit recorded."""
    fitted = prof.fitted if isinstance(prof.fitted, dict) else {}
    basis = profile_basis(prof)
    if basis == "measured":
        held = fitted.get("heldout") or {}
        err = f"; held-out error {fmt_share(held['mape'])} over {held['n']} kernels" if "mape" in held else ""
        return f"fitted to kernels timed on that machine ({fitted['measurements']}){err}"
    if basis == "published":
        held = fitted.get("held_out") or {}
        err = (f"; leave-one-source-out: {fmt_share(held['within_1.35x'])} of {held['n']} published points within "
               "1.35×" if "within_1.35x" in held and "n" in held else "")
        # publications by the same people are not independent checks (kernels/published.py AUTHOR_GROUPS); where
        # every source is one group's, holding that group out leaves only the profile's assumptions to score
        group = fitted.get("held_out_by_group") or {}
        if err and "within_1.35x" in group and "groups" in group:
            err += (f", leave-one-author-group-out: {fmt_share(group['within_1.35x'])} "
                    f"({group['groups']} group{'s' if group['groups'] != 1 else ''})")
        return f"datasheet; sparse paths fitted to published benchmarks ({fitted['data']}){err}"
    return "datasheet + assumptions"


def basis_summary(info: dict[str, ProfileInfo], names: list[str]) -> str:
    """Which of ``names`` rest on measured kernels, on published benchmarks, or on assumptions alone."""
    by = {b: [h for h in names if info[h].basis == b] for b in ("measured", "published", "assumed")}
    return " ".join(
        ([f"Fitted to kernels timed on the machine they describe: {', '.join(by['measured'])}."]
         if by["measured"] else [])
        + ([f"Datasheets with sparse paths fitted to published benchmarks (nothing timed here): "
            f"{', '.join(by['published'])}."] if by["published"] else [])
        + ([f"Datasheets and stated assumptions only: {', '.join(by['assumed'])}."] if by["assumed"] else []))


def flop_ratio(run: RunData) -> float | None:
    """FLOPs the method needs over the whole run / the dense model's over the same steps."""
    from accelsim.trace import PHASES

    s = run.trace.steps
    need = sum(float(np.sum(s[f"flops_{p}"].to_numpy())) for p in PHASES)
    dense = sum(float(np.sum(s[f"flops_{p}_dense"].to_numpy())) for p in PHASES)
    return need / dense if dense and need else None


def amdahl_limit(run: RunData) -> float | None:
    ratio = flop_ratio(run)
    return 1.0 / ratio if ratio else None


def hardware_by_time(rows: list[HwRow], hardware: list[str], info: dict[str, ProfileInfo],
                     runs: list[RunData]) -> tuple[list[str], list[str]]:
    """(real hardware fastest first by the dense run's time, else the first run's; bounds)."""
    dense = next((r.name for r in runs if r.is_dense), runs[0].name if runs else None)
    t = {r.hardware: r.time_s for r in rows if r.run == dense}
    real = [h for h in hardware if not info[h].is_bound]
    real.sort(key=lambda h: (t.get(h) is None, t.get(h) or 0.0))
    return real, [h for h in hardware if info[h].is_bound]


@dataclass
class Pick:
    run: str
    fastest: HwRow
    cheapest: HwRow


def _pick(rows: list[HwRow], run: str, real: set[str]) -> Pick | None:
    mine = [r for r in rows if r.run == run and r.hardware in real]
    if not mine:
        return None
    return Pick(run, min(mine, key=lambda r: r.time_s), min(mine, key=lambda r: r.energy_j))


def best_sparse(rows: list[HwRow], runs: list[RunData], real: set[str]) -> HwRow | None:
    sparse = {r.name for r in runs if not r.is_dense}
    cands = [r for r in rows if r.run in sparse and r.hardware in real and np.isfinite(r.speedup)]
    return max(cands, key=lambda r: (r.speedup, -r.time_s), default=None)


def verdict_lines(rows: list[HwRow], runs: list[RunData], info: dict[str, ProfileInfo], *,
                  label: str = "") -> list[tuple[str, str]]:
    """(label, sentence) pairs: dense winners, best sparse run's winners, best speedup vs its Amdahl limit."""
    real = {h for h, p in info.items() if not p.is_bound}
    bounds = [h for h, p in info.items() if p.is_bound]
    out: list[tuple[str, str]] = []
    pre = f"{label}: " if label else ""
    # the sparse speedup is what the fits are about (dense paths are datasheet figures on every non-CPU profile):
    # where the best one comes from a profile whose sparse paths are assumptions, the best on fitted ones follows
    fitted = {h for h in real if info[h].basis != "assumed"}
    dense = next((r for r in runs if r.is_dense), None)
    if dense is not None and (p := _pick(rows, dense.name, real)):
        out.append((f"{pre}dense ({dense.name})", _winners(p)))
    best = best_sparse(rows, runs, real)
    if best is None:
        return out
    run = next(r for r in runs if r.name == best.run)
    if p := _pick(rows, best.run, real):
        out.append((f"{pre}best sparse run ({best.run})", _winners(p)))
    limit = amdahl_limit(run)
    text = (f"{fmt_ratio(best.speedup)} faster than dense ({best.run} on {best.hardware})" if best.speedup >= 1.0 else
            f"nothing on real hardware: at best {fmt_ratio(best.speedup)} the dense run's speed ({best.run} on "
            f"{best.hardware})")
    if limit:
        text += (f"; its Amdahl limit is {fmt_ratio(limit)} (the run needs {fmt_share(1 / limit)} of the dense "
                 "FLOPs)")
        if best.speedup > limit * 1.02:
            text += ("; above that limit because the dense run is held back by memory there, not by FLOPs "
                     "(see Where the time goes)")
            # such a headline rests on the memory model (capacity, streaming) more than on the sparse kernels:
            # the best speedup that FLOPs alone could explain is given beside it
            shown = {x.run for x in rows}
            limits = {r.name: amdahl_limit(r) for r in runs if r.name in shown}
            within = [x for x in rows if limits.get(x.run) and x.speedup <= limits[x.run] * 1.02]
            if (alt := best_sparse(within, runs, real)) is not None:
                text += f"; the best within its Amdahl limit is {fmt_ratio(alt.speedup)} ({_where(alt, info)})"
    if info[best.hardware].basis == "assumed":
        text += f"; {best.hardware}'s sparse figures are {ASSUMED}"
        if (alt := best_sparse(rows, runs, fitted)) is not None:
            text += (f"; on profiles fitted to measured or published kernels the best is {fmt_ratio(alt.speedup)} "
                     f"({_where(alt, info)})")
    ideal = next((r for r in rows if r.run == best.run and r.hardware in bounds), None)
    if ideal is not None:
        text += f"; the {ideal.hardware} bound (time = FLOPs / peak) reaches {fmt_ratio(ideal.speedup)}"
    out.append((f"{pre}what sparsity buys", text + "."))
    return out


#: what the verdict says of a profile whose basis is "assumed" (no kernel of it measured or published)
ASSUMED = "assumptions (no measured or published sparse kernel of it)"


def _where(row: HwRow, info: dict[str, ProfileInfo]) -> str:
    assumed = info[row.hardware].basis == "assumed"
    return f"{row.run} on {row.hardware}" + (", whose sparse figures are assumptions" if assumed else "")


def _winners(p: Pick) -> str:
    f, c = p.fastest, p.cheapest
    vs = lambda r: "" if r.speedup == 1.0 or not np.isfinite(r.speedup) else f", {fmt_ratio(r.speedup)} vs dense"
    return (f"fastest on {f.hardware} ({fmt_time(f.time_s)}{vs(f)}); lowest energy on {c.hardware} "
            f"({fmt_energy(c.energy_j)}).")


def dtype_line(info: dict[str, ProfileInfo], order: list[str]) -> tuple[str, str]:
    return ("number formats", " · ".join(f"{h} {info[h].dtype}" for h in order)
            + " (each profile trains in its own dtype; see Hardware profiles).")
