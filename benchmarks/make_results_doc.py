"""Write docs/results.md, the measured results per machine, from the files under benchmarks/results/.

    python benchmarks/make_results_doc.py            # rewrite docs/results.md
    python benchmarks/make_results_doc.py --check    # exit 1 if docs/results.md differs

Why generated: the README used to quote these numbers by hand and they drifted from the files; now the
only way a figure reaches the document is through a renderer reading the committed result file.

One folder under benchmarks/results/ is one section, normally one machine (files directly under
benchmarks/results/ form a section of their own, each naming its machine). Only files git tracks are read
(``git add`` a new result file, then regenerate), so a colleague's uncommitted results in a shared working
tree never leak into the committed document; outside a git checkout every file is read. tests/test_results_doc.py
runs ``--check``. Each result kind has a renderer registered with
``@renders(glob, title)``: a function from (path, parsed JSON) to Markdown lines. A new kind of result
file needs one such function; a file no renderer matches is still listed, so nothing is dropped silently.
Output is deterministic (no "generated at" stamp) so the check compares content only.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DOC = REPO / "docs" / "results.md"

Renderer = Callable[[Path, dict], list[str]]


@dataclass(frozen=True)
class Kind:
    glob: str  # matched against the path relative to the machine folder
    title: str
    render: Renderer


KINDS: list[Kind] = []  # in the order sections appear within a machine


def renders(glob: str, title: str):
    def register(fn: Renderer) -> Renderer:
        KINDS.append(Kind(glob, title, fn))
        return fn
    return register


# ---- formatting: 3 significant figures, one unit per quantity, as the report does -------------------------

def sig(x: float, n: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{n}g}" if abs(x) < 10 ** n else f"{x:,.0f}"


def ms(s: float) -> str:
    return f"{sig(s * 1e3)} ms"


def pct(f: float, digits: int = 1) -> str:
    return f"{f * 100:.{digits}f} %"


def times(x: float) -> str:
    return f"{sig(x)}×"


def shown(f: Path) -> str:
    """A file as the document names it: relative to the repository when inside it."""
    return f.relative_to(REPO).as_posix() if f.is_relative_to(REPO) else f.as_posix()


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return out + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]


# ---- renderers, one per result kind ------------------------------------------------------------------------

@renders("trainer.json", "Trainer overheads (`bench_trainer.py`)")
def trainer(path: Path, d: dict) -> list[str]:
    lines = [f"{d['model']}, batch {d['batch_size']} × {d['seq_len']}, {d['threads']} threads, "
             f"{d['steps']} steps per run."]
    rows = [["median step, dense", ms(d["median_step_s_dense"]), ""],
            ["median step, RigL 90 % (masked)", ms(d["median_step_s_rigl90"]),
             f"{times(d['masked_vs_dense_ratio'])} dense (goal ≤ 1.15×)"],
            ["tracing overhead", pct(d["tracing_overhead_fraction"], 2), "goal ≤ 3 %"],
            ["mask update (RigL), extra time on an update step", ms(d["mask_update_extra_s"]),
             f"{pct(d['mask_update_amortised_fraction_dT100'], 2)} amortised at ΔT = 100"]]
    for run in ("dense", "rigl90"):
        if f"predicted_step_s_{run}" in d:
            rows.append([f"simulated step ({d.get('profile', '?')}), {run}", ms(d[f"predicted_step_s_{run}"]),
                         f"error {d[f'step_error_{run}'] * 100:+.1f} %"])
    return lines + [""] + table(["what", "measured", "note"], rows)


@renders("kernels-bert-ffn.json", "Sparse kernels on the BERT-base FFN (`bench_kernels.py`)")
def kernels_ffn(path: Path, d: dict) -> list[str]:
    a = d["args"]
    rows_in = [r for r in d["rows"] if r["density"] < 1.0]
    dense = sorted(r["dense_ms"] for r in d["rows"])
    lines = [f"Forward product 512 tokens × 768 → 3072, {a['threads']} threads, {a['rounds']} rounds × "
             f"{a['repeats']} interleaved repeats (medians); dense MKL in the same rounds "
             f"{sig(dense[0])}–{sig(dense[-1])} ms. Speedup = dense time / best correct sparse path; "
             "\"of 1/density\" is the share of the FLOP ratio it reaches."]
    patterns = list(dict.fromkeys(r["pattern"] for r in rows_in))
    dens = sorted({r["density"] for r in rows_in}, reverse=True)
    by = {(r["pattern"], r["density"]): r for r in rows_in}
    rows = []
    for p in patterns:
        for x in dens:
            r = by.get((p, x))
            if r:
                rows.append([p, sig(x), r["best_path"], f"{sig(r['best_ms'])} ms", times(r["speedup"]),
                             sig(r["fraction_of_ideal"], 2)])
    return lines + [""] + table(["pattern", "density", "best path", "time", "speedup vs dense", "of 1/density"],
                                rows)


@renders("kernels-sweep.json", "Calibration sweep (`accelsim kernels bench`, pooled by `kernels merge`)")
def kernel_sweep(path: Path, d: dict) -> list[str]:
    c, m = d["config"], d["machine"]
    parts = m.get("merged_from") or []
    pooled = (f", pooled from {len(parts)} sweeps of " + " + ".join(f"{p['rounds']} rounds" for p in parts)
              if parts else "")
    return [f"{len(d['records'])} BERT-shaped cases: tokens {c['tokens']}, hidden {c['hidden']}, "
            f"ops {', '.join(c['ops'])}, "
            f"patterns {', '.join(c['patterns'])}, densities {min(c['densities'])}–{max(c['densities'])}, FFF trees "
            f"{', '.join(c['fff']) or 'none'}; {c['threads']} threads{pooled}. Paths timed: {', '.join(c['paths'])}. "
            "The bundled CPU profile fitted to it and its held-out error: next section."]


@renders("validation/validation.json", "Cost-model error on held-out kernels (`accelsim validate`)")
def validation(path: Path, d: dict) -> list[str]:
    raw = d.get("raw", {}).get("by_pattern", {})
    lines = [f"Profile `{d['profile_file']}` (as the file records it) against `{d['measurements']}` ({d['mode']}); "
             f"{d['n_points']} held-out kernels. MAPE = mean absolute percentage error of the predicted time."]
    if raw:
        lines[0] += (" The first column scores each sparse time paired with the dense baseline timed beside it "
                     "(round-to-round noise cancels); the second, the plain medians.")
    rows = [[p, str(v["n"]), pct(v["mape"]), pct(raw[p]["mape"]) if p in raw else "–", sig(v["median_ratio"])]
            for p, v in sorted(d["mape_by_pattern"].items())]
    o = d["overall_mape"]
    ro = d.get("raw", {}).get("overall")
    rows.append(["**overall**", f"**{o['n']}**", f"**{pct(o['mape'])}**", pct(ro["mape"]) if ro else "–",
                 sig(o["median_ratio"])])
    worst = sorted(d["mape_by_kernel"].items(), key=lambda kv: -kv[1]["mape"])[:3]
    tail = ["", "Worst kernels: " + ", ".join(f"{k} {pct(v['mape'])} ({v['n']})" for k, v in worst) + "."]
    img = path.parent / "validation.png"
    if img.is_file():
        tail += ["", f"![predicted vs measured](../{shown(img)})"]
    return lines + [""] + table(["pattern class", "held-out kernels", "MAPE", "vs unpaired medians",
                                 "median predicted / measured"], rows) + tail


@renders("fff.json", "Fast feedforward, conditional matmul (`bench_fff.py`)")
def fff(path: Path, d: dict) -> list[str]:
    h = d["headline"]
    lines = [f"Headline ({h['setting']}, FLOP ratio {sig(h['flop_ratio'])}×): the C walk kernel "
             f"**{times(h['walk']['speedup'])}** the dense FF ({pct(h['walk']['fraction_of_flop_ratio'])} of the "
             f"FLOP ratio); with a fresh output tensor per call {times(h['walk_alloc']['speedup'])}; the torch "
             f"gather formulation {times(h['gather']['speedup'])}. Medians over {d['sweeps']} sweeps."]
    rows = []
    for s in d["settings"]:
        med = {k: sorted(sw["median_s"][k] for sw in s["sweeps"])[len(s["sweeps"]) // 2]
               for k in s["sweeps"][0]["median_s"]}
        rows.append([f"H {s['hidden']}, {s['trees']}×{s['depth']}", str(s["tokens"]), sig(s["flop_ratio"]),
                     ms(med["dense_out"]), ms(med["walk"]), times(med["dense_out"] / med["walk"])])
    return lines + [""] + table(["setting", "tokens", "FLOP ratio", "dense FF", "walk", "speedup"], rows)


@renders("step-breakdown*.json", "Whole training step: measured vs simulated (`bench_step_breakdown.py`)")
def step_breakdown(path: Path, d: dict) -> list[str]:
    m, p = d["measured_total_s"], d["predicted_total_s"]
    lines = [f"{d['model']} {d.get('variant', 'dense')} step, batch {d['batch_size']} × {d['seq_len']}, {d['threads']} threads, "
             f"profile `{d['profile']}`: measured {ms(m)}, predicted {ms(p)} (error {(p / m - 1) * 100:+.1f} %)."]
    rows = [[k, ms(v["measured_s"]), ms(v["predicted_s"]), times(v["ratio"]) if v["predicted_s"] else "not modelled"]
            for k, v in sorted(d["categories"].items(), key=lambda kv: -kv[1]["measured_s"])]
    return lines + [""] + table(["category", "measured", "predicted", "predicted / measured"], rows)


@renders("vector-ops.json", "Elementwise ops, time per element (`bench_vector_ops.py`)")
def vector_ops(path: Path, d: dict) -> list[str]:
    a = d["args"]
    def cell(t):  # seconds per element, or a size table [[elements, seconds], ...] (accelsim.hardware.element_time)
        if t is None:
            return "–"
        if isinstance(t, list):
            return ", ".join(f"{sig(s * 1e9)} ns at {n:,}" for n, s in t)
        return f"{sig(t * 1e9)} ns"
    rows = [[k, cell(v.get("fwd")), cell(v.get("bwd"))] for k, v in d["element_time"].items()]
    return ([f"Batch {a['batch']} × {a['seq']}, hidden {a['hidden']}, vocabulary {a['vocab']}, {d['threads']} threads."]
            + [""] + table(["role", "forward", "backward"], rows))


@renders("cpu-peak.json", "Clock and FMA peak (`bench_cpu_peak.py`)")
def cpu_peak(path: Path, d: dict) -> list[str]:
    rows = [[str(r["threads"]), f"{sig(r['clock_hz'] / 1e9)} GHz",
             sig(r["fma256_flop_per_cycle"]) if r.get("fma256_flop_per_cycle") else "–",
             sig(r["fma512_flop_per_cycle"]) if r.get("fma512_flop_per_cycle") else "–",
             f"{sig(max(r.get('fma256_gflops_all_threads') or 0, r.get('fma512_gflops_all_threads') or 0))} GFLOP/s"]
            for r in d["results"]]
    return table(["threads", "clock", "FLOP/cycle (256-bit)", "FLOP/cycle (512-bit)", "peak, all threads"], rows)


@renders("memory.json", "Copy bandwidth per memory level (`bench_memory.py`)")
def memory(path: Path, d: dict) -> list[str]:
    rows = [[k, f"{sig(v['bytes'] / 2 ** 20)} MiB", f"{sig(v['copy_GBps'])} GB/s"] for k, v in d["results"].items()]
    return table(["level", "array", "copy bandwidth (read + write)"], rows)


@renders("calibrate-local.json", "Own-CPU profile in minutes (`accelsim hw calibrate-local`)")
def calibrate_local(path: Path, d: dict) -> list[str]:
    at = f"{d['threads']} of {d['cores']} cores" if d["threads"] != d["cores"] else f"all {d['cores']} cores"
    lines = [f"`{d['profile']}` written in **{sig(d['wall_s'] / 60)} min** (goal ≤ 10), measured at {at}: clock "
             f"{sig(d['clock_GHz'])} GHz, fp32 peak {sig(d['peak_fp32_GFLOPs'])} GFLOP/s, copy "
             + ", ".join(f"{k} {sig(v)} GB/s" for k, v in d["bandwidth_GBps"].items())
             + f". Held-out error on its own short sweep ({d['sweep_records']} cases, {d['n_heldout']} held-out points): "
             f"**{pct(d['heldout_mape'])}** MAPE (train {pct(d['train_mape'])}). Share of the CPUs other processes "
             "used during each stage:"]
    rows = [[k, f"{sig(v['wall_s'])} s", "–" if v.get("others_busy") is None else pct(v["others_busy"])]
            for k, v in d["stages"].items()]
    return lines + [""] + table(["stage", "wall time", "others' CPU share"], rows)


@renders("simulator.json", "Simulator speed (`bench_simulator.py`)")
def simulator(path: Path, d: dict) -> list[str]:
    mn = d["main"]
    lines = [f"Synthetic {mn['steps']:,}-step bert-base RigL-90 trace on {len(d['profiles'])} profiles: "
             f"**{sig(mn['wall_s'])} s** in all (goal ≤ 60 s), of which {sig(mn['load_s'])} s loading the trace. "
             "Time grows with distinct mask epochs, not steps:"]
    rows = [[f"{r['steps']:,}", str(r["epochs"]), f"{sig(r['sim_s'])} s"] for r in d["vs_steps"]]
    rows += [[f"{mn['steps']:,} (update every {r['update_every']:,})", str(r["epochs"]), f"{sig(r['sim_s'])} s"]
             for r in d["vs_epochs"]]
    return lines + [""] + table(["steps", "mask epochs", "simulation time"], rows)


def _load_extra() -> None:
    """Register the rarer kinds from results_renderers_extra.py and results_renderers_validation.py (kept apart
    so this file stays short).

    It imports ``renders`` and the formatters from this very module, so it must find it under its own name
    when run as a script, and is executed afresh each time so a second load of this module gets them too."""
    import importlib.util

    sys.modules.setdefault("make_results_doc", sys.modules[__name__])
    for name in ("results_renderers_extra", "results_renderers_validation"):
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


_load_extra()


# ---- document ----------------------------------------------------------------------------------------------

def _machine(docs: dict[Path, dict]) -> tuple[str, list[str]]:
    """One line describing the machine, from the first file that records it, and every file's date."""
    desc, dates = None, []
    for d in docs.values():
        m = d.get("machine") if isinstance(d, dict) else None
        if isinstance(m, str):  # a free-text machine, the date beside it
            m = {"description": m, "date": d.get("date", "")}
        if not isinstance(m, dict):
            continue
        dates.append(str(m.get("date", ""))[:10])
        if desc is None and m.get("cpu_model"):
            fam = f", family/model {m['cpu_family_model']}" if m.get("cpu_family_model") else ""
            isa = m.get("isa_flags") or []
            wide = "AVX-512" if any(f.startswith("avx512") for f in isa) else "AVX2, no AVX-512" if "avx2" in isa else ""
            desc = (f"{m['cpu_model']}{fam}, {m.get('logical_cores', '?')} logical cores"
                    f"{', ' + wide if wide else ''}; torch {m.get('torch', '?')}; {m.get('platform', '')}")
        desc = desc or m.get("description")
    return desc or "machine recorded in each file", sorted(d for d in dates if d)


