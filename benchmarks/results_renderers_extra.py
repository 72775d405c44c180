"""More result kinds for make_results_doc.py (DDP, fine-tuning, reliability, off-shape, sparse-executed training,
mask updates, the optimizer and N:M selection).

A sibling module only so make_results_doc.py stays short; it registers through the same ``@renders`` and
formats with the same helpers, and make_results_doc.py loads it right after its own renderers (so these
sections follow them within a machine).
"""
from __future__ import annotations

from pathlib import Path

from make_results_doc import ms, pct, renders, sig, table, times


def _span(xs: list[float], fmt=sig) -> str:
    lo, hi = min(xs), max(xs)
    return fmt(lo) if lo == hi else f"{fmt(lo)}–{fmt(hi)}"


@renders("ddp.json", "Data-parallel training, 2 gloo processes vs 1 (`bench_ddp.py`)")
def ddp(path: Path, d: dict) -> list[str]:
    c, m, a = d["config"], d["measured"], d["allreduce"]
    load = d.get("load_average_at_end")
    lines = [f"Batch {c['batch']} × {c['seq']} ({c['method']}), {c['steps']} steps per run ({c['warmup']} warm-up "
             f"dropped), {c['rounds']} interleaved rounds, medians"
             + (f"; **under load**: load average at the end {', '.join(sig(x) for x in load)} on "
                f"{d['machine'].get('cpus', '?')} CPUs" if load else "") + "."]
    rows = [["1 process, 2 threads", ms(m["step_s_1proc_2threads"]),
             "rounds " + _span([r["median_step_s"] for r in m["rounds_1proc"]], ms)],
            ["1 process, 1 thread", ms(m["step_s_1proc_1thread"]),
             "rounds " + _span([r["median_step_s"] for r in m["rounds_1proc_1thread"]], ms)],
            ["2 processes, 1 thread each", ms(m["step_s_2proc_1thread"]),
             "rounds " + _span([r["median_step_s"] for r in m["rounds_2proc"]], ms)],
            ["2 processes / 1 process (2 threads)", times(m["ratio_2proc_over_1proc"]), ""],
            ["2 processes / 1 process (1 thread)", times(m["ratio_2proc_over_1proc_1thread"]), ""],
            ["all-reduce span per step (upper bound on exposed)", ms(m["allreduce_span_s"]),
             f"{pct(m['allreduce_span_share_of_step'])} of the 2-process step"]]
    link = (f"Fitted gloo link ({a['reps']} reps per size, {sig(min(a['bytes']) / 2 ** 10)} KiB–"
            f"{sig(max(a['bytes']) / 2 ** 20)} MiB): bandwidth {sig(a['bandwidth_Bps'] / 1e9)} GB/s, latency "
            f"{sig(a['latency_s'] * 1e6)} µs; fit error per size {_span(a['fit_rel_err'], pct)}.")
    sim = [[name, f"`{s['profile']}`", ms(s["step_s_1device"]), ms(s["step_s_2devices"]),
            times(s["step_s_2devices"] / s["step_s_1device"]), pct(s["allreduce_share_of_step"])]
           for name, s in d["simulated"].items()]
    return (lines + [""] + table(["measured", "step time", "note"], rows) + ["", link, ""]
            + table(["simulated with", "profile", "1 device", "2 devices", "2 / 1", "exposed all-reduce share"], sim)
            + (["", f"Note (from the file): {d['notes']}"] if d.get("notes") else []))


@renders("finetune.json", "Fine-tuning recipes: accuracy and simulated time to accuracy (`bench_finetune.py`)")
def finetune(path: Path, d: dict) -> list[str]:
    t = d["target"]
    lines = [f"Task `{d['task']}`, {d['pretrain_steps']} pretraining + {d['finetune_steps']} fine-tuning steps, "
             f"batch {d['batch_size']} × {d['seq_len']}, {d['threads_per_run']} thread per run, seeds "
             + ", ".join(f"{k} {v}" for k, v in d["seeds"].items())
             + f". Target {t['metric']} {t['value']}. Step times measured here; times to target are simulated "
               "from each run's trace and count every run of the lineage (pretraining included)."]
    rec = d["recipes"]
    rows = [[name, " → ".join(r["lineage"]), sig(r["final"]["eval_accuracy"]), sig(r["best_accuracy"]),
             sig(r["final"]["eval_f1"]), sig(r["final_density"], 2), ms(r["measured_wall_s_median_step"]),
             f"{sig(r['fwd_flops_per_step'] / 1e9)} GFLOP"] for name, r in rec.items()]
    profiles = sorted({h for r in rec.values() for h in r["hardware"]})
    sim = []
    for h in profiles:
        cells = []
        for r in rec.values():
            x = r["hardware"].get(h)
            tt = x and x.get("time_to_target_s")
            cells.append("not reached" if x and tt is None else "–" if not x
                         else f"{sig(tt)} s (step {x['step_at_target']})")
        sim.append([h] + cells)
    return (lines + [""] + table(["recipe", "lineage", "final accuracy", "best", "F1", "density",
                                  "median step (measured)", "forward FLOPs / step"], rows)
            + ["", "Simulated time to the target (step of the fine-tuning run where it is reached):", ""]
            + table(["profile"] + list(rec), sim))


