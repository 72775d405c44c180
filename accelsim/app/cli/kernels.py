"""`accelsim kernels ...`: time the real sparse kernels; `accelsim calibrate` / `validate` profiles.

Thin layer over :mod:`kernels.bench`, :mod:`kernels.registry` and :mod:`kernels.calibrate`.
"""
from __future__ import annotations

from pathlib import Path

import typer

from accelsim.errors import UserError

kernels_app = typer.Typer(help="Measure the sparse kernels (CPU: MKL + C; GPU: Triton).", no_args_is_help=True)


def _split(text: str | None, cast, name: str) -> tuple | None:
    """'1,2' -> (1, 2); None stays None so the config default applies."""
    if text is None:
        return None
    try:
        return tuple(cast(v.strip()) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"expected a comma-separated list, got '{text}'", field=f"--{name}") from None


@kernels_app.command("bench")
def bench(
    quick: bool = typer.Option(False, "--quick", help="a few small shapes (< ~1 min on 2 cores)"),
    out: Path = typer.Option(Path("runs/kernels/measurements.json"), "--out", help="JSON output (CSV next to it)"),
    threads: str = typer.Option(None, "--threads", help="thread counts, e.g. 1,2 (default: torch's)"),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda"),
    tokens: str = typer.Option(None, "--tokens", help="token counts, e.g. 128,512"),
    hidden: str = typer.Option(None, "--hidden", help="hidden sizes, e.g. 256,768 (FFN is 4x)"),
    layers: str = typer.Option(None, "--layers", help="layer kinds: ffn_in, ffn_out, attn"),
    densities: str = typer.Option(None, "--densities", help="e.g. 1,0.1,0.05"),
    patterns: str = typer.Option(None, "--patterns", help="unstructured, 2:4, block16, block32"),
    ops: str = typer.Option(None, "--ops", help="matmul, matmul_dx, matmul_dw"),
    repeats: int = typer.Option(None, "--repeats", help="interleaved samples per path (median reported)"),
    dtype: str = typer.Option(None, "--dtype", help="float32 (CPU); float16/bfloat16 on cuda"),
    max_gflop: float = typer.Option(None, "--max-gflop", help="skip products above this many dense GFLOP"),
    quiet_below: float = typer.Option(None, "--quiet-below", help="before each case wait until other processes "
                                      "use less than this share of the CPUs (e.g. 0.1; default off)"),
    fff: str = typer.Option(None, "--fff", help="FFF layers KxD timed against the dense FF, e.g. 1x7,1x11; "
                            "'none' for no FFF cases"),
    rounds: int = typer.Option(None, "--rounds", help="measure the whole case list this many times; each path's "
                               "time is the median over rounds (slow spells of a shared machine)"),
    only_paths: str = typer.Option(None, "--paths", help="time only these kernel paths (dense_torch always), "
                                   "e.g. csr_torch,blocksparse_c"),
) -> None:
    """Sweep BERT-shaped sparse products and write measurements (JSON + CSV)."""
    from accelsim.kernels.bench import BenchConfig, run_bench
    from accelsim.kernels.console import print_table, progress_printer

    overrides = {k: v for k, v in dict(
        threads=_split(threads, int, "threads"), tokens=_split(tokens, int, "tokens"),
        hidden=_split(hidden, int, "hidden"), layers=_split(layers, str, "layers"),
        densities=_split(densities, float, "densities"), patterns=_split(patterns, str, "patterns"),
        ops=_split(ops, str, "ops"), repeats=repeats, dtype=dtype, max_dense_gflop=max_gflop,
        quiet_below=quiet_below, rounds=rounds, paths=_split(only_paths, str, "paths"),
        fff=() if fff is not None and fff.strip().lower() == "none" else _split(fff, str, "fff"),
        device=device).items() if v is not None}
    cfg = BenchConfig.quick(**overrides) if quick else BenchConfig(**overrides)
    if cfg.paths:  # a misspelt path would silently time nothing but the dense baseline
        from accelsim.kernels.fff_bench import PATHS as FFF_PATHS
        from accelsim.kernels.registry import all_paths

        known = {p.name for p in all_paths(cfg.device)} | set(FFF_PATHS)  # the FFF cases' paths too (fff_walk)
        unknown = sorted(set(cfg.paths) - known)
        if unknown:
            raise UserError(f"unknown kernel paths {unknown}; expected some of {sorted(known)}", field="--paths")
    with progress_printer() as progress:
        doc = run_bench(cfg, out=out, progress=progress)
    print_table(doc)
    print(f"wrote {out} and {out.with_suffix('.csv')} ({len(doc['records'])} records, "
          f"{len(doc['skipped'])} skipped)")


