"""The training loop: dynamic-sparse MLM training of a transformers BERT that writes an accelsim trace.

Deliberately one readable loop (nanoGPT style). Determinism for --resume: batches are a function of
(seed, step) (trainer.data), and every other source of randomness (dropout, random regrowth) draws
from the global torch RNG whose state is checkpointed, so a resumed run repeats an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import signal
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from accelsim import trace as tr
from accelsim.bert import LINEAR_ROLES
from accelsim.errors import UserError, expect
from accelsim.kernels.host_memory import retain_freed_memory
from accelsim.kernels.optim import adamw, implementation, load_state
from accelsim.trainer.data import DataConfig, build_data
from accelsim.trainer.distributed import Distributed
from accelsim.trainer.execution import EXECUTIONS, build_execution
from accelsim.trainer.fff import FFFRecorder, apply_fff, parse_ffn
from accelsim.trainer.models import build_model, linear_layers, model_dims
from accelsim.trainer.sparsity import SparsityConfig, build_method
from accelsim.trainer import recovery
from accelsim.trainer.tracer import InputZeroProbe, TraceWriter, host_info, library_versions

CHECKPOINT = recovery.CHECKPOINT  # one name for the file that train writes and recovery reads
DEFAULT_SPARSE_ROLES = LINEAR_ROLES  # every encoder Linear (accelsim.bert)


@dataclass
class TrainConfig:
    model: str = "bert-tiny"
    out: str = "runs/default"
    steps: int = 300
    batch_size: int = 32
    # small BERTs from scratch tolerate a high LR; 300 steps must show a clear loss drop on a CPU
    lr: float = 2e-3
    warmup_fraction: float = 0.06  # BERT-style linear warm-up then linear decay
    weight_decay: float = 0.01
    grad_clip: float = 1.0  # keeps high-LR tiny-model training from diverging
    seed: int = 0
    eval_every: int = 50
    eval_batches: int = 4  # held-out batches per evaluation: enough for a stable loss, cheap on CPU
    checkpoint_every: int = 50  # also the trace flush interval: a kill loses at most this many rows
    save_masks: str = "auto"  # "auto" | "none" | N (every N-th mask change)
    sparse_roles: tuple[str, ...] = DEFAULT_SPARSE_ROLES  # embeddings, LayerNorm and MLM head stay dense
    threads: int | None = None  # torch intra-op threads; None keeps torch's default
    # keep freed host memory in the process (accelsim.kernels.host_memory): without it every step page-faults its
    # activations back in, 5-16 % of a bert-small CPU step (step-memory.json), a cost no hardware profile models
    retain_freed_memory: bool = True
    dropout: float = 0.1
    # "dense" or "fff:KxD": UltraSparseBERT fast feedforward layers replace every block's FFN (trainer.fff);
    # they are conditionally sparse by design, so --method normally stays dense (it then sparsifies attention only)
    ffn: str = "dense"
    # "masked" (dense products on zeroed weights) or "sparse": the sparse layers run on the project's CPU
    # kernels, each product on the path the cost model of `execute_profile` picks (trainer.execution)
    execute: str = "masked"
    # the profile whose path choice sparse execution follows: calibrate it on the machine that trains
    execute_profile: str = "cpu-zen3"
    data: DataConfig = field(default_factory=DataConfig)
    sparsity: SparsityConfig = field(default_factory=SparsityConfig)

    def validate(self) -> None:
        expect(self.steps > 0, "expected a positive number of steps", field="steps")
        expect(self.batch_size > 0, "expected a positive batch size", field="batch_size")
        expect(0.0 <= self.sparsity.sparsity < 1.0, f"expected sparsity in [0, 1), got {self.sparsity.sparsity}",
               field="sparsity")
        expect(self.lr > 0, "expected a positive learning rate", field="lr")
        expect(self.checkpoint_every > 0 and self.eval_every > 0, "expected positive intervals",
               field="checkpoint_every/eval_every")
        bad = [r for r in self.sparse_roles if r not in DEFAULT_SPARSE_ROLES]
        expect(not bad, f"unknown roles {bad}; expected some of {DEFAULT_SPARSE_ROLES}", field="sparse_roles")
        parse_ffn(self.ffn)
        expect(self.execute in EXECUTIONS, f"expected one of {EXECUTIONS}, got {self.execute!r}", field="execute")
        recovery.check_config(self)  # ranges: seed, threads, steps, --save-masks, --out, ...

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d["data"] = DataConfig(**d.get("data", {}))
        d["sparsity"] = SparsityConfig(**d.get("sparsity", {}))
        d["sparse_roles"] = tuple(d.get("sparse_roles", DEFAULT_SPARSE_ROLES))
        return cls(**d)


class TrainingDiverged(UserError):
    pass


def _lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    warm = max(1, int(cfg.warmup_fraction * cfg.steps))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (cfg.steps - step) / max(1, cfg.steps - warm))
    return f


@contextmanager
def _sigterm_as_interrupt():
    """A plain `kill` stops as cleanly as Ctrl-C: the trace is flushed and a checkpoint written."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@torch.no_grad()
