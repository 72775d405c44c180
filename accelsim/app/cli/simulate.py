"""`accelsim simulate RUN --hw ...` and the `accelsim trace synth` command (attached by cli/trace.py)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from accelsim.app.cli._format import HELP as FORMAT_HELP
from accelsim.app.cli._format import pick_format
from accelsim.errors import UserError


def _profiles(hw: str) -> list[str]:
    from accelsim.hardware import list_profiles

    names = [h.strip() for h in hw.split(",") if h.strip()]
    if not names:
        raise UserError("expected a profile name, a comma-separated list or 'all'", field="--hw")
    if names == ["all"]:
        return list_profiles()
    return names


def human_seconds(s: float | None) -> str:
    """A time as every command and the report print it (accelsim.report.units: one formatter for all)."""
    from accelsim.report.units import fmt_time

    return fmt_time(s)


def human_joules(j: float | None) -> str:
    from accelsim.report.units import fmt_energy

    return fmt_energy(j)


def _print_csv(results) -> None:
    """One row per profile, exact values in SI units (seconds, joules), as `compare --format csv`."""
    import csv
    import sys

    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(["hardware", "time_s", "energy_j", "speedup", "energy_ratio", "compute_util", "flop_util",
                "time_to_target_s"])
    for r in results:
        w.writerow([r.name, r.time_s, r.energy_j, r.speedup, r.energy_ratio, r.utilisation["compute"],
                    r.utilisation["flops"], "" if r.time_to_target_s is None else r.time_to_target_s])


def simulate_command(
        run: Path = typer.Argument(..., help="run directory (real or synthetic trace)"),
        hw: str = typer.Option(..., "--hw", help="profile name or YAML path, a comma-separated list, or 'all'"),
        devices: Optional[int] = typer.Option(None, "--devices", min=1, help="data-parallel devices (the batch is "
                                              "split) [default: the trace's world_size, 1 for one process]"),
        target_loss: Optional[float] = typer.Option(None, "--target-loss",
                                                    help="report time until the smoothed loss reaches this"),
        target_metric: Optional[str] = typer.Option(
            None, "--target-metric", help="NAME=VALUE (accuracy, f1, mcc): time to reach it, the run's "
                                          "pretraining (--from) and teacher runs included"),
        fmt: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
        as_json: bool = typer.Option(False, "--json", help="the same as --format json"),
        save: bool = typer.Option(True, "--save/--no-save", help="write sim/<hw>.json and the timeline"),
        dtype: Optional[str] = typer.Option(None, "--dtype", help="train in this precision (fp32, tf32, bf16, "
                                            "fp16) on every profile instead of its own; results as <hw>@<dtype>"),
) -> None:
    """Simulate a training trace on hardware profiles; compare with the same run trained dense."""
    from accelsim.app.cli.finetune import lineage_rows
    from accelsim.sim.api import simulate_many

    from accelsim.app.cli._notes import warn_foreign_cpus

    fmt = pick_format(fmt, as_json)
    if devices is None:  # a data-parallel trace is simulated on as many devices as it was trained on
        from accelsim.trace import read_manifest

        devices = read_manifest(Path(run)).world_size
        if devices > 1:  # a profile without a link cannot take the default: say how to get one device
            from accelsim.hardware import load_profile

            lonely = [h for h in _profiles(hw) if load_profile(h).link is None]
            if lonely:
                raise UserError(f"the trace was trained on {devices} processes, so --devices defaults to {devices}, "
                                f"but {', '.join(lonely)} has no 'link' section; pass --devices 1", field="--devices")
    from accelsim.hardware.dtype import with_dtype

    results = simulate_many(run, [with_dtype(h, dtype) for h in _profiles(hw)], devices, target_loss)
    warn_foreign_cpus(_profiles(hw))
    if save:
        for r in results:
            r.save(run)
    lineage = lineage_rows(run, _profiles(hw), devices, target_metric)  # None for a run without links
    if fmt == "json":
        print(json.dumps([{**r.to_dict(), **({"lineage": lin.to_dict()} if lineage else {})}
                          for r, lin in zip(results, lineage or results)], indent=2))
        return
    if fmt == "csv":
        _print_csv(results)
        return
    from rich.console import Console
    from rich.table import Table

    from accelsim.trace import read_manifest

    first = results[0]
    ffn = read_manifest(Path(run)).model.get("ffn") or {}
    fff = f"FFF {ffn['trees']}x{ffn['depth']}, " if ffn.get("type") == "fff" else ""
    title = f"{run}  ({fff}{first.method}, {first.steps} steps{', synthetic' if first.synthetic else ''}, " \
            f"{devices} device{'s' if devices > 1 else ''})"
    baseline = "trained dense" + (" with the dense FF of equal width" if fff else "")
    table = Table(title=title, caption=f"speedup and energy: vs the same steps {baseline} on the same hardware")
    for col in ("hw", "time", "energy", "speedup", "energy ratio", "util", "FLOP util"):
        table.add_column(col, justify="left" if col == "hw" else "right", no_wrap=True)
    if target_loss is not None:
        table.add_column(f"to loss {target_loss:g}", justify="right", no_wrap=True)
    for r in results:
        row = [r.name, human_seconds(r.time_s), human_joules(r.energy_j), f"{r.speedup:.2f}x",
               f"{r.energy_ratio:.2f}", f"{r.utilisation['compute']:.0%}", f"{r.utilisation['flops']:.0%}"]
        if target_loss is not None:
            row.append(human_seconds(r.time_to_target_s) if r.time_to_target_s is not None else "never")
        table.add_row(*row)
    console = Console()
    console.width = max(console.width, 110)  # pipes and CI logs default to 80 columns, too narrow
    console.print(table)
    if lineage:
        from accelsim.app.cli.finetune import lineage_table

        console.print(lineage_table(run, lineage))


def synth_command(
        model: str = typer.Option("bert-base", "--model", help="BERT preset: bert-tiny ... bert-large"),
        method: str = typer.Option("rigl", "--method", help="sparse-training method (dense, static, set, rigl, "
                                                            "snfs, gmp, nm, block-rigl, ...)"),
        sparsity: float = typer.Option(0.9, "--sparsity", help="overall sparsity of the encoder linears"),
        steps: int = typer.Option(1_000_000, "--steps", min=1),
        update_every: int = typer.Option(100, "--update-every", min=1, help="steps between mask updates"),
        batch_size: int = typer.Option(256, "--batch-size", min=1),
        seq_len: int = typer.Option(128, "--seq-len", min=1),
        distribution: str = typer.Option("erk", "--distribution", help="erk or uniform"),
        out: Path = typer.Option(Path("runs/synth"), "--out", help="run directory to create"),
        seed: int = typer.Option(0, "--seed"),
        redraw: bool = typer.Option(False, "--redraw", help="draw fresh masks at every change (slow)"),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing run directory"),
) -> None:
    """Write a synthetic trace (no training: FLOPs exact, loss curve a documented power law)."""
    from accelsim.synth import synth_trace

    path = synth_trace(model=model, method=method, sparsity=sparsity, steps=steps, update_every=update_every,
                       batch_size=batch_size, seq_len=seq_len, distribution=distribution, out=out, seed=seed,
                       redraw=redraw, overwrite=overwrite)
    print(f"wrote synthetic trace {path}")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
