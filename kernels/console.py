"""Rich console tables for kernel measurements, calibrations and validations (`accelsim kernels ...` output;
the data live in kernels.records; the HTML/Markdown run reports are accelsim.report)."""
from __future__ import annotations

import contextlib
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from accelsim.kernels.registry import Choice


def _ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:.3f}"


_SHORT_OP = {"matmul": "fwd", "matmul_dx": "dx", "matmul_dw": "dw", "fff": "fff"}


def _console(console: Console | None) -> Console:
    if console is not None:
        return console
    c = Console()
    return c if c.is_terminal else Console(width=150)  # piped output: do not squeeze to 80 columns


def print_table(doc: dict, console: Console | None = None) -> None:
    console = _console(console)
    mach = doc["machine"]
    table = Table(title=f"{mach['cpu_model']} · {mach['logical_cores']} cores · "
                        f"{' '.join(mach['isa_flags'][-4:])} · torch {mach['torch']}")
    for col in ("op", "m×k×n", "pattern", "density", "thr", "winner", "ms", "dense ms", "speedup",
                "frac ideal", "best sparse (speedup)"):
        table.add_column(col, justify="left" if col in ("op", "pattern", "winner", "best sparse (speedup)")
                         else "right")
    for r in doc["records"]:
        sp = r["speedup_vs_dense"]
        speed = f"[green]{sp:.2f}x[/]" if sp >= 1.05 else f"{sp:.2f}x"
        best = f"{r['sparse_path']} ({r['sparse_speedup_vs_dense']:.2f}x)" if r.get("sparse_path") else "-"
        pattern = f"fff {r['trees']}x{r['depth']}" if r["op"] == "fff" else r["pattern"]
        table.add_row(_SHORT_OP[r["op"]], f"{r['m']}×{r['k']}×{r['n']}", pattern, f"{r['density']:.4g}",
                      str(r["threads"]), r["path"], _ms(r["median_s"]), _ms(r["dense_s"]), speed,
                      f"{r['fraction_of_ideal']:.2f}", best)
    console.print(table)


def print_choice(choice: Choice, console: Console | None = None) -> None:
    console = _console(console)
    c = choice.case
    table = Table(title=f"{c.op} {c.tokens}×{c.d_in}→{c.d_out} {c.pattern} density {choice.density_actual:.4g} "
                        f"({choice.threads} threads, {choice.device})")
    for col in ("path", "median ms", "vs dense", "layout"):
        table.add_column(col)
    for name, t in sorted(choice.times.items(), key=lambda kv: kv[1]):
        mark = " ◀ fastest" if name == choice.winner else ""
        table.add_row(name + mark, _ms(t), f"{choice.dense_s / t:.2f}x", choice.layouts.get(name, ""))
    for name, why in choice.rejected.items():
        table.add_row(f"[dim]{name}[/]", "-", "-", f"[dim]{why}[/]")
    console.print(table)


@contextlib.contextmanager
def progress_printer():
    """A progress callback for run_bench: a bar on a terminal, one line per record otherwise (logs)."""
    if not sys.stderr.isatty():
        def line(done: int, total: int, rec: dict) -> None:
            print(f"[{done}/{total}] {rec['op']} {rec['m']}x{rec['k']}x{rec['n']} {rec['pattern']} "
                  f"{rec['density']:g} t{rec['threads']}: {rec['path']} {rec['median_s'] * 1e3:.3f} ms "
                  f"(dense {rec['dense_s'] * 1e3:.3f} ms)", file=sys.stderr, flush=True)
        yield line
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("kernels", total=None)

        def update(done: int, total: int, rec: dict) -> None:
            what = f"{rec['op']} {rec['m']}×{rec['k']}×{rec['n']} {rec['pattern']} {rec['density']:g}"
            bar.update(task, completed=done, total=total, description=what)
        yield update


def print_calibration(cal, console: Console | None = None) -> None:
    console = _console(console)
    f = cal.fitted
    table = Table(title=f"{f['base_profile']} fitted on {f['n_points']} points "
                        f"({f['n_heldout']} held out) · train MAPE {f['train_mape']:.1%} "
                        f"(before: {f['train_mape_initial']:.1%})")
    for col in ("parameter", "initial", "fitted"):
        table.add_column(col, justify="left" if col == "parameter" else "right")
    for k, v in f["params"].items():
        table.add_row(k, f"{f['initial'][k]:.4g}", f"{v:.4g}")
    console.print(table)
    if f["skipped"]:
        console.print("not modelled: " + ", ".join(f"{k} ({n})" for k, n in f["skipped"].items()))


def print_validation(report: dict, console: Console | None = None) -> None:
    console = _console(console)
    console.print(f"[bold]{report['profile']}[/] on {report['measurements']}: {report['mode']}, "
                  f"{report['n_points']} points, overall MAPE {report['overall_mape']['mape']:.1%}")
    noise = (report.get("round_noise") or {}).get("all")
    if noise:
        console.print(f"round-to-round spread of the measurements (first vs second half of each case's rounds): "
                      f"mean {noise['mean']:.1%}, median {noise['median']:.1%}")
    noise = (report.get("round_noise_paired") or {}).get("all")
    if noise:
        console.print(f"the same for sparse kernels paired with the dense baseline timed beside them: "
                      f"mean {noise['mean']:.1%}, median {noise['median']:.1%}")
    raw = (report.get("raw") or {}).get("overall") or {}
    if raw.get("n"):
        console.print(f"MAPE against the plain medians (unpaired): {raw['mape']:.1%}")
    sp = report.get("speedup") or {}
    if sp.get("n"):
        console.print(f"sparse-over-dense speedups, predicted vs measured: median |log err| {sp['median_abs_log_err']:.3f}"
                      f", {sp['within_1.35x']:.0%} within 1.35x, median predicted / measured {sp['median_ratio']:.2f} "
                      f"({sp['n']} points)")
    if report.get("machine_mismatch"):
        console.print(f"[yellow]warning:[/] the profile was calibrated on another machine than these "
                      f"measurements ({report['machine_mismatch']})")
    views = [("by pattern", report["mape_by_pattern"]), ("by kernel", report["mape_by_kernel"])]
    if report.get("off_shape"):  # shapes the fit never saw (issue 20), beside the other cases of its own shapes
        on, off = report["on_grid"], report["off_shape"]
        console.print(f"on-grid (shapes the fit saw): {on['overall']['mape']:.1%} over {on['overall']['n']} points; "
                      f"[bold]off-shape[/] (shapes held out whole): {off['overall']['mape']:.1%} over "
                      f"{off['overall']['n']} points")
        views[1:1] = [("on-grid, by pattern", on["by_pattern"]), ("off-shape, by pattern", off["by_pattern"])]
    for title, groups in views:
        table = Table(title=title)
        for col in ("group", "n", "MAPE", "median predicted/measured"):
            table.add_column(col, justify="left" if col == "group" else "right")
        for k, g in groups.items():
            table.add_row(k, str(g["n"]), f"{g['mape']:.1%}", f"{g['median_ratio']:.2f}")
        console.print(table)
