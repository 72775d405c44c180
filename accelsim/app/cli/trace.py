"""`accelsim trace ...`: inspect and validate run directories (and synthesise traces)."""
from __future__ import annotations

import json
from pathlib import Path

import typer

trace_app = typer.Typer(help="Validate, summarise and synthesise traces.", no_args_is_help=True)


@trace_app.command("check")
def check(run: Path = typer.Argument(..., help="run directory"),
          as_json: bool = typer.Option(False, "--json", help="print the summary as JSON")) -> None:
    """Validate a run directory and print a summary."""
    from dataclasses import asdict

    from accelsim.trace_check import check_trace

    summary = check_trace(run)
    if as_json:
        print(json.dumps(asdict(summary), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"trace ok: {run}", show_header=False)
    for key, value in summary.rows():
        table.add_row(key, value)
    console = Console()
    console.print(table)
    for w in summary.warnings:
        console.print(f"[yellow]warning:[/] {w}")


def register(app: typer.Typer) -> None:
    import importlib.util

    # the synthetic-trace command lives with the simulator, which owns the synthetic generator
    if importlib.util.find_spec("accelsim.app.cli.simulate") is not None:
        from accelsim.app.cli.simulate import synth_command

        if "synth" not in {c.name for c in trace_app.registered_commands}:
            trace_app.command("synth")(synth_command)
    app.add_typer(trace_app, name="trace")
