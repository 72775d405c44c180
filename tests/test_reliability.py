"""No silent wrong answers (issue 19): damaged inputs are refused in one line, interrupted runs recover.

Fuzz tests draw damaged manifests, table parts, profiles and CLI options with hypothesis (few examples, so
CI stays fast; benchmarks/bench_reliability.py runs the long campaign) and compare the readers' verdicts
with an independent restatement of the documented rules (benchmarks/reliability_inputs.py).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from reliability_inputs import (jsonable, manifest_doc_valid, mutate_manifest, mutate_profile,  # noqa: E402
                                mutate_table)

from accelsim import trace as tr  # noqa: E402
from accelsim.errors import UserError  # noqa: E402
from accelsim.trace_check import open_trace  # noqa: E402

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                    max_leaves=6)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    from accelsim.synth import synth_trace

    run = synth_trace(model="bert-tiny", method="rigl", sparsity=0.8, steps=24, update_every=8, batch_size=4,
                      seq_len=32, out=tmp_path_factory.mktemp("rel") / "base", seed=1)
    tr.append_rows(run, "eval", [{"step": s, "eval_loss": 6.0, "eval_accuracy": 0.1, "eval_f1": float("nan"),
                                  "eval_mcc": float("nan")} for s in (11, 23)])
    return run


def _verdict(fn):
    try:
        return "ok", fn()
    except UserError as err:
        assert "\n" not in str(err), "a refusal is one line"
        return "user", str(err)


def _pattern_layers(run: Path) -> dict:
    pat = tr.read_table(run, "patterns")
    return dict(zip(pat["layer"].to_pylist(), zip(pat["rows"].to_pylist(), pat["cols"].to_pylist())))


def _check_manifest(run: Path, m) -> None:
    path = run / "manifest.json"
    if isinstance(m, bytes):
        path.write_bytes(m)
        label = "invalid"
    else:
        path.write_text(json.dumps(jsonable(m)))
        label = "valid" if manifest_doc_valid(m, _pattern_layers(run)) else "invalid"
    verdict, value = _verdict(lambda: open_trace(run))
    assert verdict == ("ok" if label == "valid" else "user"), (label, value, m if not isinstance(m, bytes) else m[:80])
    if verdict == "user":
        assert "manifest.json" in value or ".parquet" in value, value


@FUZZ
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_manifest_fuzz_agrees_with_the_docs(base_run, tmp_path_factory, seed):
    run = tmp_path_factory.mktemp("m") / "run"
    shutil.copytree(base_run, run)
    base = json.loads((run / "manifest.json").read_text())
    _check_manifest(run, mutate_manifest(base, random.Random(seed)))


@FUZZ
@given(field=st.sampled_from(["batch_size", "seed", "steps", "dtype", "synthetic", "model.layers", "model.hidden",
                              "model.heads", "model.ffn", "layers.0.shape", "layers.0.target_density",
                              "layers.0.sparse", "layers.0.role", "method.name"]), value=JSON)
def test_any_json_value_in_a_manifest_field(base_run, tmp_path_factory, field, value):
    run = tmp_path_factory.mktemp("v") / "run"
    shutil.copytree(base_run, run)
    m = json.loads((run / "manifest.json").read_text())
    d = m
    keys = [int(k) if k.isdigit() else k for k in field.split(".")]
    for k in keys[:-1]:
        d = d[k]
    d[keys[-1]] = value
    _check_manifest(run, m)


def test_bool_is_not_an_integer_and_limits_hold(base_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    m = json.loads((run / "manifest.json").read_text())
    for field, value, expected in (("batch_size", True, "batch_size"), ("steps", 10 ** 12, "steps"),
                                   ("model.layers", 10 ** 12, "model.layers"),
                                   ("model.ffn", {"type": "fff", "trees": 1, "depth": 60}, "model.ffn.depth")):
        bad = json.loads(json.dumps(m))
        d = bad
        keys = field.split(".")
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
        (run / "manifest.json").write_text(json.dumps(bad))
        with pytest.raises(UserError, match=f"field '{expected}'"):
            open_trace(run)
    (run / "manifest.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(UserError, match="UTF-8"):
        open_trace(run)
    (run / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UserError):
        open_trace(run)


@FUZZ
@given(seed=st.integers(0, 2 ** 32 - 1), table=st.sampled_from(["steps", "patterns", "eval"]))
def test_table_fuzz_agrees_with_the_docs(base_run, tmp_path_factory, seed, table):
    run = tmp_path_factory.mktemp("t") / "run"
    shutil.copytree(base_run, run)
    part = sorted(tr.table_dir(run, table).glob("part-*.parquet"))[0]
    damaged, label, what = mutate_table(table, pq.read_table(part), random.Random(seed))
    if isinstance(damaged, bytes):
        part.write_bytes(damaged)
    else:
        pq.write_table(damaged, part)
    verdict, value = _verdict(lambda: open_trace(run))
    if label is not None:
        assert verdict == ("ok" if label == "valid" else "user"), (table, what, value)


def test_duplicated_and_missing_steps_are_refused_by_simulate_too(base_run, tmp_path):
    from accelsim.sim.api import simulate

    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    part = sorted(tr.table_dir(run, "steps").glob("part-*.parquet"))[0]
    t = pq.read_table(part)
    pq.write_table(t.slice(0, 5), part.with_name("part-00000000-00000004.parquet"))  # 0..4 twice
    with pytest.raises(UserError, match="step 0 is duplicated"):
        simulate(run, "ideal")
    part.with_name("part-00000000-00000004.parquet").unlink()
    import pyarrow as pa
    pq.write_table(t.filter(pa.array([i != 3 for i in range(t.num_rows)])), part)
    with pytest.raises(UserError, match="not contiguous"):
        simulate(run, "ideal")


@pytest.fixture(scope="module")
def profile_texts():
    from accelsim.hardware import list_profiles
    from accelsim.hardware.profile import _package_dir

    return [(_package_dir() / f"{n}.yaml").read_text(encoding="utf-8") for n in list_profiles()]


@FUZZ
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_profile_fuzz_agrees_with_the_docs(profile_texts, tmp_path_factory, seed):
    from accelsim.hardware import load_profile

    rng = random.Random(seed)
    text, label, what = mutate_profile(rng.choice(profile_texts), rng)
    path = tmp_path_factory.mktemp("p") / "p.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    verdict, value = _verdict(lambda: load_profile(path))
    if label is not None:
        assert verdict == ("ok" if label == "valid" else "user"), (what, value)


def test_duplicate_profile_key_and_tiny_peak_are_refused(profile_texts, base_run, tmp_path):
    from accelsim.hardware import load_profile
    from accelsim.hardware.profile import load_profile_text

    with pytest.raises(UserError, match="duplicate key 'name' at line 2"):
        load_profile_text("name: a\nname: b\n", "dup.yaml")
    ideal = next(t for t in profile_texts if "name: ideal" in t)
    path = tmp_path / "tiny.yaml"
    path.write_text(ideal.replace("fp32: 100 TFLOP/s", "fp32: 1e-300 FLOP/s", 1))
    with pytest.raises(UserError, match="compute.peak.fp32"):
        load_profile(path)


# ------------------------------------------------------------------------------------------------ CLI

def _cli(argv, capsys) -> str:
    from accelsim.app.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2, err
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("args, needle", [
    (["--seed", str(2 ** 70)], "seed"), (["--threads", "-1"], "thread"), (["--threads", "0"], "thread"),
    (["--save-masks", "bogus"], "save_masks"), (["--save-masks", "-1"], "save_masks"),
    (["--sparse-roles", ","], "sparse_roles"), (["--lr", "inf"], "lr"), (["--steps", str(10 ** 12)], "steps"),
])
def test_train_options_are_refused_in_one_line(tmp_path, capsys, args, needle):
    err = _cli(["train", "--out", str(tmp_path / "r"), "--quiet", *args], capsys)
    assert needle in err
    assert not (tmp_path / "r" / "manifest.json").exists()  # refused before anything is written


def test_out_naming_a_file_is_refused(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("keep me")
    err = _cli(["train", "--out", str(f), "--quiet"], capsys)
    assert "file.txt" in err and f.read_text() == "keep me"


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(seed=st.one_of(st.integers(max_value=-1), st.integers(min_value=2 ** 32)),
       threads=st.one_of(st.none(), st.integers(max_value=0)))
def test_out_of_range_seed_and_threads(tmp_path_factory, capsys, seed, threads):
    out = tmp_path_factory.mktemp("o") / "r"
    extra = [] if threads is None else ["--threads", str(threads)]
    _cli(["train", "--out", str(out), "--quiet", "--seed", str(seed), *extra], capsys)


@pytest.mark.parametrize("argv, needle", [
    (["trace", "synth", "--steps", str(10 ** 12)], "steps"),
    (["kernels", "pick", "--tokens", "-5"], "tokens"), (["kernels", "pick", "--d-in", str(10 ** 9)], "d_in"),
    (["kernels", "pick", "--density", "1.5"], "density"),
    (["kernels", "bench", "--quick", "--paths", "bogus"], "bogus"),
])
def test_other_commands_refuse_bad_values(tmp_path, capsys, argv, needle):
    out = ["--out", str(tmp_path / ("x.json" if argv[0] == "kernels" else "s"))] if "pick" not in argv else []
    assert needle in _cli([*argv, *out], capsys)


# ------------------------------------------------------------------------------------------------ resume

def _cfg(out, **kw):
    from accelsim.trainer.data import DataConfig
    from accelsim.trainer.sparsity import SparsityConfig
    from accelsim.trainer.train import TrainConfig

    base = dict(model="bert-tiny", out=str(out), steps=6, batch_size=4, lr=2e-3, seed=3, eval_every=3,
                eval_batches=1, checkpoint_every=2, threads=1, save_masks="2",
                data=DataConfig(vocab_size=400, seq_len=32, max_texts=400),
                sparsity=SparsityConfig(method="rigl", sparsity=0.5, update_every=2))
    base.update(kw)
    return TrainConfig(**base)


def test_diverged_run_resumes_with_a_lower_lr_recorded(tmp_path):
    from accelsim.trainer.train import TrainingDiverged, train

    out = tmp_path / "r"
    with pytest.raises(TrainingDiverged, match="no checkpoint yet, so --resume restarts from step 0"):
        train(_cfg(out, lr=1e9, checkpoint_every=50), progress=False)
    assert (out / "manifest.json").is_file()
    with pytest.raises(UserError, match=r"cannot resume with different settings \(seed 3 -> 4"):
        train(_cfg(out, lr=1e9, seed=4), resume=True, progress=False, overrides={"seed"})
    train(_cfg(out, lr=1e-3), resume=True, progress=False, overrides={"lr"})
    man = tr.read_manifest(out)
    assert man.extra["resumes"] == [{"from_step": 0, "overrides": {"lr": 1e-3}}]
    assert man.extra["train_config"]["lr"] == 1e-3
    steps = tr.read_table(out, "steps")
    assert steps.num_rows == 6 and max(steps["lr"].to_pylist()) <= 1e-3


def test_lr_override_takes_effect_after_a_checkpoint(tmp_path):
    from accelsim.trainer.train import train

    ref, out = tmp_path / "ref", tmp_path / "r"
    train(_cfg(ref, steps=4, lr=1e-3), progress=False)
    train(_cfg(out, steps=2, lr=2e-3), progress=False)  # a finished 2-step run, extended with another lr
    train(_cfg(out, steps=4, lr=1e-3), resume=True, progress=False, overrides={"steps", "lr"})
    lr_ref = tr.read_table(ref, "steps")["lr"].to_pylist()
    lr_got = tr.read_table(out, "steps")["lr"].to_pylist()
    assert lr_got[2:] == pytest.approx(lr_ref[2:])  # the saved schedule's base LR did not win
    assert tr.read_manifest(out).extra["resumes"][0] == {"from_step": 2, "overrides": {"lr": 1e-3, "steps": 4}}


def test_leftovers_damaged_checkpoint_and_saved_config(tmp_path):
    from accelsim.trainer.recovery import clean_leftovers
    from accelsim.trainer.train import train

    out = tmp_path / "r"
    train(_cfg(out, steps=2), progress=False)
    (out / ".manifest.json.tmp").write_text("{")
    (out / "steps.parquet" / ".part-00000002-00000003.parquet.tmp").write_bytes(b"x")
    assert len(clean_leftovers(out)) == 2
    good = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match="unreadable checkpoint"):
        train(_cfg(out, steps=3), resume=True, progress=False, overrides={"steps"})
    (out / "checkpoint.pt").write_bytes(good)
    m = json.loads((out / "manifest.json").read_text())
    m["extra"]["train_config"]["sparsity"]["not_a_key"] = 1
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match=r"extra.train_config.sparsity.*unknown keys \['not_a_key'\]"):
        train(_cfg(out, steps=3), resume=True, progress=False, overrides={"steps"})
    del m["extra"]["train_config"]["sparsity"]["not_a_key"]
    m["extra"]["train_config"]["batch_size"] = "many"
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match="extra.train_config.batch_size"):
        train(_cfg(out, steps=3), resume=True, progress=False, overrides={"steps"})


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    from bench_reliability import _train

    ref = tmp_path_factory.mktemp("kill") / "ref"
    assert _train(ref, [])[0] == 0
    return ref


@pytest.mark.parametrize("kill_after", [0, 3], ids=["before-first-checkpoint", "after-first-checkpoint"])
def test_kill9_then_resume_gives_the_uninterrupted_trace(reference_run, tmp_path, kill_after):
    """SIGKILL right after a step (step 0: no checkpoint yet; step 3: after the first), then --resume."""
    from bench_reliability import _equal, _first_difference, _train, trace_digest

    ref = reference_run
    run = tmp_path / "killed"
    rc, _ = _train(run, [], kill_after=kill_after)
    assert rc == -9
    assert (run / "checkpoint.pt").is_file() == (kill_after >= 3)
    assert _train(run, ["--resume"])[0] == 0
    got, want = trace_digest(run), trace_digest(ref)
    assert _equal(got, want), _first_difference(got, want)
    assert len(list((run / "masks").glob("*.npz"))) == len(list((ref / "masks").glob("*.npz")))


# ------------------------------------------------------------------------------------------------ kernel cache

needs_cc = pytest.mark.skipif(not (shutil.which("gcc") or shutil.which("cc")), reason="no C compiler")


@needs_cc
def test_swapped_cached_kernel_is_refused_not_loaded(tmp_path, monkeypatch):
    from accelsim.kernels import native

    monkeypatch.setenv("ACCELSIM_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "k.c"
    src.write_text("int answer(void) { return 42; }\n")
    lib, reason = native.build(src, "k", "a test kernel")
    assert reason is None and lib.answer() == 42
    so = next((tmp_path / "cache" / "kernels").glob("k-*.so"))
    evil = tmp_path / "evil.c"
    evil.write_text("#include <stdlib.h>\n__attribute__((constructor)) static void boom(void) { exit(99); }\n"
                    "int answer(void) { return 666; }\n")
    cc = shutil.which("gcc") or shutil.which("cc")
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(tmp_path / "evil.so"), str(evil)], check=True)
    # swapped behind our back (a new file renamed over the cached one; writing into the old file in place would
    # change the pages of the copy this process already mapped); loading it would exit(99) this process
    shutil.copy(tmp_path / "evil.so", so.with_suffix(".tmp"))
    os.replace(so.with_suffix(".tmp"), so)
    with pytest.raises(UserError, match="does not match the SHA-256"):
        native.build(src, "k", "a test kernel")


@needs_cc
def test_cache_dir_writable_by_others_is_refused(tmp_path, monkeypatch):
    from accelsim.kernels import native

    cache = tmp_path / "shared"
    (cache / "kernels").mkdir(parents=True)
    os.chmod(cache / "kernels", 0o777)
    monkeypatch.setenv("ACCELSIM_CACHE", str(cache))
    src = tmp_path / "k.c"
    src.write_text("int answer(void) { return 42; }\n")
    with pytest.raises(UserError, match="kernels: kernel cache directory is not owned by you or is writable"):
        native.build(src, "k", "a test kernel")
    os.chmod(cache / "kernels", stat.S_IRWXU)
    assert native.build(src, "k", "a test kernel")[1] is None
