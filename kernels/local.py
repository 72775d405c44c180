"""``accelsim hw calibrate-local``: a fitted CPU profile of *this* machine in minutes.

Four measurements, then one fit, each the code of a longer workflow cut down to what a profile needs:

1. clock and fp32 FMA peak (kernels.probe, as benchmarks/bench_cpu_peak.py);
2. copy bandwidth of L2, L3 and DRAM (kernels.probe, as benchmarks/bench_memory.py);
3. per-element times of the step's non-product ops (kernels.vector_ops, as benchmarks/bench_vector_ops.py);
4. a short kernel sweep (kernels.bench) of the paths that win their family on CPUs, at all cores;

then the efficiency parameters of every path are fitted to the sweep's training split and scored on its
held-out split (kernels.calibrate.fit_profile: one case in five, by hash, never seen by the fit), the
same fit `accelsim calibrate` runs on the full 2 x 3-round sweep of benchmarks/bench_calibration.py
(~1.5-2 h). The template is the bundled Zen 3 calibration (its path structure and starting values):
every machine figure is replaced by this machine's measurement, and fields that were not measured here
say so in their source.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

from accelsim.errors import expect
from accelsim.hardware import element_time, load_profile
from accelsim.hardware.profile import load_profile_text, profile_to_dict, profile_to_yaml
from accelsim.kernels.machine import busy_fraction, machine_info

#: the bundled calibration whose path structure and starting efficiencies the fit starts from
TEMPLATE = "cpu-zen3"
#: element-time roles that torch runs on one thread whatever the thread count, so a 1-thread calibration scaled
#: to every core keeps their times: RigL's top-k over a flattened weight (Zen 5, 3072 x 768: 2 threads take 0.92
#: of 1 thread's time, where the 2:4 selection takes 0.56; benchmarks/results/zen5-f26m2/mask-update.json
#: "one_thread_ratio")
SERIAL_ROLES = frozenset({"mask_select"})
#: with threads unset, others' share of the CPUs above which the sweep runs at 1 thread timed by CPU time:
#: 2-thread kernels wait for a core whole scheduler slices (held-out MAPE 3450 % at load 15 on 2 cores)
BUSY_FOR_ONE_THREAD = 0.5
#: kernel paths that can win their family on a CPU (bench_calibration.py: MKL/torch BSR won 0 of 168 cases)
PATHS = ("dense_torch", "csr_c", "sddmm_torch", "blocksparse_c", "nm_gather", "nm_decompress_dense", "fff_walk")


@dataclasses.dataclass(frozen=True)
class LocalConfig:
    """What calibrate-local measures; the default fits in ~6-8 minutes on a 2-core machine."""

    # BERT-shaped products: token counts and hidden sizes between bert-tiny batches and bert-base; two of
    # each so the held-out split (whole cases) still spans small and large products
    tokens: tuple[int, ...] = (256, 1024)
    hidden: tuple[int, ...] = (256, 768)
    layers: tuple[str, ...] = ("ffn_in", "attn")
    # three densities per sparse pattern: the efficiency curve's two ends and its knee
    densities: tuple[float, ...] = (0.5, 0.1, 0.02)
    patterns: tuple[str, ...] = ("unstructured", "2:4", "block16", "block32")
    ops: tuple[str, ...] = ("matmul", "matmul_dx", "matmul_dw")
    fff: tuple[str, ...] = ("1x7", "1x11")
    repeats: int = 5  # interleaved samples per path per case (median)
    # whole sweeps; a sparse time is paired with the dense baseline of its own round (kernels.calibrate.
    # paired_time), which cancels most of a shared machine's slow spells even with one round
    rounds: int = 1
    # the whole command's wall-time target: the sweep runs one (tokens, hidden) block at a time and starts
    # another only if it should end, at the last block's pace, with fit_reserve_s left for fit + validation
    budget_s: float = 540.0
    fit_reserve_s: float = 60.0
    # before each case wait up to quiet_wait_s for others to use less than quiet_below of the CPUs, and
    # measure a disturbed case once more (kernels.bench). Off by default: on a machine that is never quiet
    # (the shared dev machine at ~80 % load from others) the waits alone cost ~3 s x 500 cases
    quiet_below: float = 0.0
    quiet_wait_s: float = 3.0
    peak_tries: int = 40  # best-of runs of each clock/FMA probe (~5 ms each)
    memory_tries: int = 200  # best-of copies for the L2-sized array (fewer for larger ones)
    vector_repeats: int = 5
    vector_shape: tuple[int, int, int, int, int] = (32, 128, 128, 2, 8192)  # batch, seq, hidden, heads, vocab
    # threads the sweep and vector ops run on; None = all cores, or 1 when others use most of the CPUs
    # (BUSY_FOR_ONE_THREAD). On a heavily shared machine a 2-thread OpenMP
    # region waits whole scheduler slices for its second thread (at load 15 on the 2-core dev machine a 50 us
    # product read 30-100 ms): measure at 1 thread and scale to all cores (an assumption the profile records)
    threads: int | None = None

    @classmethod
    def quick(cls) -> "LocalConfig":
        """Seconds, not minutes: tests and a first look (too few points for a trustworthy error)."""
        return cls(tokens=(128,), hidden=(64, 128), layers=("ffn_in",), densities=(0.5, 0.1),
                   patterns=("unstructured", "block16"), ops=("matmul", "matmul_dx"), fff=("1x5",), repeats=3,
                   rounds=1, quiet_below=0.0,
                   peak_tries=5, memory_tries=20, vector_repeats=3, vector_shape=(4, 64, 64, 2, 512))


def default_name(machine: dict) -> str:
    fm = (machine.get("cpu_family_model") or "").split("/")
    return f"cpu-f{fm[0]}m{fm[1]}" if len(fm) == 2 else "cpu-this"


def _describe(machine: dict, cores: int) -> str:
    fm = (machine.get("cpu_family_model") or "?/?").split("/")
    isa = "AVX-512" if "avx512f" in machine["isa_flags"] else "AVX2" if "avx2" in machine["isa_flags"] else "no AVX2"
    return (f"{cores}-core {machine['cpu_model']} (family {fm[0]} model {fm[-1]}, {isa}), measured by "
            f"`accelsim hw calibrate-local` on {machine['date'][:10]}; fp32 via MKL")


_ZEN3_WORDING = (r"AVX2 code path on this CPU; ", r", GCC vector code built for AVX2 here", r" with AVX2",
                 r"; fitted to the fastest measured: .*$")


def base_profile(template: str, machine: dict, peak: list[dict], memory: dict, vector: dict, cores: int,
                 name: str, files: dict[str, str], units: int | None = None):
    """The template with this machine's clock, peak, caches, bandwidths and vector times (not yet fitted),
    modelling ``units`` cores (default all) with the peak measured on that many."""
    units = units or cores
    from accelsim.kernels.probe import l2_per_core, l3_size, memory_bytes

    d = profile_to_dict(load_profile(template))
    d.pop("fitted", None)
    d["name"], d["description"] = name, _describe(machine, cores)
    allc = next(r for r in peak if r["threads"] == units)
    gflops = max(v for k, v in allc.items() if k.endswith("_gflops_all_threads") and v)
    bf16 = "avx512_bf16" in machine["isa_flags"]
    # the all-core chain is the clock a 2-thread kernel sees, but on a shared machine a preempted thread makes
    # it read low (0.96 GHz measured under load); the faster of the probes is the clock the core can run at
    clock = max(r["clock_hz"] for r in peak)
    d["compute"].update(units=units, clock=f"{clock / 1e9:.4g} GHz",
                        peak={"fp32": f"{gflops:.4g} GFLOP/s", "bf16": f"{gflops * (2 if bf16 else 1):.4g} GFLOP/s"},
                        vector={"fp32": f"{gflops / 2:.4g} GFLOP/s"})
    sizes = {"l2": l2_per_core() * cores, "l3": l3_size(), "dram": memory_bytes()}
    capped = _monotone_bandwidths(d["memory"], memory)
    for level in d["memory"]:
        if level["name"] in memory:
            level["bandwidth"] = f"{capped[level['name']]:.4g} GB/s"
        if sizes.get(level["name"]):
            level["capacity"] = f"{sizes[level['name']]} B"
    # a backward time is (forward + backward) - forward: under load it can come out <= 0; the template's stays
    kept = d["paths"]["vector"].setdefault("element_time", {})
    for role, t in vector.items():
        kept.setdefault(role, {}).update({k: element_time.to_yaml(v, lambda x: f"{x * 1e9:.4g} ns")
                                          for k, v in t.items() if isinstance(v, tuple) or v > 0})
    for path in d["paths"].values():
        for pat in _ZEN3_WORDING:
            path["description"] = re.sub(pat, "", path["description"])
    terms = _structure_terms(d, machine)
    d["execution"]["cold_activations"] = True
    src = d["sources"]
    here = f"measured on this machine by `accelsim hw calibrate-local` ({machine['date'][:10]})"
    fma = "512-bit" if allc.get("fma512_gflops_all_threads") == gflops else "256-bit"
    src.update({
        "compute.units": f"os.cpu_count() on this machine: {cores}" if units == cores else
                         f"{units} of this machine's {cores} cores (the sweep's thread count)",
        "compute.clock": f"{files['peak']}: dependent integer adds (one per cycle), the faster of 1 thread and all "
                         f"{cores} cores, {here}",
        "compute.peak.fp32": f"{files['peak']}: independent {fma} FMA chains on {units} core(s) at once, best "
                             f"of the probe's runs: {gflops:.0f} GFLOP/s, {here}",
        "memory.l2.capacity": "sysfs cache index2 (per-core L2) x cores on this machine",
        "memory.l3.capacity": "sysfs cache index3 on this machine",
        "memory.dram.capacity": "MemTotal of /proc/meminfo on this machine",
        "paths.vector.element_time": f"{files['vector']}: torch ops at bert-tiny batch shapes, forward and "
                                     f"autograd backward, the bias gradient, the clipped AdamW step on a hidden-512 "
                                     f"layer, and the sparse execution's gather / scatter / format "
                                     f"build at a 3072 x 768 weight of density 0.1, interleaved medians, {here}",
        # why the flag: benchmarks/results/zen5-f26m2/step-memory.json (a bert-small step's block-sparse products
        # 1.1-1.8x their back-to-back time; a head-layout copy from main memory 4x its in-cache time)
        "execution.cold_activations": "every time above is measured in a loop that keeps the op's operands in "
                                      "cache; a training step streams its activations from main memory "
                                      "(kernels/local.py)",
    })
    for level in ("l2", "l3", "dram"):
        if level in memory:
            src[f"memory.{level}.bandwidth"] = (f"{files['memory']}: numpy copy of {memory[level]['bytes'] >> 10} KiB, "
                                                f"read+write bytes, best of {memory[level]['tries']} "
                                                f"({memory[level].get('clock', 'perf_counter')}), {here}")
            if capped[level] < memory[level]["copy_GBps"]:
                src[f"memory.{level}.bandwidth"] += (f"; measured {memory[level]['copy_GBps']:.4g} GB/s, above the "
                                                     f"level before it, so capped at that level's rate")
    src.update(terms)
    for key, text in list(src.items()):  # the template's own fits: starting values here, refitted where possible
        if text.startswith("fitted by `accelsim calibrate`"):
            src[key] = f"starting value from the bundled {template} calibration (a Zen 3), refitted when this " \
                       "machine's sweep has points for it (see fitted:)"
    # measured here: the template's assumed element times (its mask_select, borrowed from another CPU) go
    asm = [a for a in d["assumptions"] if "compute.peak.bf16" not in a
           and not any(str(k).startswith("paths.vector.element_time") for k in (a if isinstance(a, dict) else [a]))]
    if not bf16:
        asm.append({"compute.peak.bf16": "no avx512_bf16 on this CPU: bf16 runs converted to fp32, at the fp32 rate"})
    else:
        src["compute.peak.bf16"] = "lscpu flag avx512_bf16 (VDPBF16PS: two bf16 products per fp32 lane)"
    d["assumptions"] = asm
    import yaml

    return load_profile_text(yaml.safe_dump(d, sort_keys=False, width=120), source=f"<{name} base>")


def _monotone_bandwidths(levels: list[dict], memory: dict) -> dict[str, float]:
    """Measured copy GB/s by level, each capped at the faster level before it. On a busy shared machine the small
    L2 copy can be preempted more often than the 8 MiB one and read slower (CI, quick config: L3 above L2), and a
    profile's levels must be listed fastest first (hardware.schema); the level above is the honest upper bound."""
    out, cap = {}, float("inf")
    for level in levels:
        if level["name"] in memory:
            cap = out[level["name"]] = min(cap, memory[level["name"]]["copy_GBps"])
    return out


