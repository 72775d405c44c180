"""BERT-base projections of trained runs: what each trained method would cost at a realistic size.

Why: on bert-tiny the dense MLM head (hidden 128 x vocabulary 8192) dominates a step, so even 90 %
sparse encoder weights leave ~76 % of the FLOPs and no hardware can show what sparsity buys. A projection
is a synthetic trace (:func:`accelsim.synth.synth_trace`) of BERT-base trained *the way the run was*:
same method, sparsity, layer distribution, steps, batch and sequence length, and the same mask schedule
(update interval, drop fraction and its decay, end fraction, GMP window), so mask changes fall on the
same steps. From the run's measured patterns it carries over, per layer role and mask change, how much
more the nonzeros cluster into 16x16 / 32x32 tiles than a random mask of that density would (the
statistic behind the block paths and the scatter penalty of the cost model). Row/column imbalance comes
from masks drawn at BERT-base shapes; the loss curve is synthetic, so projections report time and energy
only, never time to a target loss.

The projections are simulated on the report's hardware and stored like any run
(``<report>/projection/<run>-bert-base/sim/<hw>.json``); ``.projection-key`` records what they were
made from, so a report rebuilt from unchanged runs reuses them.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np

from accelsim import trace as tr
from accelsim.report.data import RunData, load_run

MODEL = "bert-base"
KEY_FILE = ".projection-key"


def projectable(run: RunData, model: str = MODEL) -> bool:
    """Trained (not synthetic) runs of a smaller BERT with ordinary FFNs: synth cannot draw FFF trees."""
    m = run.trace.manifest
    ffn = m.extra.get("train_config", {}).get("ffn", "dense")
    return not m.synthetic and ffn == "dense" and run.model != model


def project_trace(run: Path, out: Path, model: str = MODEL) -> Path:
    """Write the synthetic ``model`` trace of a trained run to ``out`` (replacing what is there)."""
    from accelsim.synth import synth_trace

    src = tr.load_trace(run)
    m, spec = src.manifest, dict(src.manifest.method)
    steps = m.steps
    every = spec.get("update_every") or spec.get("nm_update_every") or max(1, steps // 5)
    kwargs = {k: spec[k] for k in ("distribution", "drop_fraction", "end_fraction", "gmp_start_fraction")
              if spec.get(k) is not None}
    if spec.get("gmp_end_fraction") is not None:  # GMP's window end is synth's end_fraction
        kwargs["end_fraction"] = spec["gmp_end_fraction"]
    sparsity = float(spec.get("sparsity") or 0.0)
    if spec.get("m"):
        kwargs["nm_m"] = int(spec["m"])
        if spec.get("n") and not sparsity:  # N:M fixes its sparsity at 1 - n/m
            sparsity = 1.0 - int(spec["n"]) / int(spec["m"])
    if spec.get("block_size") or spec.get("block"):
        kwargs["block_size"] = int(spec.get("block_size") or spec["block"])
    if out.exists():
        shutil.rmtree(out)
    synth_trace(model, str(spec.get("name", "dense")), sparsity, steps=steps,
                update_every=int(every), batch_size=m.batch_size, seq_len=int(m.model["seq_len"]), out=out,
                dtype=m.dtype, seed=m.seed, **kwargs)
    carried = _carry_clustering(src, out)
    proj = tr.read_manifest(out)
    proj.extra.update({"projected_from": run.name, "projection": (
        f"{model} trained as {run.name}: same method, sparsity, distribution, steps, batch, sequence length "
        f"and mask schedule" + (f"; tile clustering carried over from its {carried} measured pattern rows"
                                if carried else ""))})
    tr.write_manifest(out, proj)
    return out


def _random_block_frac(density: np.ndarray, b: int) -> np.ndarray:
    """Expected share of non-empty b x b tiles of a uniformly random mask of this density."""
    return 1.0 - (1.0 - np.clip(density, 0.0, 1.0)) ** (b * b)


def _carry_clustering(src: tr.Trace, out: Path) -> int:
    """Scale the projection's block{b}_frac by the run's measured clustering, role by role and step by step.

    Clustering = measured non-empty tile share / a random mask's at the same density (1: random; below 1:
    nonzeros gather in fewer tiles). Only for unstructured methods: block and N:M projections already draw
    their structure. Returns the number of measured rows used (0: nothing carried)."""
    from accelsim.sim.methods import method_rule

    pat, rule = src.patterns, method_rule(src.manifest.method)
    if not pat.num_rows or not rule.sparse_compute or rule.structure != "random" or \
            not tr.table_dir(out, "patterns").is_dir():
        return 0
    role = {i.name: i.role for i in src.manifest.layers}
    cols = {c: pat[c].to_numpy(zero_copy_only=False) for c in ("step", "layer", "density")}
    ratio: dict[tuple[str, int], dict[int, list[float]]] = {}
    for b in tr.BLOCK_SIZES:
        frac = pat[f"block{b}_frac"].to_numpy(zero_copy_only=False).astype(float)
        rnd = _random_block_frac(cols["density"].astype(float), b)
        for s, layer, f, r in zip(cols["step"], cols["layer"], frac, rnd):
            if layer in role and r > 0:
                ratio.setdefault((role[layer], int(s)), {}).setdefault(b, []).append(min(f / r, 1.0))
    if not ratio:
        return 0
    mean = {k: {b: float(np.mean(v)) for b, v in per_b.items()} for k, per_b in ratio.items()}
    proj = tr.read_manifest(out)
    prole = {i.name: i.role for i in proj.layers}
    table = tr.read_table(out, "patterns")
    data = {c: table[c].to_pylist() for c in table.column_names}
    for i, (s, layer, d) in enumerate(zip(data["step"], data["layer"], data["density"])):
        steps = sorted(k[1] for k in mean if k[0] == prole.get(layer))
        if not steps:
            continue
        at = max((x for x in steps if x <= s), default=steps[0])  # the run's pattern holding at this step
        for b, r in mean[(prole[layer], at)].items():
            data[f"block{b}_frac"][i] = max(float(d), data[f"block{b}_frac"][i] * r)
    shutil.rmtree(tr.table_dir(out, "patterns"))
    tr.append_columns(out, "patterns", data)
    return int(pat.num_rows)


def _code_and_profiles(hardware: list[str]) -> bytes:
    """What a stored projection depends on besides its run: the profiles' content and the source of the
    generator, the cost model and the simulator (a change to any of them makes the projection stale)."""
    import accelsim.hardware
    import accelsim.sim
    import accelsim.synth
    from accelsim.hardware import load_profile, profile_to_yaml

    h = hashlib.sha256()
    for name in hardware:
        h.update(profile_to_yaml(load_profile(name)).encode())
    files = [Path(accelsim.synth.__file__), Path(__file__)]
    for pkg in (accelsim.sim, accelsim.hardware):
        files += sorted(Path(pkg.__file__).parent.rglob("*.py"))
    for f in files:
        h.update(f.read_bytes())
    return h.digest()


def _key(run: RunData, hardware: list[str], model: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([model, hardware], sort_keys=True).encode())
    h.update(_code_and_profiles(hardware))
    h.update(tr.manifest_path(run.path).read_bytes())
    for table in ("steps", "patterns"):
        d = tr.table_dir(run.path, table)
        for part in sorted(d.glob("*")) if d.is_dir() else []:
            h.update(f"{part.name}:{part.stat().st_size}".encode())
    return h.hexdigest()[:16]


def project_runs(runs: list[RunData], hardware: list[str], out: Path,
                 model: str = MODEL) -> tuple[list[RunData], list[str]]:
    """The ``model`` projection of every projectable run, simulated on ``hardware`` (single device), and a
    line for each run that could not be projected (synth refuses the method's settings at that size)."""
    from accelsim.errors import UserError
    from accelsim.sim.api import simulate_many

    base = list(dict.fromkeys(re.sub(r"-x\d+$", "", h) for h in hardware))
    done: list[RunData] = []
    skipped: list[str] = []
    for run in runs:
        if not projectable(run, model):
            continue
        d = Path(out) / f"{run.name}-{model}"
        key = _key(run, base, model)
        fresh = (d / KEY_FILE).is_file() and (d / KEY_FILE).read_text() == key and \
            all((d / "sim" / f"{h}.json").is_file() for h in base)
        if not fresh:
            try:
                project_trace(run.path, d, model)
                for r in simulate_many(d, base):
                    r.save(d)
            except UserError as err:
                skipped.append(f"{run.name}: {err}")
                continue
            (d / KEY_FILE).write_text(key)
        done.append(load_run(d))
    return done, skipped