def _section(folder: Path, title: str, files: list[Path]) -> list[str]:
    docs = {}
    for f in files:
        if f.suffix == ".json":
            docs[f] = json.loads(f.read_text())
    desc, dates = _machine(docs)
    when = f"measured {dates[0]}" + (f" to {dates[-1]}" if dates[-1] != dates[0] else "") if dates else ""
    out = [f"## {title}", "", f"{desc}{'; ' + when if when else ''}.", ""]
    done: set[Path] = set()
    for kind in KINDS:
        for f in sorted(files):
            rel = f.relative_to(folder).as_posix()
            if f in docs and f not in done and fnmatch.fnmatch(rel, kind.glob):
                done.add(f)
                out += [f"### {kind.title}", "", f"`{shown(f)}`", ""]
                out += kind.render(f, docs[f]) + [""]
    rest = [f for f in sorted(files) if f not in done and f.suffix != ".png"]
    if rest:
        out += ["Other files (no summary renderer; read them directly): "
                + ", ".join(f"`{f.relative_to(folder).as_posix()}`" for f in rest) + ".", ""]
    return out


def _latest(files: list[Path]) -> str:
    dates = []
    for f in files:
        if f.suffix == ".json":
            d = json.loads(f.read_text())
            m = d.get("machine") if isinstance(d, dict) else None
            date = m.get("date") if isinstance(m, dict) else d.get("date") if isinstance(d, dict) else None
            if date:
                dates.append(str(date))
    return max(dates, default="")


