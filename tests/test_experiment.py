"""Experiments: strict YAML, the embedded default, and run_experiment's train/resume/reuse + simulate + report."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from accelsim import trace as tr
from accelsim.app.cli import main
from accelsim.errors import UserError
from accelsim.app.experiment import (Experiment, MethodSpec, default_experiment, load_experiment, resolve_target_loss,
                                 run_experiment, train_config)
from accelsim.app.experiment_config import QuickSettings, experiment_from_dict
from accelsim.hardware import list_profiles
from accelsim.sim.result import smoothed_loss
from accelsim.trace_check import check_trace

REPO = Path(__file__).resolve().parents[1]
TINY_HW = ["ideal", "cpu-zen3"]


def tiny_experiment(**kw) -> Experiment:
    base = dict(name="tiny", methods=[MethodSpec("dense"), MethodSpec("rigl", [0.5])], hardware=TINY_HW, steps=8,
                batch_size=4, seq_len=32, lr=1e-3, seed=3, threads=1, data={"vocab_size": 400, "max_texts": 400})
    return Experiment(**{**base, **kw})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny experiment whose RigL run was interrupted at step 5 before `run_experiment` saw it."""
    from accelsim.trainer.train import train

    exp = tiny_experiment()
    out = tmp_path_factory.mktemp("exp")
    spec = next(s for s in exp.runs() if s.method == "rigl")

    def stop(step, metrics):
        if step == 5:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(train_config(exp, spec, out / "runs" / spec.name), progress=False, on_step=stop)
    result = run_experiment(exp, out, progress=False)
    return exp, out, result


def test_default_experiment_is_dense_rigl_80_90_and_set_90_on_every_profile():
    exp = default_experiment()
    assert [r.name for r in exp.runs()] == ["bert-tiny-dense", "bert-tiny-rigl-80", "bert-tiny-rigl-90",
                                            "bert-tiny-set-90"]
    assert exp.hardware_names() == list_profiles() and exp.target_loss == "auto"
    exp.validate()
    q = exp.quick_variant()
    assert (q.steps, q.batch_size, q.seq_len) == (30, 8, 32) and q.steps < exp.steps
    assert q.resolved_update_every() == 6 and exp.resolved_update_every() == 40


def test_quick_never_grows_a_small_experiment():
    q = tiny_experiment(quick=QuickSettings(steps=100, batch_size=2, seq_len=64)).quick_variant()
    assert (q.steps, q.batch_size, q.seq_len) == (8, 2, 32)


def test_example_file_loads_and_round_trips():
    exp = load_experiment(REPO / "examples" / "experiment.yaml")
    assert "bert-tiny-static-90" in [r.name for r in exp.runs()]
    assert experiment_from_dict(exp.to_dict(), "again") == exp


