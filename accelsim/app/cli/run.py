"""`accelsim run [EXPERIMENT.yaml]`: train, simulate on every profile and report (thin over accelsim.app.experiment)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def run_command(
        experiment: Optional[Path] = typer.Argument(None, help="experiment YAML (see examples/experiment.yaml); "
                                                               "default: the embedded bert-tiny dense/RigL/SET one"),
        quick: bool = typer.Option(False, "--quick", help="smoke test: fewer steps, smaller batch and sequences"),
        out: Optional[Path] = typer.Option(None, "--out", help="output directory [default: runs/<stem of the "
                                                               "experiment file>, or runs/experiment for the "
                                                               "embedded one; '-quick' appended with --quick]"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress and no table; errors only"),
        as_json: bool = typer.Option(False, "--json", help="print the result (runs, report files, summary) as JSON"),
) -> None:
    """Train an experiment's runs, simulate them on every profile, write report.html and report.md."""
    from accelsim.app.experiment import default_experiment, load_experiment, run_experiment

    exp = load_experiment(experiment) if experiment is not None else default_experiment()
    stem = experiment.stem if experiment is not None else "experiment"
    out = out or Path("runs") / (f"{stem}-quick" if quick else stem)
    from accelsim.app.cli._notes import warn_foreign_cpus

    warn_foreign_cpus(exp.hardware_names())  # before the training: a wrong profile is cheaper to see early
    result = run_experiment(exp, out, quick=quick, progress=not (quiet or as_json))
    summary = json.loads(result.report["json"].read_text())["summary"] if "json" in result.report else []
    if as_json:
        print(json.dumps({**result.to_dict(), "summary": summary}, indent=2))
        return
    if quiet:
        return
    from rich.console import Console

    from accelsim.report.tables import HwRow, rich_table, summary_table

    head, body = summary_table([HwRow(**r) for r in summary])
    title = (f"{out}  ({len(result.runs)} runs x {len(result.hardware)} hardware, target loss "
             f"{'-' if result.target_loss is None else f'{result.target_loss:g}'}, {result.wall_s:.0f} s)")
    console = Console()
    console = console if console.is_terminal else Console(width=180)  # piped: do not squeeze to 80 columns
    console.print(rich_table(head, body, title))
    done = ", ".join(f"{r.name}: {r.status}" for r in result.runs)
    console.print(f"runs: {done}; {result.simulated} simulation(s) run, the others were up to date")
    console.print(f"report: {result.report.get('html')}  and  {result.report.get('md')}")


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