def _tracked(results: Path) -> set[Path] | None:
    """Files under ``results`` that git tracks; None outside a git checkout (then every file counts)."""
    import subprocess

    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", "."], cwd=results, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return {(results / name).resolve() for name in out.stdout.decode().split("\0") if name}


def build(results: Path = RESULTS) -> str:
    tracked = _tracked(results)
    keep = (lambda q: q.is_file() and q.resolve() in tracked) if tracked is not None else (lambda q: q.is_file())
    machines = {p: sorted(q for q in p.rglob("*") if keep(q)) for p in sorted(results.iterdir()) if p.is_dir()}
    machines = {p: files for p, files in machines.items() if files}
    loose = sorted(q for q in results.iterdir() if keep(q))
    out = ["# Measured results", "",
           "<!-- generated by benchmarks/make_results_doc.py from benchmarks/results/; edit the script, not this "
           "file (tests/test_results_doc.py fails when they differ) -->", "",
           "The current state per machine: every figure below is read from a committed result file of a script "
           "in `benchmarks/` and carries the machine it ran on. Medians; ratios were measured side by side in one "
           "run. No GPU or accelerator was available, so there are no GPU measurements: those profiles come from "
           "datasheets and published figures (`accelsim hw show NAME`). Newest machine first.", ""]
    # newest machine first: the one the bundled CPU profile describes is the one people ask about
    for folder, files in sorted(machines.items(), key=lambda kv: _latest(kv[1]), reverse=True):
        out += _section(folder, f"`{folder.name}`", files)
    if loose:
        out += _section(results, "Not tied to one machine folder", loose)
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of result files")
    ap.add_argument("--out", type=Path, default=DOC, help="Markdown file to write or check")
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing; exit 1 if it differs")
    a = ap.parse_args(argv)
    text = build(a.results)
    if a.check:
        same = a.out.is_file() and a.out.read_text() == text
        if not same:
            print(f"{a.out}: out of date with {a.results}; run python benchmarks/make_results_doc.py", file=sys.stderr)
        return 0 if same else 1
    a.out.write_text(text)
    print(f"wrote {a.out} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
