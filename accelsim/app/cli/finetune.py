"""`accelsim finetune --from RUN --task TASK --out RUN2`: thin CLI over trainer.finetune."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer


def finetune_command(
    parent: Path = typer.Option(..., "--from", help="pretraining run directory (accelsim train --out)"),
    task: str = typer.Option("corpus-pairs", help="corpus-pairs (offline: adjacent-vs-random sentences of the "
                                                  "parent's corpus) or a GLUE task: cola, sst2, mrpc, qqp, mnli, "
                                                  "qnli, rte, wnli"),
    out: Path = typer.Option(..., "--out", help="run directory to write the fine-tuning trace to"),
    data: Optional[Path] = typer.Option(None, "--data", help="GLUE TSV files (task dir or glue_data root); "
                                                             "default: the hub"),
    method: str = typer.Option("keep", help="keep (parent's masks fixed) | continue (parent's method goes on) | "
                                            "dense | gmp (prune to --sparsity by magnitude) | movement (same "
                                            "schedule, movement scores)"),
    sparsity: float = typer.Option(0.0, help="gmp: target sparsity of the encoder linears"),
    update_every: int = typer.Option(10, help="gmp: steps between pruning steps"),
    teacher: Optional[Path] = typer.Option(None, "--teacher", help="dense finetune run of the same task to distill from"),
    kd: str = typer.Option("logits", "--kd", help="distillation: logits | hidden (adds hidden-state MSE, SPD-style)"),
    kd_alpha: float = typer.Option(0.5, "--kd-alpha", help="weight of the distillation loss against the task loss"),
    kd_temperature: float = typer.Option(2.0, "--kd-temperature"),
    steps: int = typer.Option(300, min=1),
    batch_size: int = typer.Option(32, min=1),
    seq_len: Optional[int] = typer.Option(None, help="tokens per example [default: the parent's]"),
    lr: float = typer.Option(3e-4, help="peak learning rate (AdamW, linear warm-up and decay)"),
    seed: int = typer.Option(0),
    eval_every: int = typer.Option(25, min=1),
    max_train: Optional[int] = typer.Option(None, help="use only the first N training examples"),
    threads: Optional[int] = typer.Option(None, help="torch threads"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    as_json: bool = typer.Option(False, "--json", help="print the trace summary as JSON"),
) -> None:
    """Fine-tune a pretrained run's encoder on a classification task and write its trace (phase finetune)."""
    from dataclasses import asdict

    from accelsim.errors import UserError
    from accelsim.trace import load_trace
    from accelsim.trace_check import check_trace
    from accelsim.trainer.distill import KDConfig
    from accelsim.trainer.finetune import FinetuneConfig, finetune

    cfg = FinetuneConfig(parent=str(parent), out=str(out), task=task, data_dir=str(data) if data else None,
                         method=method, sparsity=sparsity, update_every=update_every,
                         teacher=str(teacher) if teacher else None,
                         kd=KDConfig(mode=kd, alpha=kd_alpha, temperature=kd_temperature), steps=steps,
                         batch_size=batch_size, seq_len=seq_len, lr=lr, seed=seed, eval_every=eval_every,
                         max_train=max_train, threads=threads)
    try:
        run = finetune(cfg, progress=not quiet and not as_json)
    except KeyboardInterrupt:
        raise UserError(f"interrupted; the trace of the finished steps in {out} is valid but has no checkpoint") from None
    summary = check_trace(run)
    ev = load_trace(run).eval
    final = {k: ev[k][-1].as_py() for k in ("eval_accuracy", "eval_f1", "eval_mcc")} if ev.num_rows else {}
    if as_json:
        print(json.dumps({**asdict(summary), "final_metrics": final}, indent=2))
    elif not quiet:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"fine-tuning trace written: {run}", show_header=False)
        for key, value in summary.rows() + [(k, f"{v:.4f}") for k, v in final.items()]:
            table.add_row(key, value)
        Console().print(table)


def lineage_rows(run: Path, profiles: list[str], devices: int, target_metric: str | None):
    """Lineage results per profile for `accelsim simulate`, or None when the run has no parent or teacher
    and no target metric was asked for."""
    from accelsim.sim.lineage import linked_runs, parse_target_metric, simulate_lineage

    from accelsim.errors import UserError

    target = parse_target_metric(target_metric) if target_metric else None
    if target is None:
        try:
            if len(linked_runs(run)) == 1:
                return None
        except UserError as err:  # a moved parent must not break simulating the run itself
            print(f"accelsim: warning: no lineage sum: {err}", file=sys.stderr)
            return None
    return simulate_lineage(run, profiles, devices, target)


def lineage_table(run: Path, lineage):
    """Rich table: per profile, each run's simulated time, the sum, and the time to the target metric."""
    from rich.table import Table

    from accelsim.app.cli.simulate import human_seconds

    first = lineage[0]
    names = [Path(r.run).name for r in first.runs]
    table = Table(title=f"lineage of {run}: {' + '.join(f'{n} ({r.phase})' for n, r in zip(names, first.runs))}",
                  caption="all steps of every earlier run count; the target is checked at the last run's evaluations")
    for col in ["hw", *names, "total", "energy"]:
        table.add_column(col, justify="left" if col == "hw" else "right", no_wrap=True)
    if first.metric:
        label = first.metric.removeprefix("eval_")
        table.add_column(f"to {label} {first.target:g}", justify="right", no_wrap=True)
        table.add_column(f"final {label}", justify="right", no_wrap=True)
    from accelsim.app.cli.simulate import human_joules

    for res in lineage:
        row = [res.hardware, *(human_seconds(r.time_s) for r in res.runs), human_seconds(res.time_s),
               human_joules(res.energy_j)]
        if res.metric:
            row.append(human_seconds(res.time_to_target_s) if res.time_to_target_s is not None else "never")
            row.append(f"{res.final_value:.3f}" if res.final_value is not None else "-")
        table.add_row(*row)
    return table


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune_command)