@kernels_app.command("merge")
def merge(
    measurements: list[Path] = typer.Argument(..., metavar="MEASUREMENTS", help="measurement files of the same machine"),
    out: Path = typer.Option(..., "--out", help="merged JSON (CSV next to it)"),
    latest_only: list[str] = typer.Option([], "--latest-only", metavar="PATH",
                                          help="kernel path changed between the sweeps: keep only its newest file's rounds"),
) -> None:
    """Pool the rounds of several sweeps of one machine into one measurements file."""
    from accelsim.kernels.bench import write_measurements
    from accelsim.kernels.merge import merge_measurements

    doc = merge_measurements(measurements, tuple(latest_only))
    write_measurements(doc, out)
    rounds = [len(next(iter(r.get("times_rounds", {"": [0]}).values()))) for r in doc["records"]]
    print(f"wrote {out} and {out.with_suffix('.csv')} ({len(doc['records'])} records, "
          f"{min(rounds)}-{max(rounds)} rounds each)")


@kernels_app.command("pick")
def pick(
    op: str = typer.Option("matmul", "--op"),
    tokens: int = typer.Option(512, "--tokens"),
    d_in: int = typer.Option(768, "--d-in"),
    d_out: int = typer.Option(3072, "--d-out"),
    density: float = typer.Option(0.1, "--density"),
    pattern: str = typer.Option("unstructured", "--pattern"),
    threads: int = typer.Option(None, "--threads"),
    repeats: int = typer.Option(5, "--repeats"),
    device: str = typer.Option("cpu", "--device"),
    dtype: str = typer.Option("float32", "--dtype"),
) -> None:
    """Check and time every path of one case; print which won."""
    from accelsim.kernels.cases import Case
    from accelsim.kernels.registry import pick_fastest
    from accelsim.kernels.console import print_choice

    case = Case(op, tokens, d_in, d_out, density, pattern, dtype)
    print_choice(pick_fastest(case, device=device, threads=threads, repeats=repeats))


@kernels_app.command("paths")
def paths(device: str = typer.Option("cpu", "--device")) -> None:
    """List the registered kernel paths and whether they can run here."""
    from rich.console import Console
    from rich.table import Table

    from accelsim.kernels.registry import all_paths

    table = Table(title=f"kernel paths ({device})")
    for col in ("op", "path", "patterns", "status", "what"):
        table.add_column(col)
    for p in sorted(all_paths(device), key=lambda p: (p.op, p.name)):
        reason = p.available()
        table.add_row(p.op, p.name, ",".join(p.patterns), "ok" if not reason else f"unavailable: {reason}", p.doc)
    Console().print(table)


def calibrate(
    measurements: Path = typer.Argument(..., help="measurements JSON from `accelsim kernels bench`"),
    hw: str = typer.Option("cpu-zen3", "--hw", help="profile to refit (bundled name or YAML path)"),
    out: Path = typer.Option(..., "--out", help="fitted profile YAML to write"),
    threads: int = typer.Option(None, "--threads", help="use records at this thread count (default: the "
                                "profile's compute units)"),
) -> None:
    """Fit a profile's efficiency parameters to kernel measurements (held-out cases kept aside)."""
    from accelsim.kernels.calibrate import calibrate as run
    from accelsim.kernels.console import print_calibration

    cal = run(measurements, hw, out, threads=threads)
    print_calibration(cal)
    print(f"wrote {out}")


def validate(
    measurements: Path = typer.Argument(None, help="measurements JSON from `accelsim kernels bench` "
                                        "(not with --published)"),
    hw: str = typer.Option(None, "--hw", help="profile (usually the output of `accelsim calibrate`); with "
                           "--published: comma-separated dataset profiles (default: all)"),
    out: Path = typer.Option(None, "--out", help="directory for validation.json/.csv/.png (with --published: "
                             "published_validation.json/.png, default runs/published-validation)"),
    threads: int = typer.Option(None, "--threads", help="thread count of the records to use"),
    published: bool = typer.Option(False, "--published", help="predict the published measurements "
                                   "(benchmarks/published/points.csv) instead of a local sweep"),
) -> None:
    """Predict held-out measurements with a profile: per-kernel, per-pattern and overall error."""
    from accelsim.kernels.calibrate import validate as run
    from accelsim.kernels.console import print_validation

    if published:
        from accelsim.kernels.published_report import print_published

        if measurements is not None:
            raise UserError("--published predicts the bundled dataset; give no measurements file", field="--published")
        from accelsim.kernels.published_validate import validate_published

        report = validate_published(_split(hw, str, "hw"), out=out or Path("runs/published-validation"))
        print_published(report)
        for f in report.get("files", []):
            print(f"wrote {f}")
        return
    if measurements is None or hw is None:
        raise UserError("expected a measurements file and --hw (or --published)", field="validate")
    report = run(measurements, hw, out, threads=threads)
    print_validation(report)
    for f in report.get("files", []):
        print(f"wrote {f}")


def register(app: typer.Typer) -> None:
    app.add_typer(kernels_app, name="kernels")
    app.command("calibrate")(calibrate)
    app.command("validate")(validate)