@renders("reliability.json", "Reliability: kill -9 and resume, fuzzed inputs (`bench_reliability.py`)")
def reliability(path: Path, d: dict) -> list[str]:
    k, a = d["kills"], d["args"]
    resume = sorted(r["resume_s"] for r in k["results"])
    lines = [f"Seed {a['seed']}. **{k['identical']} of {k['runs']}** runs killed with SIGKILL ({k['killed']} "
             f"killed; {k['killed_before_first_checkpoint']} before the first checkpoint, "
             f"{k['identical_before_first_checkpoint']} of those recovered) resumed to a trace identical to the "
             f"uninterrupted reference ({sig(k['reference_s'])} s); resume took {_span(resume)} s "
             f"(median {sig(resume[len(resume) // 2])} s). Fuzzed inputs, each opened the way the CLI opens it:"]
    rows = []
    for key, what in (("fuzz_manifests", "manifests"), ("fuzz_tables", "table parts"),
                      ("fuzz_profiles", "hardware profiles")):
        f = d.get(key)
        if f:
            rows.append([what, f"{f['inputs']:,}", f"{f.get('ok', 0):,}", f"{f.get('user', 0):,}",
                         str(f.get("traceback", 0)), str(f.get("hang", 0)), str(f.get("accepted_invalid", 0)),
                         str(f.get("refused_valid", 0)), str(f.get("simulated", "–")), f"{sig(f['seconds'])} s"])
    return lines + [""] + table(["input", "inputs", "accepted", "one-line error", "tracebacks", "hangs",
                                 "invalid accepted", "valid refused", "simulated", "wall time"], rows)


@renders("offshape/offshape-summary.json", "Cost model off the fitted shapes (`bench_offshape.py`, `offshape_fit.py`)")
def offshape(path: Path, d: dict) -> list[str]:
    c, v = d["sweep_config"], d["variants"]
    loads = [b[k][0] for b in c["blocks"] for k in ("loadavg_before", "loadavg_after")]
    rounds = f"{c['rounds']} round{'s' if c['rounds'] != 1 else ''}"
    lines = [f"{'Reduced sweep' if c.get('reduced') else 'Sweep'} `{d['sweep']}`: {rounds}, "
             f"threads {', '.join(map(str, c['threads']))}, timed by {c['clock']}, {sig(c['sweep_wall_s'] / 60)} min; "
             f"**under load**: 1-min load average {_span(loads)} during the sweep, "
             f"{sig(d['loadavg_at_fit'][0])} at the fit. Held out whole (tokens, hidden): "
             + ", ".join(f"({t}, {h})" for t, h in c["heldout_shapes"])
             + ". Held-out MAPE per fit variant (pattern class of the mask):"]
    names = list(v)
    first = v[names[0]]
    rows = [["train (in-sample)", str(first["n_train"])] + [pct(v[n]["train_mape"]) for n in names],
            ["on-grid held-out", str(first["on_grid"]["overall"]["n"])]
            + [pct(v[n]["on_grid"]["overall"]["mape"]) for n in names],
            ["**off-shape, all**", f"**{first['off_shape']['overall']['n']}**"]
            + [f"**{pct(v[n]['off_shape']['overall']['mape'])}**" for n in names]]
    for p in sorted(first["off_shape"]["by_pattern"]):
        rows.append([f"off-shape {p}", str(first["off_shape"]["by_pattern"][p]["n"])]
                    + [pct(v[n]["off_shape"]["by_pattern"][p]["mape"]) if p in v[n]["off_shape"]["by_pattern"]
                       else "–" for n in names])
    if "off_shape_fastest" in first:
        rows.append(["off-shape, path the model picks vs measured best",
                     str(first["off_shape_fastest"]["overall"]["n"])]
                    + [pct(v[n]["off_shape_fastest"]["overall"]["mape"]) for n in names])
    rows.append(["fit wall time", ""] + [f"{sig(v[n]['fit_wall_s'])} s" for n in names])
    return lines + [""] + table(["", "points"] + [f"`{n}`" for n in names], rows) + [
        "", f"Variants and what each term does: `{path.parent.name}/README.md`."]


