"""`accelsim sweep SWEEP.yaml`: trials of trainer settings x hardware profiles (accelsim.app.sweep)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def sweep_command(
        sweep_file: Path = typer.Argument(..., help="sweep YAML: profiles, space (grid or random), fixed settings"),
        engine: str = typer.Option("local", "--engine", help="local (process pool) | ray (Ray tasks)"),
        address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: start a "
                                              "local Ray for this command)"),
        cpus: Optional[int] = typer.Option(None, "--cpus", min=1, help="CPUs of the local Ray [default: all]"),
        out: Optional[str] = typer.Option(None, "--out", help="sweep directory [default: the file's `out`, or "
                                          "runs/sweeps/<file stem>]"),
) -> None:
    """Run every trial of a sweep file (skipping finished ones); write results.parquet and report.md."""
    from accelsim.app.sweep import SweepConfig, run_sweep

    cfg = SweepConfig.load(sweep_file)
    if out:
        cfg.out = out
    res = run_sweep(cfg, engine=engine, address=address, cpus=cpus)
    done = "all trials were finished already" if not res.ran else f"ran {len(res.ran)} trial(s)"
    print(f"{done}; {len(res.failed)} did not finish; table {res.table}; report {res.report}")


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep_command)
