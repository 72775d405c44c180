"""`accelsim hw ...`: list, show and check hardware profiles (thin layer over accelsim.hardware)."""
from __future__ import annotations

from pathlib import Path

import typer

hw_app = typer.Typer(help="Hardware profiles (hwconfigs/*.yaml): list, show, check.", no_args_is_help=True)


@hw_app.command("list")
def list_command() -> None:
    """Bundled profiles: kind, training dtype, peak, memory and the sparsity they exploit."""
    from rich.console import Console
    from rich.table import Table

    from accelsim.hardware import list_profiles, load_profile
    from accelsim.hardware.describe import summary

    table = Table(title="hardware profiles")
    for col in ("name", "kind", "dtype", "peak", "memory", "exploits"):
        table.add_column(col, overflow="fold")
    for name in list_profiles():
        row = summary(load_profile(name))
        table.add_row(*(row[c] for c in ("name", "kind", "dtype", "peak", "memory", "exploits")))
    Console().print(table)


@hw_app.command("show")
def show_command(name: str = typer.Argument(..., help="bundled profile name or path to a YAML file")) -> None:
    """Every field of a profile with its source; assumptions are flagged."""
    from rich.console import Console
    from rich.table import Table

    from accelsim.hardware import load_profile
    from accelsim.hardware.describe import field_rows

    profile = load_profile(name)
    table = Table(title=f"{profile.name}: {profile.description}")
    table.add_column("field", no_wrap=True)
    table.add_column("value")
    table.add_column("source / assumption", overflow="fold")
    shown: set[str] = set()
    for row in field_rows(profile):
        text = f"(see {row.covered_by})" if row.covered_by in shown else row.provenance
        if row.covered_by:
            shown.add(row.covered_by)
        prov = f"[yellow]ASSUMPTION[/]: {text}" if row.assumption else text
        table.add_row(row.field, row.value, prov)
    console = Console()
    console.print(table)
    if profile.fitted:
        console.print(f"[cyan]fitted[/]: {profile.fitted}")
    n_asm = sum(r.assumption for r in field_rows(profile))
    console.print(f"{n_asm} field(s) rest on assumptions; source file: {profile.source_file}")


@hw_app.command("check")
def check_command(file: Path = typer.Argument(..., help="hardware profile YAML to validate")) -> None:
    """Validate a profile: prints 'ok' or one error line naming the field (exit status 2)."""
    from accelsim.hardware import load_profile

    load_profile(file)
    print("ok")


def register(app: typer.Typer) -> None:
    app.add_typer(hw_app, name="hw")