@pytest.mark.parametrize("text, field", [
    ("stepz: 3\n", "'stepz'"),
    ("methods: [{name: rigl, sparsities: [0.9], options: {update_evry: 3}}]\n", "'methods[0].options.update_evry'"),
    ("methods: [{name: rigl, sparsities: [0.9], options: {update_every: 0}}]\n", "'methods[0].options.update_every'"),
    ("methods: [{name: rigl, sparsities: [1.0]}]\n", "'methods[0].sparsities[0]'"),
    ("methods: [{name: rigl}]\n", "'methods[0].sparsities'"),
    ("methods: [{name: magic, sparsities: [0.5]}]\n", "'methods[0].name'"),
    ("methods: [dense, {name: dense}]\n", "'methods'"),
    ("hardware: [tpu-v9]\n", "'hardware[0]'"),
    ("data: {seq_len: 64}\n", "'data.seq_len'"),
    ("quick: {steps: 0}\n", "'quick.steps'"),
    ("target_loss: soon\n", "'target_loss'"),
    ("lr: -1\n", "'lr'"),
])
def test_bad_experiment_files_fail_in_one_line_naming_file_and_key(tmp_path, capsys, text, field):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=re.escape(f"field {field}")):
        load_experiment(path)
    with pytest.raises(SystemExit) as exc:
        main(["run", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "\n" not in err and str(path) in err and field in err
    assert not (tmp_path / "out").exists()  # nothing trained on a bad file


def test_numbers_written_as_yaml_1_1_strings_are_accepted(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("lr: 2e-3\ntarget_loss: 5\n")
    exp = load_experiment(path)
    assert exp.lr == 0.002 and exp.target_loss == 5.0


def test_run_trains_resumes_simulates_and_reports(finished):
    exp, out, result = finished
    status = {r.name: r.status for r in result.runs}
    assert status == {"bert-tiny-dense": "trained", "bert-tiny-rigl-50": "resumed"}
    for r in result.runs:
        s = check_trace(r.path)
        assert s.steps == 8 and s.planned_steps == 8
        for hw in TINY_HW:
            doc = json.loads((r.path / "sim" / f"{hw}.json").read_text())
            assert doc["steps"] == 8 and doc["target_loss"] == result.target_loss
            assert doc["time_to_target_s"] is not None  # auto: every run reaches it
    assert result.simulated == 2 * len(TINY_HW)
    assert set(result.report) == {"html", "md", "json"} and all(p.is_file() for p in result.report.values())
    record = json.loads((out / "experiment.json").read_text())
    assert record["runs"] == ["bert-tiny-dense", "bert-tiny-rigl-50"] and record["target_loss"] == result.target_loss


def test_resumed_run_equals_an_uninterrupted_one(finished, tmp_path):
    from accelsim.trainer.train import train

    exp, out, _ = finished
    spec = next(s for s in exp.runs() if s.method == "rigl")
    ref = train(train_config(exp, spec, tmp_path / "ref"), progress=False)
    a, b = tr.load_trace(ref), tr.load_trace(out / "runs" / spec.name)
    assert a.steps["loss"].to_pylist() == b.steps["loss"].to_pylist()


def test_auto_target_is_the_loosest_final_smoothed_loss(finished):
    _, out, result = finished
    finals = [smoothed_loss(tr.read_table(r.path, "steps")["loss"].to_numpy())[-1] for r in result.runs]
    assert max(finals) <= result.target_loss < max(finals) + 1e-4
    assert resolve_target_loss(4.5, [r.path for r in result.runs]) == 4.5
    assert resolve_target_loss(None, [r.path for r in result.runs]) is None


def test_second_run_reuses_traces_and_simulations(finished):
    exp, out, first = finished
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/sim/*.json")}
    again = run_experiment(exp, out, progress=False, report=False)
    assert {r.status for r in again.runs} == {"reused"} and again.simulated == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/sim/*.json")} == mtimes
    assert again.target_loss == first.target_loss


def test_changed_target_resimulates_and_changed_config_is_refused(finished, tmp_path):
    exp, out, _ = finished
    moved = run_experiment(tiny_experiment(target_loss=50.0, hardware=["ideal"]), out, progress=False, report=False)
    assert moved.simulated == 2 and moved.target_loss == 50.0
    doc = json.loads((out / "runs" / "bert-tiny-dense" / "sim" / "ideal.json").read_text())
    assert doc["target_loss"] == 50.0 and doc["step_at_target"] == 0
    with pytest.raises(UserError, match="different configuration \\(batch_size: 4 in the run, 2 in the experiment"):
        run_experiment(tiny_experiment(batch_size=2), out, progress=False, report=False)


def test_run_killed_before_its_first_checkpoint_is_retrained(tmp_path):
    exp = tiny_experiment(methods=[MethodSpec("dense")], hardware=["ideal"], steps=4)
    first = run_experiment(exp, tmp_path, progress=False, report=False)
    run = first.runs[0].path
    (run / "checkpoint.pt").unlink()
    (run / "train_summary.json").unlink()
    tr.truncate_after(run, "steps", 1)
    again = run_experiment(exp, tmp_path, progress=False, report=False)
    assert again.runs[0].status == "trained" and check_trace(run).steps == 4


def test_cli_run_json_on_a_finished_experiment(finished, tmp_path, capsys):
    exp, out, result = finished
    path = tmp_path / "tiny.yaml"
    from accelsim.app.experiment import experiment_to_yaml

    path.write_text(experiment_to_yaml(exp))
    main(["run", str(path), "--out", str(out), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert {r["status"] for r in doc["runs"]} == {"reused"}
    assert len(doc["summary"]) == 2 * len(TINY_HW)
    sim = json.loads((out / "runs" / "bert-tiny-rigl-50" / "sim" / "cpu-zen3.json").read_text())
    row = next(r for r in doc["summary"] if r["run"] == "bert-tiny-rigl-50" and r["hardware"] == "cpu-zen3")
    assert row["time_s"] == sim["time_s"] and row["speedup"] == sim["speedup"]
    assert np.isclose(row["edp_js"], sim["time_s"] * sim["energy_j"])