def _phases(v: dict, p: dict) -> list[tuple[float, float]]:
    """(measured, predicted) seconds per bench phase: forward ~ fwd, backward ~ bwd_input + bwd_weight, optimizer ~
    optimizer + mask_update, the rebuild ~ format_rebuild."""
    m, q = v["median_phase_s"], p["phase_s"]
    every = v.get("update_steps") == v["steps"]  # the most common step is an update step: its rebuild compares
    rebuild = (v.get("sparse_execution") or {}).get("rebuild_s_median") if every else None
    return [(m["forward"], q.get("fwd", 0.0)), (m["backward"], q.get("bwd_input", 0.0) + q.get("bwd_weight", 0.0)),
            (m["optimizer"], q.get("optimizer", 0.0) + q.get("mask_update", 0.0)),
            (rebuild, q.get("format_rebuild", 0.0))]


@renders("sparse-training*.json", "Sparse-executed training vs dense and masked (`bench_sparse_training.py`)")
def sparse_training(path: Path, d: dict) -> list[str]:
    load = d.get("loadavg_before", [])[:1] + d.get("loadavg_after", [])[:1]
    lines = [f"{d['model']}, batch {d['batch_size']} × {d['seq_len']}, {d['steps']} steps per variant, interleaved in "
             f"chunks of {d['chunk']}; predictions from `{d['profile']}`; load average {_span(load)} "
             f"(before/after); decoder share of the dense step's FLOPs {pct(d['decoder_flops_share'])}."]
    if "clock_GHz_before" in d:
        lines[0] += (f" Core clock {sig(d['clock_GHz_before'])} / {sig(d['clock_GHz_after'])} GHz before / after, the "
                     f"profile's calibration {sig(d['profile_clock_GHz'])} GHz.")
    rows = []
    for name, v in d["variants"].items():
        rows.append([name, v["execution"], ms(v["median_step_s"]), times(v["speedup_median_step"]),
                     f"{sig(v['measured_run_s'])} s", f"{sig(v['predicted_run_s'])} s", pct(v["run_error"]),
                     times(v["speedup_run_measured"]), times(v["speedup_run_predicted"]), sig(v["final_eval_loss"], 4)])
    out = lines + [""] + table(["variant", "execution", "median step", "step speedup", "run, measured",
                                "run, predicted", "run error", "run speedup, measured", "run speedup, predicted",
                                "final eval loss"], rows)
    # the same traces re-simulated later on other profiles (benchmarks/simulate_sparse_training.py)
    for hw in d.get("profiles", {}):
        rows = [[name, f"{sig(v['measured_run_s'])} s", f"{sig(p['run_s'])} s", pct(p["run_error"]),
                 times(v["speedup_run_measured"]), times(p["speedup"]) if "speedup" in p else "",
                 pct(p["speedup_error"]) if "speedup_error" in p else "",
                 f"{ms(p['update_extra_measured_s'])} / {ms(p['update_extra_s'])}" if "update_extra_s" in p else ""]
                for name, v in d["variants"].items() if (p := v.get("predicted_by_profile", {}).get(hw))]
        out += ["", f"Re-simulated later on `{hw}` as committed (`simulate_sparse_training.py`, the kept traces):", ""]
        out += table(["variant", "run, measured", "run, predicted", "run error", "run speedup, measured",
                      "run speedup, predicted", "speedup error", "update step adds, measured / predicted"], rows)
        # masked runs are simulated as the sparse implementation they stand for: no phase to compare with
        phases = [[name, *(f"{ms(m)} / {ms(q)}" if m is not None else "–" for m, q in _phases(v, p))]
                  for name, v in d["variants"].items() if v["execution"] == "sparse" or name == "dense"
                  if (p := v.get("predicted_by_profile", {}).get(hw, {})).get("phase_s")]
        if phases:
            out += ["", "Per phase of the most common step, measured median / cost model (the optimizer phase holds the "
                        "mask selection; the rebuild follows it, compared where every step rebuilds):", ""]
            out += table(["variant", "forward", "backward", "optimizer", "format rebuild"], phases)
    spread = [f"{name} {sig(v['step_spread']['restart_max_over_median'])} / {sig(v['step_spread']['other_max_over_median'])}"
              for name, v in d["variants"].items() if "step_spread" in v]
    if spread:
        out += ["", "Slowest measured step over the median (mask updates apart where not every step updates), the two "
                    f"steps after each start or restart of a chunk / the others: {', '.join(spread)}."]
    return out


