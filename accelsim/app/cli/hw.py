"""`accelsim hw ...`: list, show and check hardware profiles (thin layer over accelsim.hardware)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

hw_app = typer.Typer(help="Hardware profiles (hwconfigs/*.yaml): list, show, check.", no_args_is_help=True)


@hw_app.command("list")
def list_command() -> None:
    """Bundled profiles: kind, training dtype, peak, memory, the sparsity they exploit and what their figures rest on."""
    from rich.console import Console
    from rich.table import Table

    from accelsim.hardware import list_profiles, load_profile
    from accelsim.hardware.describe import summary

    table = Table(title="hardware profiles")
    cols = ("name", "kind", "dtype", "peak", "memory", "exploits", "basis")
    for col in cols:
        table.add_column(col, overflow="fold", no_wrap=col == "name")  # a name is what users copy into --hw
    for name in list_profiles():
        row = summary(load_profile(name))
        table.add_row(*(row[c] for c in cols))
    console = Console()
    (console if console.is_terminal else Console(width=180)).print(table)  # piped: do not squeeze to 80 columns


@hw_app.command("show")
def show_command(hw: str = typer.Argument(..., metavar="HW", help="profile name or YAML file")) -> None:
    """Every field of a profile with its source; assumptions are flagged."""
    from rich.console import Console
    from rich.table import Table

    from accelsim.hardware import load_profile
    from accelsim.hardware.describe import field_rows

    profile = load_profile(hw)
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
        from accelsim.kernels.published_report import print_fitted

        print_fitted(profile, console)
    from accelsim.kernels.machine import cpu_profile_note

    note = cpu_profile_note(profile)
    if note:
        console.print(f"[yellow]warning[/]: {note[0]}" if note[1] else note[0], soft_wrap=True)
    n_asm = sum(r.assumption for r in field_rows(profile))
    console.print(f"{n_asm} field(s) rest on assumptions; source file: {profile.source_file}")


@hw_app.command("check")
def check_command(hw: str = typer.Argument(..., metavar="HW", help="profile name or YAML file to validate")) -> None:
    """Validate a profile: prints 'ok' or one error line naming the field (exit status 2)."""
    from accelsim.hardware import load_profile

    profile = load_profile(hw)
    print(f"ok: {profile.name} ({profile.source_file})")


@hw_app.command("calibrate-local")
def calibrate_local_command(
        out: Path = typer.Option(Path("runs/calibrate-local"), "--out",
                                 help="directory for the profile and its measurements"),
        name: Optional[str] = typer.Option(None, "--name", help="profile name [default: cpu-f<family>m<model> "
                                                                "of this CPU]"),
        quick: bool = typer.Option(False, "--quick", help="seconds, not minutes: a smoke test (too few points "
                                                          "for a trustworthy error)"),
        threads: Optional[int] = typer.Option(None, "--threads", min=1, help="measure at this many threads and "
                                              "scale to all cores [default: all cores; 1, timed by CPU time, "
                                              "when other processes use over half of the CPUs]"),
) -> None:
    """Fit a profile of this machine's CPU in ~10 minutes: clock, FMA peak, cache/memory bandwidths, vector
    ops and a short kernel sweep; prints the held-out error on the sweep's own held-out cases."""
    from accelsim.kernels.local import LocalConfig, calibrate_local

    import dataclasses

    config = dataclasses.replace(LocalConfig.quick() if quick else LocalConfig(), threads=threads)
    s = calibrate_local(out, name=name, config=config)
    held = s["heldout"] or {}
    at = f", at {s['threads']} thread(s)" if s["threads"] != s["cores"] else ""
    print(f"wrote {s['profile']} in {s['wall_s'] / 60:.1f} min: clock {s['clock_GHz']:.2f} GHz, fp32 peak "
          f"{s['peak_fp32_GFLOPs']:.0f} GFLOP/s, copy L2/L3/DRAM "
          + "/".join(f"{v:.0f}" for v in s["bandwidth_GBps"].values()) + " GB/s")
    print(f"held-out error on its own sweep: {100 * s['heldout_mape']:.1f} % MAPE over {held.get('n', 0)} cases "
          f"(train {100 * s['train_mape']:.1f} %{at}); "
          f"use it with --hw {s['profile']}")


def register(app: typer.Typer) -> None:
    app.add_typer(hw_app, name="hw")
