"""The CLI says the same things the same way: output-format flags, units, command order, quick sweep threads."""
from __future__ import annotations

import csv
import io
import json

import pytest

from accelsim.app.cli import main


@pytest.fixture(scope="module")
def synth_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "synth"
    main(["trace", "synth", "--model", "bert-tiny", "--steps", "40", "--update-every", "10", "--batch-size", "4",
          "--seq-len", "32", "--out", str(out)])
    return out


def _out(argv, capsys) -> str:
    capsys.readouterr()
    main(argv)
    return capsys.readouterr().out


def test_simulate_and_compare_take_the_same_format_flags(synth_run, capsys):
    sim_json = json.loads(_out(["simulate", str(synth_run), "--hw", "ideal", "--json"], capsys))
    again = json.loads(_out(["simulate", str(synth_run), "--hw", "ideal", "--format", "json"], capsys))
    assert [(d["hardware"], d["time_s"], d["energy_j"]) for d in again] == \
        [(d["hardware"], d["time_s"], d["energy_j"]) for d in sim_json]
    rows = list(csv.DictReader(io.StringIO(_out(["simulate", str(synth_run), "--hw", "ideal", "--format", "csv"],
                                                capsys))))
    assert rows[0]["hardware"] == "ideal" and float(rows[0]["time_s"]) == pytest.approx(sim_json[0]["time_s"])
    cmp_json = json.loads(_out(["compare", str(synth_run), "--hw", "ideal", "--json"], capsys))
    assert cmp_json == json.loads(_out(["compare", str(synth_run), "--hw", "ideal", "--format", "json"], capsys))
    assert cmp_json[0]["time_s"] == pytest.approx(sim_json[0]["time_s"])
    for cmd in ("simulate", "compare"):
        with pytest.raises(SystemExit) as exc:
            main([cmd, str(synth_run), "--hw", "ideal", "--json", "--format", "csv"])
        assert exc.value.code == 2 and capsys.readouterr().err.count("\n") == 1


def test_simulate_prints_the_report_units(synth_run, capsys):
    from accelsim.app.cli.simulate import human_joules, human_seconds
    from accelsim.report.units import fmt_energy, fmt_time

    assert human_seconds(461e-6) == fmt_time(461e-6) and human_joules(175e6) == fmt_energy(175e6)
    table = _out(["simulate", str(synth_run), "--hw", "ideal", "--no-save"], capsys)
    sim = json.loads(_out(["simulate", str(synth_run), "--hw", "ideal", "--json", "--no-save"], capsys))[0]
    assert fmt_time(sim["time_s"]) in table


def test_help_lists_everyday_commands_first(capsys):
    text = _out(["--help"], capsys)
    pos = {name: text.index(f"\n  {name} ") for name in ("run", "train", "simulate", "compare", "report",
                                                          "calibrate", "validate", "hw")}
    everyday = max(pos[n] for n in ("run", "train", "simulate", "compare", "report"))
    assert pos["run"] < pos["train"] < pos["simulate"] < pos["compare"] < pos["report"]
    assert everyday < pos["hw"] < pos["calibrate"] and everyday < pos["validate"]


def test_help_shows_defaults_and_the_run_folder(capsys):
    text = _out(["run", "--help"], capsys)
    assert "runs/experiment" in " ".join(text.split())  # the folder `accelsim run` really uses without a file
    assert "[default: bert-tiny]" in " ".join(_out(["train", "--help"], capsys).split())


def test_quick_sweep_measures_at_the_thread_count_validate_scores():
    import torch

    from accelsim.kernels.bench import BenchConfig

    # () = torch's thread count, all cores: what a profile of this machine (compute.count) is validated at
    assert BenchConfig.quick().threads == () and torch.get_num_threads() >= 1