def evaluate(model, data, cfg: TrainConfig) -> tuple[float, float]:
    was_training = model.training
    model.eval()
    loss_sum = correct = count = 0.0
    for batch in data.eval_batches(cfg.batch_size, cfg.eval_batches):
        out = model(**batch)
        labels = batch["labels"]
        sel = labels != -100
        n = float(sel.sum())
        loss_sum += float(out.loss) * n
        correct += float((out.logits.argmax(-1)[sel] == labels[sel]).sum())
        count += n
    model.train(was_training)
    return loss_sum / max(count, 1.0), correct / max(count, 1.0)


def build_manifest(cfg: TrainConfig, model, layers, method, data, sparse_names: set[str]) -> tr.Manifest:
    infos = []
    dens = method.target_densities()  # gmp starts dense: the manifest records where it is headed
    for name, module, role in layers:
        sparse = name in sparse_names and cfg.sparsity.method != "dense"
        infos.append(tr.LayerInfo(name=name, role=role, shape=list(module.weight.shape),
                                  target_density=float(dens.get(name, 1.0)) if sparse else 1.0, sparse=sparse))
    hyper = {"name": cfg.sparsity.method, **method.hyperparameters()}
    dims = model_dims(model, cfg.data.seq_len)
    spec = parse_ffn(cfg.ffn)
    if spec is not None:
        dims["ffn"] = spec.manifest_entry()
    return tr.Manifest(
        model=dims, batch_size=cfg.batch_size, dtype="fp32", method=hyper,
        layers=infos, seed=cfg.seed, steps=cfg.steps, versions=library_versions(), host=host_info(),
        execution=cfg.execute,
        extra={"train_config": cfg.to_dict(), "corpus": data.corpus_info(), "model_name": cfg.model})


