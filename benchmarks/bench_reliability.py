"""Reliability campaign (issue 19): kill -9 at many points of a training run, and fuzz every input reader.

1. **Kill -9**: an uninterrupted reference run, then N runs killed with SIGKILL at a chosen point (right
   after a given step, before and after the first checkpoint, or at a random instant of the process's
   life, start-up included), each continued with ``accelsim train --resume``; a run counts as recovered
   when its trace equals the reference: every table column except the measured ``wall_s``, the mask
   files, the manifest (less the host and the resume record) and the final weights.
2. **Fuzz**: >= 5,000 damaged manifests, table parts and hardware profiles each
   (benchmarks/reliability_inputs.py), each opened the way the CLI opens it (``trace_check.open_trace``;
   ``load_profile``), accepted ones simulated (manifests and profiles). Counted: tracebacks (anything but a
   one-line UserError), hangs (over the per-input time limit), inputs the documentation calls invalid
   that were accepted, and valid ones refused.

    python -P benchmarks/bench_reliability.py --out benchmarks/results/zen5-f26m2/reliability.json

Uses one core at a time (the machine is shared); about 10-15 minutes with the defaults.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reliability_inputs import (jsonable, manifest_doc_valid, mutate_manifest, mutate_profile,  # noqa: E402
                                mutate_table)

from accelsim.errors import UserError  # noqa: E402

#: The training run every kill interrupts: a few seconds of bert-tiny with RigL mask changes every 2 steps,
#: checkpoints after steps 3, 7 and 11, masks stored every 2nd change (the resume must count changes).
TRAIN_ARGS = ["--model", "bert-tiny", "--method", "rigl", "--sparsity", "0.5", "--update-every", "2",
              "--steps", "12", "--batch-size", "4", "--seq-len", "32", "--vocab-size", "400", "--eval-every", "3",
              "--checkpoint-every", "4", "--save-masks", "2", "--threads", "1", "--seed", "7", "--quiet"]
FIRST_CHECKPOINT_STEP = 3

#: Runs train() in a child process and kills itself with SIGKILL right after a given step.
CHILD = """
import os, signal, sys
from accelsim.app.cli import main
kill_after = int(os.environ["ACCELSIM_KILL_AFTER_STEP"])
import accelsim.trainer.train as T
real = T.train
def train(cfg, **kw):
    def hook(step, metrics):
        if step == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(cfg, on_step=hook, **{k: v for k, v in kw.items() if k != "on_step"})
T.train = train
main(sys.argv[1:])
"""


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang


def guarded(fn, limit_s: float):
    """('ok', value) | ('user', message) | ('traceback', text) | ('hang', None)."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    try:
        return "ok", fn()
    except UserError as err:
        return "user", str(err)
    except Hang:
        return "hang", None
    except RecursionError:
        return "traceback", "RecursionError"
    except Exception:  # noqa: BLE001  (counting tracebacks is the point)
        return "traceback", traceback.format_exc(limit=3)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key = line.split(":", 1)[0].strip()
            if key in ("model name", "cpu family", "model") and key not in info:
                info[key] = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return info


# ------------------------------------------------------------------------------------------------ kills