@renders("mask-update.json", "A mask update's cost per element (`bench_mask_update.py`)")
def mask_update(path: Path, d: dict) -> list[str]:
    def cell(t):  # nanoseconds per element, or a size table [[elements, ns], ...]
        return ", ".join(f"{sig(v)} ns at {n:,}" for n, v in t) if isinstance(t, list) else f"{sig(t)} ns"
    rows = [[role, cell(t["fwd"])] for role, t in d["element_time_ns"].items()
            if role.startswith("mask_")]
    ratio = d.get("one_thread_ratio")
    lines = [f"{d['threads']} threads, median of {d['repeats']}; `mask_select` (RigL's drop and grow top-k) per weight "
             f"by weight size, `mask_score` (block pooling) and `mask_group_select` (2:4) at 3072 × 768."]
    if ratio:
        lines.append(f"Time at {ratio['threads']} threads over 1 thread: "
                     + ", ".join(f"`{k}` {sig(v)}" for k, v in ratio.items() if k != "threads")
                     + " (near 1: torch runs it on one thread at any count; near 1 / threads: it splits).")
    if d.get("select_plain_policy_ns"):
        lines.append("Drop and grow per weight, timed alone, with freed memory kept (the trainer's policy) / returned to the OS "
                     "(glibc's default, a fresh process): " + ", ".join(
                         f"{k} {sig(v)} / {sig(d['select_plain_policy_ns'][k])} ns" for k, v in d["select_ns"].items()))
    return lines + [""] + table(["role", "time per element"], rows)


@renders("optimizer.json", "The optimizer step (`bench_optimizer.py`)")
def optimizer(path: Path, d: dict) -> list[str]:
    steps = d["bert_small_step"]
    n = next(iter(steps.values()))["parameters"]
    lines = [f"{d['threads']} threads, torch {d['torch']}, median of {d['repeats']}. The trainer's update of bert-small "
             f"({n:,} parameters, gradients clipped to norm 1) with torch's AdamW as a loop over the parameters "
             f"(torch's default on the CPU) and fused (`kernels.optim.adamw`, what the trainer runs), with dense "
             f"moments and with {100 * (1 - d['density']):.0f} % of the encoder's linear weights pruned (their "
             "moments exact zeros, as in a sparse run), side by side:", ""]
    lines += table(["implementation", "dense", "pruned"],
                   [[impl, *(f"{sig(steps[f'{impl} {kind}']['ms'])} ms" for kind in ("dense", "pruned"))]
                    for impl in ("loop", "fused") if f"{impl} dense" in steps])
    lines += ["", "Element times a CPU profile prices the update (per parameter of each model's whole update, a "
                  "size table) and the masking around it with (`vector_ops.optimizer_rows`, `mask_apply_row`): "
              + ", ".join(f"`{name}` {sig(ns)} ns" for name, ns in d["element_time_ns"].items()) + "."]
    if d.get("sqrt_ns"):
        lines += ["", "torch.sqrt per element (1 M float32 values): "
                  + ", ".join(f"{k} {sig(v)} ns" for k, v in d["sqrt_ns"].items())
                  + " (the loop takes the square root of every second moment; a pruned weight's is zero)."]
    return lines


@renders("nm-select.json", "N:M mask selection (`bench_nm_select.py`)")
def nm_select(path: Path, d: dict) -> list[str]:
    rows = [[f"{r['shape'][0]} × {r['shape'][1]}", f"{r['n']}:{r['m']}", ms(r["topk_ms"] / 1e3),
             ms(r["ranked_ms"] / 1e3), times(r["topk_ms"] / r["ranked_ms"]), "yes" if r["same_mask"] else "NO"]
            for r in d["rows"]]
    return [f"{d['threads']} threads, median of {d['repeats']}: torch.topk over each group against the trainer's "
            "ranking inside each group (`kernels.cpu.nm.NMSelector`), side by side.", ""] + \
        table(["weight", "pattern", "topk", "ranked", "topk / ranked", "same mask"], rows)
