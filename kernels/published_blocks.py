"""One block-sparse kernel at several block sizes, fitted as one law (issue 16's published fit).

Triton's ``bsr_dense_mm`` on the A100 is three profile paths (block 16, 32, 64: ``bsr-b16``, ``bsr``,
``bsr-b64``), but one kernel. For every kept b x b block it streams b rows of the dense operand, so its work per
byte grows with the block (2b / dtype bytes FLOPs per byte, ``block_reread_bandwidth``), and where those
re-reads do not bind, its tiles run at the dense GEMM's rate. That roofline carries what one source's rows
say to the others' block sizes and dtypes: Quansight's figures (blocks 16-64, fp16 and fp32) and SuperBlock's
ViT rows (block 64, bf16) are then one bandwidth per block size and one compute fraction per dtype, instead
of a fraction per block size and dtype that only the source which measured it can set.

* Start (:func:`start`): each family path's fraction is the dense path's for every dtype (cuBLAS's rate,
  sourced on the dense path), its bandwidth the main memory's datasheet rate.
* Fitted (:func:`free_fractions`): the bandwidth always; a dtype's fraction only where the path's rows hold
  a dtype of more FLOPs per byte as well (fp16 beside fp32), whose rows pin the bandwidth, so the other's
  rows can show its compute limit. Rows in one dtype alone (SuperBlock's bf16) fit the bandwidth only:
  they cannot tell a compute limit from a bandwidth one.
* A family path with no rows (its block size measured only by a held-out source) takes its nearest
  sibling's fitted values (:func:`share_siblings`): the block size then enters only through 2b / bytes.

Why (measured on the published rows, benchmarks/results/published/fit.json): fitted apart, Quansight's
40 rows held out came from hand-set starts (median |log err| 0.79, 11 within 1.35x); this law predicts them
from SuperBlock's block-64 rows at 0.27 (21 within 1.35x).
"""
from __future__ import annotations

import dataclasses

from accelsim.hardware import HardwareProfile
from accelsim.hardware.params import PATH_PARAMS
from accelsim.hardware.schema import DTYPE_BYTES

#: profile -> the paths of one kernel at several block sizes (Triton bsr_dense_mm: blocks 16, 32, 64)
BLOCK_FAMILIES: dict[str, tuple[str, ...]] = {"gpu-a100": ("bsr-b16", "bsr", "bsr-b64")}
#: parameters a family path without rows takes from its nearest fitted sibling (with its fitted fractions)
SHARED = ("block_reread_bandwidth", "d_half", "exponent", "dispatch_overhead")
#: provenance of the start values (written into the profile's sources by benchmarks/fit_published.py)
WHY_START = ("start of the block-size law (kernels/published_blocks.py): the dense path's fraction (its tiles run "
             "at cuBLAS's rate where the re-reads of the dense operand do not bind); fitted only where the path's "
             "rows hold a dtype of more FLOPs per byte beside it")


def family(profile: HardwareProfile | str) -> tuple[str, ...]:
    name = profile if isinstance(profile, str) else profile.name
    return BLOCK_FAMILIES.get(name, ())


def start(profile: HardwareProfile) -> HardwareProfile:
    """``profile`` with its family paths at the law's start (module docstring)."""
    names = [n for n in family(profile) if n in profile.paths]
    if not names:
        return profile
    dense = next(s for s in profile.paths.values() if s.pattern == "dense")
    main = profile.level("main")
    paths = dict(profile.paths)
    for name in names:
        spec = paths[name]
        dtypes = spec.dtypes or tuple(profile.compute.peak_flops)
        fr = {dt: dense.fraction(dt) for dt in dtypes if dense.fraction(dt) is not None}
        paths[name] = dataclasses.replace(spec, peak_fraction=fr, block_reread_bandwidth_Bps=main.bandwidth_Bps)
    return dataclasses.replace(profile, paths=paths)


def free_fractions(profile: HardwareProfile, dtypes) -> set[str]:
    """The dtypes (of a family path's rows) whose compute fraction the rows can tell apart from the bandwidth."""
    peak = profile.compute.peak_flops
    per_byte = {dt: peak[dt] / DTYPE_BYTES[dt] for dt in dtypes if dt in peak and dt in DTYPE_BYTES}
    return {dt for dt, v in per_byte.items() if any(o > 2.0 * v for o in per_byte.values())}


def share_siblings(profile: HardwareProfile, fitted: set[str]) -> tuple[HardwareProfile, dict[str, str]]:
    """Family paths not in ``fitted`` (no rows) take the :data:`SHARED` values and fitted fractions of the
    fitted sibling nearest in block size; returns the profile and {path: the sibling it took them from}."""
    names = [n for n in family(profile) if n in profile.paths]
    have = [n for n in names if n in fitted]
    if not have:
        return profile, {}
    paths, took = dict(profile.paths), {}
    size = {n: profile.paths[n].block_sizes[0] for n in names}
    for name in (n for n in names if n not in fitted):
        sib = min(have, key=lambda n: abs(size[n] - size[name]))
        src = paths[sib]
        fr = {**paths[name].peak_fraction, **src.peak_fraction}
        attrs = {PATH_PARAMS[k].attr: getattr(src, PATH_PARAMS[k].attr) for k in SHARED}
        paths[name] = dataclasses.replace(paths[name], peak_fraction=fr, **attrs)
        took[name] = sib
    return dataclasses.replace(profile, paths=paths), took