def _train(out: Path, extra: list[str], kill_after: int | None = None, kill_at_s: float | None = None,
           timeout: float = 600) -> tuple[int, float]:
    env = dict(os.environ, PYTHONHASHSEED="0")
    cmd = [sys.executable, "-P"]
    if kill_after is not None:
        env["ACCELSIM_KILL_AFTER_STEP"] = str(kill_after)
        cmd += ["-c", CHILD]
    else:
        cmd += ["-m", "accelsim"]
    cmd += ["train", *TRAIN_ARGS, "--out", str(out), *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if kill_at_s is not None:
            try:
                proc.wait(timeout=kill_at_s)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return -999, time.perf_counter() - t0
    return proc.returncode, time.perf_counter() - t0


def trace_digest(run: Path) -> dict:
    """Everything a resumed run must reproduce (wall times excepted)."""
    import torch

    from accelsim import trace as tr

    out = {}
    for table in ("steps", "patterns", "eval", "fff"):
        t = tr.read_table(run, table)
        cols = [c for c in t.column_names if c != "wall_s"]
        out[table] = {c: t[c].to_pylist() for c in cols}
    man = json.loads((run / "manifest.json").read_text())
    man.pop("host", None)
    man.get("extra", {}).pop("resumes", None)
    man.get("extra", {}).get("train_config", {}).pop("out", None)  # where it was written, not what
    out["manifest"] = man
    masks = {}
    for f in sorted((run / "masks").glob("step-*.npz")):
        masks[f.name] = {k: v.tolist() for k, v in tr.read_masks(f).items()}
    out["masks"] = masks
    state = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    out["weights"] = {k: hashlib.sha256(v.numpy().tobytes()).hexdigest() for k, v in state.items()}  # bit-exact
    return out


def _equal(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def _first_difference(a, b, path="") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"{path}.{k} missing"
            if not _equal(a[k], b[k]):
                return _first_difference(a[k], b[k], f"{path}.{k}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if not _equal(x, y):
                return _first_difference(x, y, f"{path}[{i}]")
    return f"{path}: {str(a)[:60]} != {str(b)[:60]}"


def kill_campaign(work: Path, kills: int, seed: int) -> dict:
    ref = work / "reference"
    rc, ref_s = _train(ref, [])
    assert rc == 0, f"reference run failed ({rc})"
    want = trace_digest(ref)
    rng = random.Random(seed)
    steps = 12
    after_step = list(range(steps - 1))  # kill right after each step but the last (0..2: no checkpoint yet)
    points = [("after_step", s) for s in after_step]
    # random instants of the process's life (start-up, data and model building, steps, checkpoint writes)
    points += [("at_time", round(rng.uniform(0.05, 0.8) * ref_s, 2)) for _ in range(max(0, kills - len(points)))]
    points = points[:kills]
    results = []
    for i, (how, where) in enumerate(points):
        run = work / f"kill-{i:02d}"
        rc, _ = _train(run, [], kill_after=where if how == "after_step" else None,
                       kill_at_s=where if how == "at_time" else None)
        while how == "at_time" and rc != -signal.SIGKILL and where > 0.5:  # finished first: kill earlier
            shutil.rmtree(run, ignore_errors=True)
            where = round(where / 2, 2)
            rc, _ = _train(run, [], kill_at_s=where)
        had_ckpt = (run / "checkpoint.pt").is_file()
        had_manifest = (run / "manifest.json").is_file()
        rc2, resume_s = _train(run, ["--resume"])
        ok, why = False, ""
        if rc2 == 0:
            try:
                got = trace_digest(run)
                ok = _equal(got, want)
                why = "" if ok else _first_difference(got, want)
            except Exception as err:  # noqa: BLE001
                why = f"{type(err).__name__}: {err}"
        else:
            why = f"resume exit {rc2}"
        results.append({"point": how, "where": where, "killed_rc": rc, "checkpoint_before_resume": had_ckpt,
                        "manifest_before_resume": had_manifest, "resume_rc": rc2, "resume_s": round(resume_s, 2),
                        "identical": ok, "difference": why})
        print(f"kill {i + 1}/{len(points)} {how}={where}: killed rc {rc}, checkpoint {had_ckpt}, "
              f"resume rc {rc2}, identical {ok} {why}", flush=True)
        shutil.rmtree(run, ignore_errors=True)
    return {"reference_s": round(ref_s, 2), "runs": len(results),
            "killed": sum(r["killed_rc"] == -signal.SIGKILL for r in results),
            "identical": sum(r["identical"] for r in results),
            "killed_before_first_checkpoint": sum(not r["checkpoint_before_resume"] for r in results),
            "identical_before_first_checkpoint": sum(r["identical"] for r in results
                                                    if not r["checkpoint_before_resume"]),
            "results": results}


# ------------------------------------------------------------------------------------------------ fuzz

def _tally(kind: str, verdict: str, label: str | bool | None, detail: str, stats: Counter, examples: dict) -> None:
    stats["inputs"] += 1
    stats[verdict] += 1
    if verdict in ("traceback", "hang"):
        examples.setdefault(verdict, []).append(detail[:400])
    accepted = verdict == "ok"
    if label == "invalid" and accepted:
        stats["accepted_invalid"] += 1
        examples.setdefault("accepted_invalid", []).append(detail[:300])
    if label == "valid" and verdict == "user":
        stats["refused_valid"] += 1
        examples.setdefault("refused_valid", []).append(detail[:300])
    stats[f"labelled_{label}"] += 1


def base_trace(work: Path) -> Path:
    from accelsim.synth import synth_trace

    from accelsim import trace as tr

    run = synth_trace(model="bert-tiny", method="rigl", sparsity=0.8, steps=40, update_every=8, batch_size=4,
                      seq_len=32, out=work / "base", seed=1)
    # synthetic traces have no evaluations; a few rows so the eval table is fuzzed too
    tr.append_rows(run, "eval", [{"step": s, "eval_loss": 7.0 - s / 20, "eval_accuracy": s / 80, "eval_f1": float("nan"),
                                  "eval_mcc": float("nan")} for s in (9, 19, 29, 39)])
    return run


def fuzz_manifests(run: Path, n: int, seed: int, sim_every: int) -> dict:
    from accelsim import trace as tr
    from accelsim.sim.api import simulate
    from accelsim.trace_check import open_trace

    base = json.loads((run / "manifest.json").read_text())
    pat = tr.read_table(run, "patterns")
    pattern_layers = {n_: (r, c) for n_, r, c in zip(pat["layer"].to_pylist(), pat["rows"].to_pylist(),
                                                     pat["cols"].to_pylist())}
    assert manifest_doc_valid(base, pattern_layers)
    stats, examples = Counter(), {}
    path = run / "manifest.json"
    simulated = 0
    for i in range(n):
        rng = random.Random(seed * 1_000_003 + i)
        m = mutate_manifest(base, rng)
        if isinstance(m, bytes):
            path.write_bytes(m)
            label = "invalid"
            detail = repr(m[:60])
        else:
            path.write_text(json.dumps(jsonable(m)))
            label = "valid" if manifest_doc_valid(m, pattern_layers) else "invalid"
            detail = json.dumps(jsonable(m), default=str)[:300]
        verdict, value = guarded(lambda: open_trace(run), 20)
        if verdict == "ok" and i % sim_every == 0:
            simulated += 1
            verdict, value = guarded(lambda: simulate(value, "ideal"), 60)
        _tally("manifest", verdict, label, f"{detail} -> {value if verdict != 'ok' else ''}", stats, examples)
    path.write_text(json.dumps(base))
    return {**stats, "simulated": simulated, "examples": {k: v[:5] for k, v in examples.items()}}


def fuzz_tables(run: Path, n: int, seed: int) -> dict:
    from accelsim import trace as tr
    from accelsim.trace_check import open_trace

    parts = {t: sorted(tr.table_dir(run, t).glob("part-*.parquet")) for t in ("steps", "patterns", "eval")}
    assert all(len(p) == 1 for p in parts.values()), "base trace expected with one part per table"
    originals = {t: p[0].read_bytes() for t, p in parts.items()}
    stats, examples = Counter(), {}
    for i in range(n):
        rng = random.Random(seed * 1_000_003 + i)
        table = rng.choice(("steps", "steps", "patterns", "patterns", "eval"))
        part = parts[table][0]
        t = pq.read_table(part)
        damaged, label, what = mutate_table(table, t, rng)
        if isinstance(damaged, bytes):
            part.write_bytes(damaged)
        else:
            pq.write_table(damaged, part)
        verdict, value = guarded(lambda: open_trace(run), 20)
        _tally("table", verdict, label, f"{table}: {what} -> {value if verdict != 'ok' else ''}", stats, examples)
        part.write_bytes(originals[table])
    return {**stats, "examples": {k: v[:5] for k, v in examples.items()}}


def fuzz_profiles(run: Path, work: Path, n: int, seed: int, sim_every: int) -> dict:
    from accelsim.hardware import list_profiles, load_profile
    from accelsim.hardware.profile import _package_dir
    from accelsim.sim.api import simulate
    from accelsim.trace_check import open_trace

    trace = open_trace(run)
    texts = [(_package_dir() / f"{name}.yaml").read_text(encoding="utf-8") for name in list_profiles()]
    stats, examples = Counter(), {}
    path = work / "fuzz-profile.yaml"
    simulated = 0
    for i in range(n):
        rng = random.Random(seed * 1_000_003 + i)
        text, label, what = mutate_profile(rng.choice(texts), rng)
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        verdict, value = guarded(lambda: load_profile(path), 20)
        if verdict == "ok" and i % sim_every == 0:
            simulated += 1
            verdict, value = guarded(lambda: simulate(trace, value), 60)
            if verdict == "ok" and not (np.isfinite(value.time_s) and np.isfinite(value.energy_j)):
                verdict, value = "traceback", f"non-finite result {value.time_s} {value.energy_j}"
        _tally("profile", verdict, label, f"{what} -> {value if verdict != 'ok' else ''}", stats, examples)
    return {**stats, "simulated": simulated, "examples": {k: v[:5] for k, v in examples.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--fuzz", type=int, default=5000, help="inputs per kind (manifests, tables, profiles)")
    ap.add_argument("--sim-every", type=int, default=10, help="simulate every N-th accepted manifest/profile")
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--skip-kills", action="store_true")
    ap.add_argument("--only", choices=("manifests", "tables", "profiles", "kills"), default=None,
                    help="run one part and update its entry in an existing --out file")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    doc = {"machine": machine(), "args": vars(args) | {"out": str(args.out)}}
    if args.only and args.out and args.out.is_file():
        doc = json.loads(args.out.read_text()) | {"machine": doc["machine"]}
        doc.setdefault("reruns", []).append(vars(args) | {"out": str(args.out)})
    with tempfile.TemporaryDirectory(prefix="accelsim-reliability-") as tmp:
        work = Path(tmp)
        run = base_trace(work)
        for name, fn in (("manifests", lambda: fuzz_manifests(run, args.fuzz, args.seed, args.sim_every)),
                         ("tables", lambda: fuzz_tables(run, args.fuzz, args.seed)),
                         ("profiles", lambda: fuzz_profiles(run, work, args.fuzz, args.seed, args.sim_every))):
            if args.only and args.only != name:
                continue
            t = time.perf_counter()
            doc[f"fuzz_{name}"] = fn()
            doc[f"fuzz_{name}"]["seconds"] = round(time.perf_counter() - t, 1)
            r = doc[f"fuzz_{name}"]
            print(f"fuzz {name}: {r['inputs']} inputs, {r.get('traceback', 0)} tracebacks, {r.get('hang', 0)} hangs, "
                  f"{r.get('accepted_invalid', 0)} invalid accepted, {r.get('refused_valid', 0)} valid refused "
                  f"({r['seconds']} s)", flush=True)
        if not args.skip_kills and args.only in (None, "kills"):
            t = time.perf_counter()
            doc["kills"] = kill_campaign(work, args.kills, args.seed)
            doc["kills"]["seconds"] = round(time.perf_counter() - t, 1)
            k = doc["kills"]
            print(f"kill -9: {k['killed']} runs killed, {k['identical']}/{k['runs']} traces identical to the uninterrupted run "
                  f"({k['identical_before_first_checkpoint']}/{k['killed_before_first_checkpoint']} of those killed "
                  f"before the first checkpoint)", flush=True)
    doc["seconds" if not args.only else f"seconds_{args.only}"] = round(time.perf_counter() - t0, 1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