def _structure_terms(d: dict, machine: dict) -> dict[str, str]:
    """Give the C kernels' paths the terms their tiling implies on this CPU (kernels.cpu._native.structure_terms:
    csr_c's token chunk and X^T panel on the CSR forward / input-gradient paths, blocksparse_c's token chunk on
    the block paths) before the fit, so it need not absorb them (issue 20: off-shape error 18.6 % -> 13.8 % on
    benchmarks/results/zen5-f26m2/offshape); returns their sources."""
    from accelsim.kernels.cpu._native import CSR_SOURCE, SOURCE, structure_terms

    terms, src = structure_terms(machine["isa_flags"]), {}
    for name, path in d["paths"].items():
        kernel = ("csr_c" if path["pattern"] == "unstructured" and set(path.get("phases") or ()) <= {"fwd", "bwd_input"}
                  else "blocksparse_c" if path["pattern"] == "block" else None)
        for key, value in (terms.get(kernel) or {}).items():
            path[key] = f"{value} B" if key.endswith("_bytes") else value
            c = CSR_SOURCE if kernel == "csr_c" else SOURCE
            src[f"paths.{name}.{key}"] = f"{c.name} #defines for this CPU's ISA (kernels.cpu._native.structure_terms)"
    return src


def _timed(stage: str, fn, log: dict, say):
    t0 = time.perf_counter()
    busy0 = _cpu_now()
    out = fn()
    log[stage] = {"wall_s": time.perf_counter() - t0, "others_busy": _others_busy(busy0)}
    say(f"{stage}: {log[stage]['wall_s']:.0f} s")
    return out


