"""Merge measurement files of the same machine into one: more rounds per case (`accelsim kernels merge`).

A calibration wants each case measured in several rounds minutes apart (a shared VM runs ~10 % slower
for spells of minutes, see BenchConfig.rounds), and a long sweep is easier to run as several shorter
ones. Merging matches records by case (op, shape, pattern, density, dtype, threads, FFF tree shape),
pools their rounds (``times_rounds``, or ``times`` for a one-round file) and recomputes every derived
field from the per-path medians with the bench's own code, exactly as one sweep with all the rounds.

``latest_only``: kernel paths whose code changed between the sweeps (a rebuilt C kernel): only the rounds
of the newest file (by its machine date) that timed the path are kept; the older rounds of that path are
dropped, the other paths' rounds of the same records are kept. The merged file lists what was dropped.
Each path's per-round ratios to the dense baseline timed beside it (``ratios_rounds``) are pooled as
they are: they were paired within their own file's rounds (for files written before ratios, see
:func:`kernels.bench.record_ratios`).
Files record the hashes of the project's C kernel sources (``machine.kernel_sources``): rounds of a path
timed with different code are refused unless the path is named in ``latest_only``.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
from pathlib import Path

from accelsim.errors import expect
from accelsim.kernels.bench import record_from_rounds
from accelsim.kernels.cases import Case
from accelsim.kernels.fff_bench import FFFCase
from accelsim.kernels.machine import KERNEL_SOURCES, SAME_MACHINE_KEYS
from accelsim.kernels.records import FFF_OP, SCHEMA, Measurements, Record, read_measurements
from accelsim.kernels.registry import Choice

#: machine fields that must agree: timings of different machines are not rounds of one measurement
SAME_MACHINE = SAME_MACHINE_KEYS + ("torch", "device")
#: per-round fields the quiet gate records (kept per round in the merged record)
GATE_FIELDS = ("busy_before", "busy_during", "attempts")


def case_key(rec: Record | dict) -> tuple:
    """What makes two records rounds of one case (Record.case_key; a JSON record is read first)."""
    return (rec if isinstance(rec, Record) else Record.from_dict(rec)).case_key


def _case(rec: Record, seed: int):
    if rec.op == FFF_OP:
        return FFFCase(rec.tokens, rec.d_in, rec.trees, rec.depth, rec.dtype, seed)
    return Case(rec.op, rec.tokens, rec.d_in, rec.d_out, rec.density, rec.pattern, rec.dtype, seed)


def _rounds(rec: Record, seed: int) -> list[tuple[Choice, dict]]:
    """The record's rounds as the (Choice, gate info) pairs run_bench measured."""
    per_path = rec.times_rounds or {p: [t] for p, t in rec.times.items()}
    n = max(len(ts) for ts in per_path.values())
    case = _case(rec, seed)
    out = []
    for i in range(n):
        times = {p: ts[i] for p, ts in per_path.items() if i < len(ts)}
        info = {}
        for f in GATE_FIELDS:
            v = rec.extra.get(f)
            info[f] = v[i] if isinstance(v, list) and i < len(v) else (None if isinstance(v, list) else v)
        out.append((Choice(case, rec.device, rec.threads, times=times, rejected=dict(rec.rejected),
                           layouts=dict(rec.layouts), density_actual=rec.density_actual), info))
    return out


def _without(rec: Record, drop: list[str]) -> Record:
    """The record with the rounds of the ``drop`` paths removed."""
    changes = {}
    for f in ("times", "times_rounds", "ratios_rounds", "rejected", "layouts", "families"):
        if isinstance(getattr(rec, f), dict):
            changes[f] = {p: v for p, v in getattr(rec, f).items() if p not in drop}
    return dataclasses.replace(rec, **changes)


def merge_measurements(paths: list[str | Path], latest_only: tuple[str, ...] = ()) -> dict:
    """One measurements document holding every round of every file (see the module docstring)."""
    expect(len(paths) >= 2, "expected at least two measurement files to merge", field="measurements")
    docs = [read_measurements(p) for p in paths]
    newest = {}  # path -> index of the newest file that timed it
    for path in latest_only:
        timed = [i for i, d in enumerate(docs) if any(path in r.times for r in d.records)]
        expect(bool(timed), f"no file times kernel path {path!r}", field="latest_only")
        newest[path] = max(timed, key=lambda i: (docs[i].machine.get("date") or "", i))  # tie: the later file
    sources = _kernel_sources(paths, docs, newest)
    first = docs[0].machine
    for p, d in zip(paths[1:], docs[1:]):
        for f in SAME_MACHINE:
            expect(d.machine.get(f) == first.get(f), f"measured on another machine or stack than {paths[0]} "
                   f"({f}: {d.machine.get(f)!r} vs {first.get(f)!r})", source=p, field=f"machine.{f}")
    layers: dict[tuple, str] = {}
    rounds: dict[tuple, list] = {}
    ratios: dict[tuple, dict[str, list[float]]] = {}  # paired within each file's rounds (bench.round_ratios)
    dropped: dict[int, list[str]] = {}
    for i, d in enumerate(docs):
        drop = [p for p, j in newest.items() if j != i and any(p in r.times for r in d.records)]
        if drop:
            dropped[i] = drop
        for rec in d.records:
            k = case_key(rec)
            if drop:
                rec = _without(rec, drop)
                if not rec.times:
                    continue
            layers.setdefault(k, rec.layer)
            rounds.setdefault(k, []).extend(_rounds(rec, d.seed))
            for path, rs in rec.ratios().items():
                ratios.setdefault(k, {}).setdefault(path, []).extend(rs)
    records = [record_from_rounds(layers[k], rs, ratios.get(k, {})) for k, rs in rounds.items()]
    skipped = {repr(sorted(s.items())): s for d in docs for s in d.skipped}
    config = dict(docs[0].config)
    config["rounds"] = sum(d.rounds for d in docs)
    machine = dict(first, kernel_sources=sources, merged_from=[
        {"file": str(p), "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest(), "date": d.machine.get("date"),
         "records": len(d.records), "rounds": d.rounds,
         **({"kernel_sources": d.machine["kernel_sources"]} if d.machine.get("kernel_sources") else {}),
         **({"dropped_paths": dropped[i]} if i in dropped else {})}
        for i, (p, d) in enumerate(zip(paths, docs))],
        merged_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    doc = {"schema": SCHEMA, "machine": machine, "config": config, "records": records,
           "skipped": list(skipped.values())}
    Measurements.from_dict(doc, "kernels merge")  # what is written must read back
    return doc


def _kernel_sources(paths: list, docs: list[Measurements], newest: dict[str, int]) -> dict[str, str]:
    """The source hash of every C kernel path in the merged rounds; a path timed with two versions of its
    code is refused unless ``latest_only`` keeps one file's rounds (``newest``: path -> that file).
    Files written before hashes were recorded are not compared."""
    out = {}
    for kpath in KERNEL_SOURCES:
        seen: dict[str, str] = {}
        for i, (p, d) in enumerate(zip(paths, docs)):
            h = (d.machine.get("kernel_sources") or {}).get(kpath)
            if h and (kpath not in newest or newest[kpath] == i) and any(kpath in r.times for r in d.records):
                seen.setdefault(h, str(p))
        expect(len(seen) <= 1, f"kernel path {kpath!r} was timed with different versions of its C source in "
               f"{' and '.join(seen.values())} (hashes {', '.join(seen)}); their rounds cannot be pooled: pass "
               f"--latest-only {kpath} to keep the newest file's", field="latest_only")
        if seen:
            out[kpath] = next(iter(seen))
    return out