def _save_checkpoint(path: Path, step: int, model, optimizer, scheduler, method) -> None:
    state = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "method": method.state_dict(),
             "torch_rng": torch.get_rng_state(), "python_rng": random.getstate()}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True,
          on_step: Callable[[int, dict], None] | None = None, overrides: set[str] | None = None) -> Path:
    """Train and trace; returns the run directory. ``resume`` continues an interrupted run (from step 0 if
    it has no checkpoint yet); ``overrides`` names the config fields set for this resume (trainer.recovery)."""
    out = Path(cfg.out)
    ckpt_path = out / CHECKPOINT
    plan = recovery.prepare(cfg, resume, overrides, TrainConfig)
    cfg, resume = plan.cfg, plan.resume
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.retain_freed_memory:
        retain_freed_memory()
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    ddp = Distributed(cfg.seed, cfg.threads)  # under torchrun: this rank's place; otherwise every call a no-op
    ddp.check(cfg.batch_size)

    data = build_data(cfg.data, seed=cfg.seed)
    model = build_model(cfg.model, vocab_size=len(data.tokenizer), seq_len=cfg.data.seq_len,
                        dropout=cfg.dropout, seed=cfg.seed)
    fff = ddp.main_only(FFFRecorder(out, apply_fff(model, cfg.ffn, seed=cfg.seed)))
    model.train()
    layers = linear_layers(model)
    sparse_layers = [(n, m) for n, m, role in layers if role in cfg.sparse_roles]
    optimizer = adamw(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg))
    method = build_method(cfg.sparsity, sparse_layers, cfg.steps)
    method.attach(optimizer)
    forward = ddp.wrap(model, method)
    manifest = build_manifest(cfg, model, layers, method, data, {n for n, _ in sparse_layers})
    manifest.host["optimizer"] = implementation(optimizer)
    ddp.describe(manifest)
    writer = ddp.main_only(TraceWriter(out, manifest, cfg.save_masks))

    start = 0
    if resume:
        state = recovery.load_checkpoint(ckpt_path)
        model.load_state_dict(state["model"])
        load_state(optimizer, state["optimizer"])  # keeps the fused update for a checkpoint of the loop's
        scheduler.load_state_dict(state["scheduler"])
        recovery.restore_lr(optimizer, scheduler, cfg.lr)  # an --lr/--steps override takes effect
        method.load_state_dict(state["method"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(_as_tuple(state["python_rng"]))
        start = int(state["step"]) + 1
        ddp.restore(out, start - 1, tr.read_manifest(out).world_size)
        for table in ("steps", "patterns", "eval", "fff", "ranks"):
            if ddp.is_main:
                tr.truncate_after(out, table, start - 1)
        writer.manifest.extra = plan.extra(tr.read_manifest(out).extra)  # the original run's description
        writer.manifest.steps = cfg.steps
        writer._mask_changes = recovery.mask_events(out)  # --save-masks N counts changes, not files
        writer.start()
    else:
        writer.manifest.extra = plan.extra(writer.manifest.extra)
        writer.start()

    execution = build_execution(cfg.execute, cfg.execute_profile, manifest, method, sparse_layers, out, start)
    probe = InputZeroProbe(sparse_layers)
    tokens_per_step = cfg.batch_size * cfg.data.seq_len
    last_good = start - 1
    bar = _progress(progress, cfg.steps, start)
    try:
        with _sigterm_as_interrupt(), bar as prog:
            task = prog.add_task("train", total=cfg.steps, completed=start, loss=float("nan"),
                                 density=1.0, tps=0.0) if prog else None
            for step in range(start, cfg.steps):
                kind = method.step_kind(step)
                probe.armed = kind.mask_update or step == 0
                execution.begin_step(kind)
                batch = ddp.batch(data, step, cfg.batch_size)
                t0 = time.perf_counter()
                loss = ddp.scale_loss(forward(**batch).loss)
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):
                    raise TrainingDiverged(recovery.diverged_message(step, loss_value, ckpt_path), source=out)
                if step == 0:
                    writer.patterns(0, _masks(method, sparse_layers), input_zero=dict(probe.values))
                loss.backward()
                lr, change = apply_update(step, model, method, optimizer, scheduler, cfg.grad_clip)
                ddp.sync_masks(method, change)
                if change is not None:
                    execution.mask_changed(step)  # sparse formats rebuilt (and timed) inside the step
                wall = time.perf_counter() - t0
                loss_value, wall = ddp.gather_step(step, loss_value, wall)
                densities = method.densities()
                writer.step(step, loss_value, lr, tokens_per_step, wall, kind, densities, change is not None)
                fff.record(step)
                if change is not None:
                    writer.patterns(step, _masks(method, sparse_layers), change.pruned, change.grown,
                                    dict(probe.values))
                probe.armed = False
                last_good = step
                metrics = {"loss": loss_value, "density": writer.overall_density(densities),
                           "tps": tokens_per_step / wall}
                if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps or step == 0:
                    el, ea = evaluate(model, data, cfg)
                    writer.eval(step, el, ea)
                    metrics.update(eval_loss=el, eval_accuracy=ea)
                if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                    writer.flush()
                    fff.flush()
                    execution.flush()
                    if ddp.is_main:
                        _save_checkpoint(ckpt_path, step, model, optimizer, scheduler, method)
                    ddp.checkpoint(out, step)
                if task is not None:
                    prog.update(task, completed=step + 1, loss=loss_value, density=metrics["density"],
                                tps=metrics["tps"])
                if on_step is not None:
                    on_step(step, metrics)
    except KeyboardInterrupt:
        # the step in flight either finished (its row is buffered) or is dropped whole
        for w in (writer, fff):
            w.discard_after(last_good)
            w.flush()
        ddp.discard()
        if last_good >= start and ddp.checkpoints_on_interrupt:
            _save_checkpoint(ckpt_path, last_good, model, optimizer, scheduler, method)
        raise
    except TrainingDiverged:
        for w in (writer, fff):
            w.discard_after(last_good)
            w.flush()  # rows of good steps are kept; the checkpoint stays at the last good flush
        raise
    finally:
        probe.remove()
        execution.close()
        ddp.close()
    summary = {"steps": cfg.steps, "trace_seconds": writer.trace_seconds}
    if ddp.is_main:
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return out


def apply_update(step: int, model, method, optimizer, scheduler, grad_clip: float | None):
    """One optimiser update after backward, in the order every sparsity method relies on; returns (lr used, mask
    change or None). Shared by pretraining and fine-tuning."""
    method.before_optimizer_step(step)  # reads dense grads, then masks them: clip what is applied
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return lr, method.after_optimizer_step(step)


def _as_tuple(x):
    """random.setstate needs tuples; torch.save round-trips them, but be lenient with lists."""
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def _masks(method, layers) -> dict[str, torch.Tensor]:
    masks = getattr(method, "masks", None) or {}
    return {name: masks.get(name, torch.ones_like(m.weight, dtype=torch.bool)) for name, m in layers}


def _progress(enabled: bool, total: int, start: int):
    if not enabled:
        return nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.3f}"), TextColumn("density {task.fields[density]:.3f}"),
                    TextColumn("{task.fields[tps]:,.0f} tok/s"), TimeRemainingColumn(), transient=False)