def _cpu_now():
    from accelsim.kernels.machine import _cpu_times

    return _cpu_times(), os.times()


def _others_busy(start) -> float | None:
    """Share of all CPUs used by other processes since ``start``: the noise the stage was measured under."""
    from accelsim.kernels.machine import _cpu_times

    (a, t_a), b, t_b = start, _cpu_times(), os.times()
    if a is None or b is None or b[0] == a[0]:
        return None
    total, idle = b[0] - a[0], b[1] - a[1]
    tick = os.sysconf("SC_CLK_TCK")
    mine = (t_b.user + t_b.system + t_b.children_user + t_b.children_system
            - t_a.user - t_a.system - t_a.children_user - t_a.children_system) * tick
    return max(0.0, min(1.0, (total - idle - mine) / total))


def calibrate_local(out_dir: Path, *, name: str | None = None, config: LocalConfig = LocalConfig(),
                    template: str = TEMPLATE, say: Callable[[str], None] = print) -> dict:
    """Measure, fit and write ``out_dir/<name>.yaml`` plus every measurement; returns the summary."""
    from accelsim.kernels.bench import load_measurements
    from accelsim.kernels.host_memory import retain_freed_memory
    from accelsim.kernels.calibrate import file_sha256, fit_profile
    from accelsim.kernels.probe import copy_bandwidth, level_tries, memory_levels, probe_peak
    from accelsim.kernels.validation import validate
    from accelsim.kernels.timing import thread_cpu_clock
    from accelsim.kernels.vector_ops import element_time, execution_rows, measure_ops

    import torch

    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_info("cpu")
    cores = os.cpu_count() or 1
    name = name or default_name(machine)
    expect(re.match(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$", name) is not None,
           f"expected letters, digits, '.', '_', '+' or '-', got '{name}'", field="--name")
    busy = busy_fraction(1.0)
    # auto: all cores on a quiet machine; 1 thread timed by CPU time when others hold most of the CPUs
    th = config.threads or (1 if busy > BUSY_FOR_ONE_THREAD and cores > 1 else cores)
    torch.set_num_threads(th)
    # the allocator policy the trainer runs under (accelsim.kernels.host_memory): a timed op's fresh output
    # buffers are not page-faulted in, as they are not in a training step either
    retain_freed_memory()
    files = {k: str(out_dir / f) for k, f in (("peak", "cpu-peak.json"), ("memory", "memory.json"),
                                             ("vector", "vector-ops.json"), ("sweep", "kernels-sweep.json"))}
    log: dict = {}
    say(f"calibrating {name} on {machine['cpu_model']} (family/model {machine['cpu_family_model']}, "
        f"{cores} cores); others use {busy:.0%} of the CPUs now"
        + (f": measuring at 1 thread by CPU time, scaled to {cores} cores (--threads {cores} to force)"
           if th == 1 and not config.threads and cores > 1 else ""))

    peak = _timed("peak", lambda: [probe_peak(config.peak_tries, 200_000, t) for t in sorted({1, th, cores})], log, say)
    # the formats of benchmarks/bench_cpu_peak.py, bench_memory.py and bench_vector_ops.py (docs/results.md reads them)
    _dump(files["peak"], machine, method="kernels/probe.py (accelsim hw calibrate-local)",
          tries=config.peak_tries, reps=200_000, results=peak)

    # one thread: time by its CPU time, so another process's turn on the core is not counted (kernels.timing)
    cpu_clock = th == 1
    clock = time.thread_time if cpu_clock else time.perf_counter

    def mem():
        return {lv: {"bytes": n, "tries": level_tries(config.memory_tries, n),
                     "copy_GBps": copy_bandwidth(n, level_tries(config.memory_tries, n), clock=clock) / 1e9,
                     "clock": clock.__name__}
                for lv, n in memory_levels().items()}

    memory = _timed("memory", mem, log, say)
    _dump(files["memory"], machine, results=memory)
    b, s, h, heads, v = config.vector_shape
    with thread_cpu_clock() if cpu_clock else nullcontext():
        rows = _timed("vector", lambda: {**measure_ops(b, s, h, heads, v, repeats=config.vector_repeats),
                                         **execution_rows(config.vector_repeats)}, log, say)
    vector = element_time(rows)
    _dump(files["vector"], machine, args=dict(zip(("batch", "seq", "hidden", "heads", "vocab"), config.vector_shape),
                                              repeats=config.vector_repeats), threads=th, ops=rows,
          element_time=vector)

    with thread_cpu_clock() if cpu_clock else nullcontext():
        _timed("sweep", lambda: _sweep(config, th, Path(files["sweep"]), t_start, say), log, say)
    doc = load_measurements(files["sweep"])  # as written (plain JSON types), validated
    base = base_profile(template, machine, peak, memory, vector, cores, name, files, units=th)
    cal = _timed("fit", lambda: fit_profile(doc, base, threads=th, source=files["sweep"],
                                            sha256=file_sha256(files["sweep"]), name=name), log, say)
    head = (f"# Written by `accelsim hw calibrate-local` on {machine['date']}; see the fitted: block and the "
            f"measurements next to this file.\n")
    fitted_path = profile_path = out_dir / f"{name}.yaml"
    if th != cores:  # the fit as measured (validated below), then the profile of the whole machine
        fitted_path = out_dir / f"{name}-{th}thread.yaml"
        fitted_path.write_text(head + profile_to_yaml(dataclasses.replace(cal.profile, name=f"{name}-{th}thread")))
        load_profile(fitted_path)
    profile_path.write_text(head + profile_to_yaml(scale_to_cores(cal.profile, th, cores)))
    load_profile(profile_path)  # the written profile must load back (schema + provenance)
    report = _timed("validate", lambda: validate(files["sweep"], str(fitted_path), out_dir / "validation",
                                                 threads=th), log, say)
    summary = {
        "profile": str(profile_path), "machine": machine, "cores": cores, "threads": th,
        "config": dataclasses.asdict(config),
        "wall_s": time.perf_counter() - t_start, "stages": log,
        "clock_GHz": cal.profile.compute.clock_hz / 1e9,
        "peak_fp32_GFLOPs": load_profile(profile_path).compute.peak_flops.get("fp32", 0) / 1e9,
        "bandwidth_GBps": {k: v["copy_GBps"] for k, v in memory.items()},
        "sweep_records": len(doc["records"]), "n_train": len(cal.train), "n_heldout": len(cal.heldout),
        "train_mape": cal.fitted["train_mape"], "heldout_mape": cal.fitted["heldout_mape"],
        "heldout_mape_raw": cal.fitted["heldout_mape_raw"], "heldout": cal.fitted["heldout"],
        "validation_files": [str(f) for f in report.get("files", [])],
    }
    Path(out_dir / "calibrate-local.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def scale_to_cores(profile, threads: int, cores: int):
    """A profile fitted at ``threads`` threads as the profile of all ``cores``: peak and vector rate x cores /
    threads, per-element vector times / that, efficiencies and overheads as fitted; recorded as an assumption."""
    if threads == cores:
        return profile
    from accelsim.hardware.profile import profile_to_dict

    import yaml

    k = cores / threads
    d = profile_to_dict(profile)
    comp = d["compute"]
    p0 = load_profile_text(yaml.safe_dump(d, sort_keys=False), source="<scale>").compute
    comp["units"] = cores
    comp["peak"] = {dt: f"{v * k:.6g} FLOP/s" for dt, v in p0.peak_flops.items()}
    comp["vector"] = {dt: f"{v * k:.6g} FLOP/s" for dt, v in p0.vector_flops.items()}
    et = d["paths"]["vector"].get("element_time", {})
    for role, t in profile.paths["vector"].element_time_s.items():
        share = 1.0 if role in SERIAL_ROLES else 1 / k  # a one-thread op takes as long on every core count
        et[role] = {ph: element_time.to_yaml(element_time.scaled(v, share), lambda x: f"{x:.6g} s")
                    for ph, v in t.items()}
    d["assumptions"].append({"compute": f"measured and fitted at {threads} thread(s) (a shared machine stalls "
                                        f"multi-thread kernels), scaled linearly to {cores} cores: peak and vector "
                                        f"rates x {k:g}, element times / {k:g} "
                                        f"(not {', '.join(sorted(SERIAL_ROLES))}: one thread), "
                                        f"per-call overheads and efficiencies as fitted"})
    d["description"] = d["description"] + f"; fitted at {threads} thread(s), scaled to {cores} cores"
    d["sources"]["compute.units"] = f"os.cpu_count() on this machine: {cores}"
    # the fit and its held-out error are of the profile as measured: score that one (`accelsim validate` of this
    # scaled profile against the sweep compares a cores-wide model with 1-thread times)
    d["fitted"] = dict(d.get("fitted") or {}, scaled={
        "from_threads": threads, "to_cores": cores, "factor": k,
        "note": f"held-out error and params are of the {threads}-thread fit ({profile.name}-{threads}thread.yaml "
                f"next to this file when written by calibrate-local); the scaling to {cores} cores is unmeasured"})
    return load_profile_text(yaml.safe_dump(d, sort_keys=False, width=120), source="<scaled>")


def _blocks(tokens: tuple[int, ...], hidden: tuple[int, ...]) -> list[tuple[int, int]]:
    """(tokens, hidden) blocks, smallest products first: a sweep the budget cuts short keeps the cheap blocks
    (the large one alone took 870 s of a 1075 s sweep at load 15 on the shared 2-core machine)."""
    return sorted(((t, h) for t in tokens for h in hidden), key=lambda b: (b[0] * b[1] ** 2, b))


#: a block's time grows with its products' size to this power (measured at load 15 on the shared Zen 5:
#: 12x the FLOPs took 4.2x the time, calls of small products are dominated by fixed costs)
BLOCK_TIME_EXPONENT = 0.6


def _sweep(config: LocalConfig, cores: int, out: Path, t_start: float, say) -> dict:
    """The kernel sweep, block by block within the budget; one measurements file (kernels.bench format)."""
    from accelsim.kernels.bench import BenchConfig, run_bench, write_measurements

    docs, last, last_size = [], 0.0, 1.0
    blocks = _blocks(config.tokens, config.hidden)
    for i, (t, h) in enumerate(blocks):
        left = config.budget_s - config.fit_reserve_s - (time.perf_counter() - t_start)
        if docs and left < last * (t * h * h / last_size) ** BLOCK_TIME_EXPONENT:
            say(f"  sweep: budget reached after {i} of {len(blocks)} (tokens, hidden) blocks")
            break
        t0 = time.perf_counter()
        bench = BenchConfig(tokens=(t,), hidden=(h,), layers=config.layers, densities=config.densities,
                            patterns=config.patterns, ops=config.ops, fff=config.fff, threads=(cores,),
                            repeats=config.repeats, rounds=config.rounds, paths=PATHS,
                            quiet_below=config.quiet_below, quiet_max_wait_s=config.quiet_wait_s,
                            quiet_retries=1 if config.quiet_below else 0)
        docs.append(run_bench(bench))
        last, last_size = time.perf_counter() - t0, float(t * h * h)
        say(f"  sweep block {i + 1}/{len(blocks)} (tokens {t}, hidden {h}): {len(docs[-1]['records'])} cases in "
            f"{last:.0f} s")
    doc = dict(docs[0], records=[r for d in docs for r in d["records"]],
               skipped=[r for d in docs for r in d["skipped"]])
    doc["config"] = dict(doc["config"], tokens=sorted({t for t, _ in blocks[:len(docs)]}),
                         hidden=sorted({h for _, h in blocks[:len(docs)]}),
                         blocks=[list(b) for b in blocks[:len(docs)]],
                         clock="thread CPU time" if cores == 1 else "wall time")
    write_measurements(doc, out)
    return doc


def _dump(path: str, machine: dict, **data) -> None:
    Path(path).write_text(json.dumps({"machine": machine, **data}, indent=1))
