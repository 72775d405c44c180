"""`accelsim report`, `accelsim compare` and `accelsim plot speedup` (thin over accelsim.report)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from accelsim.app.cli._format import HELP as FORMAT_HELP
from accelsim.app.cli._format import pick_format
from accelsim.errors import UserError

plot_app = typer.Typer(help="Figures across runs (PNG and SVG).", no_args_is_help=True)



def _split(text: str | None, field: str) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UserError("expected a comma-separated list", field=field)
    return items


def _hardware(hw: str | None, run_paths: list[Path]) -> tuple[list[str] | None, list[str]]:
    """(names to show, profiles to simulate where a run lacks them). None shows what is stored."""
    from accelsim.hardware import list_profiles, load_profile
    from accelsim.report.data import load_sims

    items = _split(hw, "--hw")
    if items is None:
        return None, []
    if items == ["all"]:
        items = list_profiles()
    stored = {name for p in run_paths for name in load_sims(p)}
    names, to_sim = [], []
    for h in items:
        if h in stored and all(h in load_sims(p) for p in run_paths):
            names.append(h)
        else:
            prof = load_profile(h)  # a UserError names the bad profile
            names.append(prof.name)
            to_sim.append(h)
    return names, to_sim


def _ensure(run_paths: list[Path], to_sim: list[str], target: float | None, progress: bool) -> None:
    if to_sim:
        from accelsim.app.experiment import simulate_runs

        simulate_runs(run_paths, to_sim, target_loss=target, only_missing=True, progress=progress)


def report_command(
        runs: List[Path] = typer.Argument(..., metavar="RUN", help="run directories and/or experiment directories"),
        out: Optional[Path] = typer.Option(None, "--out", help="output directory [default: the experiment "
                                                               "directory, the run directory, or runs/report]"),
        hw: Optional[str] = typer.Option(None, "--hw", help="hardware to show (comma-separated, or 'all'); "
                                                            "missing simulations are run [default: all stored]"),
        target_loss: Optional[float] = typer.Option(None, "--target-loss", help="loss for time-to-target "
                                                                                "[default: the simulations' own]"),
        validation: Optional[List[Path]] = typer.Option(None, "--validation", metavar="FILE", help="validation.json from `accelsim "
                                                        "validate` [default: found next to the runs]"),
        quiet: bool = typer.Option(False, "--quiet", help="print nothing"),
        as_json: bool = typer.Option(False, "--json", help="print the written files as JSON"),
) -> None:
    """Write report.html (self-contained) and report.md for runs and their simulations."""
    from accelsim.report import build_report, expand_inputs

    paths, experiments = expand_inputs(runs)
    names, to_sim = _hardware(hw, paths)
    _ensure(paths, to_sim, target_loss, not (quiet or as_json))
    if out is None:
        out = experiments[0] if len(experiments) == 1 and len(runs) == 1 else (
            runs[0] if len(runs) == 1 else Path("runs/report"))
    files = build_report(runs, out, hardware=names, target_loss=target_loss, validation=validation)
    if as_json:
        print(json.dumps({k: str(v) for k, v in files.items()}, indent=2))
    elif not quiet:
        print(f"wrote {files['html']}, {files['md']} and {files['json']}")


def compare_command(
        runs: List[Path] = typer.Argument(..., metavar="RUN", help="run directories and/or experiment directories"),
        hw: Optional[str] = typer.Option(None, "--hw", help="hardware (comma-separated, or 'all'); missing "
                                                            "simulations are run [default: all stored]"),
        fmt: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
        as_json: bool = typer.Option(False, "--json", help="the same as --format json"),
        target_loss: Optional[float] = typer.Option(None, "--target-loss", help="loss for time-to-target"),
        dtype: Optional[str] = typer.Option(None, "--dtype", help="simulate the --hw profiles in this precision "
                                            "(fp32, tf32, bf16, fp16) instead of their own; shown as <hw>@<dtype>"),
) -> None:
    """Time, energy, speedup and energy-delay product of runs side by side, per hardware."""
    from accelsim.report import expand_inputs, hw_rows, load_run
    from accelsim.report.data import hardware_order, stored_target
    from accelsim.report.tables import rich_table, summary_table, to_csv

    fmt = pick_format(fmt, as_json)
    paths, _ = expand_inputs(runs)
    names, to_sim = _hardware(hw, paths)
    if dtype is not None:
        from accelsim.hardware.dtype import with_dtype

        if names is None:
            raise UserError("--dtype needs --hw (the profiles to simulate in that precision)", field="--dtype")
        to_sim = [with_dtype(h, dtype) for h in _split(hw, "--hw")]
        names = [p.name for p in to_sim]
    _ensure(paths, to_sim, target_loss, fmt == "table")
    loaded = [load_run(p) for p in paths]
    order = hardware_order(loaded, names)
    rows = hw_rows(loaded, order, target_loss if target_loss is not None else stored_target(loaded))
    if not rows:
        raise UserError("no stored simulations; pass --hw NAME[,NAME] (or 'all') to simulate", field="--hw")
    if fmt == "json":
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    elif fmt == "csv":
        print(to_csv(rows), end="")
    else:
        from rich.console import Console

        console = Console()
        console = console if console.is_terminal else Console(width=180)  # piped: do not squeeze to 80 columns
        console.print(rich_table(*summary_table(rows)))
        from accelsim.report.data import simulated_profiles
        from accelsim.report.summary import path_checks
        from accelsim.report.verdict import basis_summary, profile_info

        for note in path_checks(loaded, simulated_profiles(loaded, order)):
            console.print(("[yellow]warning:[/] " if note.warn else "") + note.text)
        info = profile_info(loaded, order)
        console.print(basis_summary(info, [h for h in order if not info[h].is_bound]) + " (`accelsim hw show NAME`)",
                      markup=False)


@plot_app.command("speedup")
def plot_speedup_command(
        runs: Optional[List[Path]] = typer.Argument(None, metavar="RUN", help="run or experiment directories (not with --synthetic)"),
        hw: Optional[str] = typer.Option(None, "--hw", help="hardware (comma-separated, or 'all') [default: all "
                                                            "stored; with --synthetic: all bundled]"),
        synthetic: Optional[str] = typer.Option(None, "--synthetic", help="BERT preset to sweep with synthetic "
                                                                          "traces, e.g. bert-base"),
        sparsities: str = typer.Option("0.5,0.8,0.9,0.95,0.99", "--sparsities", help="with --synthetic"),
        method: str = typer.Option("rigl", "--method", help="with --synthetic: the sparse-training method"),
        steps: int = typer.Option(10_000, "--steps", min=1, help="with --synthetic: steps per synthetic trace"),
        target_loss: Optional[float] = typer.Option(None, "--target-loss", help="line on the loss-vs-time plot"),
        out: Optional[Path] = typer.Option(None, "--out", help="directory for the figures [default: runs/plots, "
                                                               "or runs/plots/<model> with --synthetic]"),
        quiet: bool = typer.Option(False, "--quiet", help="print nothing"),
        as_json: bool = typer.Option(False, "--json", help="print the written files as JSON"),
) -> None:
    """Speedup and energy vs sparsity per hardware (with the ideal 1/density), and loss vs simulated time."""
    from accelsim.hardware import list_profiles
    from accelsim.report import expand_inputs, load_run, synthetic_sweep_runs, write_curves
    from accelsim.report.data import hardware_order, stored_target

    if synthetic:
        if runs:
            raise UserError("give run directories or --synthetic, not both", field="--synthetic")
        try:
            levels = [float(s) for s in _split(sparsities, "--sparsities")]
        except ValueError:
            raise UserError(f"expected numbers such as 0.5,0.9, got '{sparsities}'", field="--sparsities") from None
        hardware = _split(hw, "--hw") or ["all"]
        hardware = list_profiles() if hardware == ["all"] else hardware
        out = out or Path("runs/plots") / synthetic
        say = None if (quiet or as_json) else (lambda i, n, name: print(f"[{i}/{n}] simulated {name}"))
        paths = synthetic_sweep_runs(synthetic, levels, hardware, out / "traces", method=method, steps=steps,
                                     progress=say)
        names = None
    else:
        if not runs:
            raise UserError("expected run directories, or --synthetic MODEL", field="RUN")
        paths, _ = expand_inputs(runs)
        names, to_sim = _hardware(hw, paths)
        _ensure(paths, to_sim, target_loss, not (quiet or as_json))
        out = out or Path("runs/plots")
    loaded = [load_run(p) for p in paths]
    order = hardware_order(loaded, names)
    files = write_curves(loaded, order, out, target_loss if target_loss is not None else stored_target(loaded))
    if as_json:
        print(json.dumps([str(f) for f in files], indent=2))
    elif not quiet:
        print("wrote " + ", ".join(str(f) for f in files))


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
    app.command("compare")(compare_command)
    app.add_typer(plot_app, name="plot")
