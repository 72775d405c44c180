"""`accelsim train`: thin CLI over trainer.train."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

from accelsim.errors import UserError


def _parse_nm(nm: str) -> tuple[int, int]:
    try:
        n, m = (int(x) for x in nm.split(":"))
    except ValueError:
        raise UserError(f"expected N:M such as 2:4, got {nm!r}", field="--nm") from None
    if not 0 < n < m:
        raise UserError(f"expected 0 < N < M, got {nm!r}", field="--nm")
    return n, m


def train_command(
    model: str = typer.Option("bert-tiny", help="preset (bert-tiny|mini|small|medium|base) or a local model dir"),
    ffn: str = typer.Option("dense", help="feedforward type: dense | fff:KxD (UltraSparseBERT: K trees of depth D)"),
    method: str = typer.Option("dense", help="sparsity method (dense, static, gmp, set, rigl, snfs, nm, block-*)"),
    sparsity: float = typer.Option(0.0, help="target sparsity of the sparse layers, in [0, 1)"),
    steps: Optional[int] = typer.Option(None, help="training steps [default: 300]"),
    out: str = typer.Option("runs/default", help="run directory to write the trace to"),
    batch_size: int = typer.Option(32, help="sequences per step"),
    seq_len: int = typer.Option(128, help="tokens per sequence"),
    lr: float = typer.Option(2e-3, help="peak learning rate (AdamW)"),
    seed: int = typer.Option(0),
    distribution: str = typer.Option("erk", help="layer density distribution: uniform | erk"),
    update_every: int = typer.Option(100, help="steps between mask updates (delta T)"),
    drop_fraction: float = typer.Option(0.3, help="initial drop/regrow fraction (cosine decay)"),
    end_fraction: float = typer.Option(0.75, help="stop mask updates after this fraction of training"),
    init: str = typer.Option("random", help="initial masks: random | magnitude"),
    nm: str = typer.Option("2:4", help="N:M pattern for --method nm"),
    block_size: int = typer.Option(16, help="block size for block methods"),
    sparse_roles: str = typer.Option("q,k,v,attn_out,ffn_in,ffn_out", help="which encoder Linear roles are sparse"),
    text_files: Optional[str] = typer.Option(None, help="glob of text files to train on"),
    dataset: Optional[str] = typer.Option(None, help="datasets hub name NAME[:CONFIG] (needs network)"),
    tokenizer: Optional[str] = typer.Option(None, help="local tokenizer directory"),
    vocab_size: int = typer.Option(8192, help="WordPiece vocabulary size when training a tokenizer"),
    eval_every: int = typer.Option(50),
    checkpoint_every: int = typer.Option(50, help="checkpoint and trace flush interval"),
    save_masks: str = typer.Option("auto", help="auto | none | N (store every N-th mask change)"),
    threads: Optional[int] = typer.Option(None, help="torch threads"),
    execute: str = typer.Option("masked", help="masked (dense products on zeroed weights) | sparse (CPU sparse "
                                "kernels, per-product path chosen by --execute-profile's cost model)"),
    execute_profile: str = typer.Option("cpu-zen3", help="profile (name or YAML) whose path choice --execute "
                                        "sparse follows: one calibrated on this machine"),
    nproc: int = typer.Option(1, "--nproc", min=1, help="data-parallel processes on this machine (torchrun's "
                              "elastic agent, DDP); --batch-size is the global batch"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    as_json: bool = typer.Option(False, "--json", help="print the trace summary as JSON"),
) -> None:
    """Train a BERT with a sparsity method and write its trace."""
    from dataclasses import asdict

    from accelsim.trace_check import check_trace
    from accelsim.trainer.data import DataConfig
    from accelsim.trainer.sparsity import SparsityConfig
    from accelsim.trainer.train import TrainConfig, train

    n, m = _parse_nm(nm)
    cfg = TrainConfig(
        model=model, ffn=ffn, out=out, steps=steps if steps is not None else (0 if resume else 300),
        batch_size=batch_size, lr=lr, seed=seed, eval_every=eval_every, checkpoint_every=checkpoint_every,
        save_masks=save_masks, threads=threads, execute=execute, execute_profile=execute_profile,
        sparse_roles=tuple(r.strip() for r in sparse_roles.split(",") if r.strip()),
        data=DataConfig(text_files=text_files, dataset=dataset, tokenizer=tokenizer, vocab_size=vocab_size,
                        seq_len=seq_len),
        sparsity=SparsityConfig(method=method, sparsity=sparsity, distribution=distribution,
                                update_every=update_every, drop_fraction=drop_fraction, end_fraction=end_fraction,
                                init=init, n=n, m=m, block_size=block_size),
    )
    try:
        if nproc > 1:
            _launch(cfg, nproc, resume)
            run = Path(out)
        else:
            run = train(cfg, resume=resume, progress=not quiet and not as_json,
                        overrides=_given_fields() if resume else None)
    except KeyboardInterrupt:
        raise UserError(f"interrupted; the trace up to the last flushed step is valid; continue with "
                        f"`accelsim train --out {out} --resume`") from None
    if os.environ.get("RANK", "0") != "0":  # under torchrun: rank 0 alone reports the trace it wrote
        return
    summary = check_trace(run)
    if as_json:
        print(json.dumps(asdict(summary), indent=2))
    elif not quiet:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"trace written: {run}", show_header=False)
        for key, value in summary.rows():
            table.add_row(key, value)
        Console().print(table)


def _launch(cfg, nproc: int, resume: bool) -> None:
    """Check what can be checked before starting processes, so a user mistake is one line, not N."""
    from accelsim import trace as tr
    from accelsim.errors import expect
    from accelsim.trainer.distributed import launch

    if not resume:
        cfg.validate()
        expect(not tr.manifest_path(Path(cfg.out)).exists(),
               "already holds a trace; pass --resume to continue it or choose another --out", source=cfg.out)
        expect(cfg.batch_size % nproc == 0, f"expected a batch size divisible by --nproc {nproc}, got "
               f"{cfg.batch_size}", field="--batch-size")
    launch(cfg, nproc, resume)


_SPARSITY = ("method", "sparsity", "distribution", "update_every", "drop_fraction", "end_fraction", "init",
             "block_size")
_DATA = ("seq_len", "text_files", "dataset", "tokenizer", "vocab_size")
_NOT_CONFIG = ("out", "resume", "quiet", "as_json", "nproc")


def _given_fields() -> set[str]:
    """Config fields the user typed on this command line: under --resume only these are compared with the
    saved run (an option left at its default means "as before")."""
    try:  # typer >= 0.29 runs on its own copy of click
        from typer._click.core import ParameterSource
        from typer._click.globals import get_current_context
    except ImportError:
        from click.core import ParameterSource
        from click.globals import get_current_context

    ctx = get_current_context()
    given = {name for name in ctx.params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
    fields = set()
    for name in given - set(_NOT_CONFIG):
        if name == "nm":
            fields |= {"sparsity.n", "sparsity.m"}
        else:
            fields.add(f"sparsity.{name}" if name in _SPARSITY else f"data.{name}" if name in _DATA else name)
    return fields


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
