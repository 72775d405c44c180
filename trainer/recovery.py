"""Every interrupted run recoverable: what ``accelsim train --resume`` does before and after the state loads.

* A run killed or diverged before its first checkpoint restarts from step 0 (its partial rows discarded).
* A resumed run may change what does not change the past: ``--lr``, ``--steps``, ``--checkpoint-every``
  (the advice after a divergence is to lower the LR and resume). Any other difference from the saved
  configuration is refused with a one-line list of the differences; the overrides are written into the
  manifest (``extra.resumes``) and the effective configuration into ``extra.train_config``.
* Temporary files a kill left behind (``.*.tmp`` parts, manifests, checkpoints, masks) are removed on the
  next start; they are never read.
* The saved configuration is validated (pydantic) before it is used: unknown or mistyped keys are a
  one-line refusal naming the manifest field, not a traceback.

Kept out of ``trainer/train.py`` so the loop stays readable; train() calls :func:`prepare`,
:func:`restore_lr`, :func:`mask_events` and :func:`diverged_message`.
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from accelsim import trace as tr
from accelsim.errors import UserError, expect
from accelsim.trace_rules import LIMITS, user_error

CHECKPOINT = "checkpoint.pt"
#: Settings a resumed run may change: they act on steps not yet taken, so the rows already written stay true.
RESUMABLE = ("lr", "steps", "checkpoint_every")
#: What a run directory holds that a restart from step 0 replaces (the manifest is rewritten too).
_RUN_PARTS = ("steps.parquet", "patterns.parquet", "eval.parquet", "fff.parquet", "ranks.parquet", "rank-state",
              "masks", "execution.json", "train_summary.json", CHECKPOINT)


@dataclasses.dataclass
class Plan:
    """What train() does: continue from the checkpoint (``resume``) or start at 0, with ``cfg``."""

    cfg: Any
    resume: bool
    record: dict[str, Any] | None = None  # this resume, as written into manifest.extra["resumes"]

    def extra(self, saved_extra: dict[str, Any]) -> dict[str, Any]:
        """The manifest's ``extra`` after this resume: effective config, and the resume history."""
        out = dict(saved_extra)
        if self.record is not None:
            out["train_config"] = self.cfg.to_dict()
            out["resumes"] = [*saved_extra.get("resumes", []), self.record]
        return out


def check_config(cfg) -> None:
    """Ranges of the options the trainer acts on (the rest are checked by their own builders)."""
    expect(not Path(cfg.out).exists() or Path(cfg.out).is_dir(), "expected a run directory, not a file",
           source=cfg.out, field="--out")
    expect(0 < cfg.steps <= LIMITS["steps"], f"expected 1 to {LIMITS['steps']} steps, got {cfg.steps}", field="steps")
    expect(0 <= cfg.seed <= LIMITS["seed"], f"expected a seed in [0, {LIMITS['seed']}], got {cfg.seed}", field="seed")
    expect(cfg.threads is None or 1 <= cfg.threads <= 4096, f"expected at least 1 thread, got {cfg.threads}",
           field="threads")
    expect(math.isfinite(cfg.lr), f"expected a finite learning rate, got {cfg.lr}", field="lr")
    expect(0 < cfg.batch_size <= LIMITS["batch_size"], f"expected a batch size in [1, {LIMITS['batch_size']}]",
           field="batch_size")
    expect(len(cfg.sparse_roles) > 0, "expected at least one role (q,k,v,attn_out,ffn_in,ffn_out)",
           field="sparse_roles")
    mask_every(cfg.save_masks)


def mask_every(save_masks: str | int) -> int | None:
    """``--save-masks``: None for "auto", 0 for "none", else N >= 1 (every N-th mask change)."""
    text = str(save_masks)
    if text in ("auto", "none"):
        return None if text == "auto" else 0
    expect(text.isdigit() and 1 <= int(text) <= 10 ** 9, f"expected auto, none or a count >= 1, got {text!r}",
           field="save_masks")
    return int(text)


def clean_leftovers(out: Path) -> list[Path]:
    """Remove temporary files a killed run left (never read: every writer renames a finished file in)."""
    removed = []
    for d in (out, *(out / p for p in _RUN_PARTS if p.endswith(".parquet") or p == "masks")):
        if d.is_dir():
            for p in d.iterdir():
                if p.name.startswith(".") and ".tmp" in p.name and p.is_file():
                    p.unlink(missing_ok=True)  # every rank of a torchrun group cleans at once
                    removed.append(p)
    return removed


def saved_config(config_cls, out: Path):
    """The configuration a run was started with, validated like any input."""
    source = tr.manifest_path(out)
    saved = tr.read_manifest(out).extra.get("train_config")
    expect(isinstance(saved, dict), "no trainer config to resume from", source=source, field="extra.train_config")
    _unknown_keys(config_cls, saved, "extra.train_config", source)
    try:
        return TypeAdapter(config_cls).validate_python(saved)
    except ValidationError as err:
        e = user_error(err, source)
        raise UserError(str(e).rsplit(": ", 1)[-1], source=source, field=f"extra.train_config.{e.field}") from None


def _unknown_keys(cls, data: dict, where: str, source: Path) -> None:
    """pydantic ignores unknown keys of a stdlib dataclass; a saved config with one is not ours."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    expect(not unknown, f"unknown keys {unknown[:3]}", source=source, field=where)
    for name, f in fields.items():
        if isinstance(data.get(name), dict) and dataclasses.is_dataclass(f.default_factory):
            _unknown_keys(f.default_factory, data[name], f"{where}.{name}", source)


def _flat(cfg) -> dict[str, Any]:
    out = {}
    for key, value in cfg.to_dict().items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def prepare(cfg, resume: bool, overrides: set[str] | None, config_cls) -> Plan:
    """Decide how train() starts. ``overrides``: config fields the user set explicitly for this resume
    (None: only a positive ``steps`` counts, the Python API's old meaning)."""
    out = Path(cfg.out)
    expect(not out.exists() or out.is_dir(), "expected a run directory, not a file", source=out, field="--out")
    main = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 writes, so only it tidies
    if main:
        clean_leftovers(out)
    if not resume:
        expect(not tr.manifest_path(out).exists(),
               "already holds a trace; pass --resume to continue it or choose another --out", source=out)
        return Plan(cfg, False)
    if not tr.manifest_path(out).is_file():
        # killed before it wrote anything: nothing to resume, so this is the run's start (same options)
        if not cfg.steps:
            cfg.steps = next(f.default for f in dataclasses.fields(config_cls) if f.name == "steps")
        return Plan(cfg, False)
    saved = saved_config(config_cls, out)
    asked, have = _flat(cfg), _flat(saved)
    asked.pop("out"), have.pop("out")  # the same directory however it is spelled
    if overrides is None:
        overrides = {"steps"} if cfg.steps else set()
    changed = {k: asked[k] for k in sorted(overrides) if k in asked and asked[k] != have.get(k)}
    refused = [f"{k} {have.get(k)!r} -> {v!r}" for k, v in changed.items() if k not in RESUMABLE]
    expect(not refused, f"cannot resume with different settings ({'; '.join(refused)}); only "
           f"{', '.join('--' + k.replace('_', '-') for k in RESUMABLE)} may change", source=out)
    for key, value in changed.items():
        setattr(saved, key, value)
    saved.out = str(out)
    ckpt = out / CHECKPOINT
    at = checkpoint_step(ckpt)
    record = {"from_step": 0 if at is None else at + 1, "overrides": changed}
    if not ckpt.is_file():
        # killed or diverged before the first checkpoint: nothing to continue, so start over (same config)
        for part in _RUN_PARTS if main else ():
            p = out / part
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        return Plan(saved, False, record)
    return Plan(saved, True, record)


def checkpoint_step(path: Path) -> int | None:
    """Step of the checkpoint in ``path``, None when there is none (or it cannot be read)."""
    import torch

    if not path.is_file():
        return None
    try:
        return int(torch.load(path, weights_only=True)["step"])
    except Exception:  # a damaged checkpoint is reported where it is loaded; here it only shapes a message
        return None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The saved state, or a one-line refusal for a truncated or foreign file."""
    import torch

    try:
        state = torch.load(path, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, pickle errors, EOFError, zip errors...
        raise UserError(f"unreadable checkpoint ({err.__class__.__name__}); delete it to restart from step 0",
                        source=path) from None
    keys = ("step", "model", "optimizer", "scheduler", "method", "torch_rng", "python_rng")
    expect(isinstance(state, dict) and all(k in state for k in keys),
           f"not an accelsim checkpoint (expected keys {list(keys)}); delete it to restart from step 0",
           source=path)
    return state


def restore_lr(optimizer, scheduler, lr: float) -> None:
    """After loading a checkpoint: the schedule continues from the (possibly overridden) peak ``lr`` and the
    (possibly new) number of steps; LambdaLR's state holds the old base LRs, which would win silently."""
    scheduler.base_lrs = [lr for _ in optimizer.param_groups]
    for group, fn in zip(optimizer.param_groups, scheduler.lr_lambdas):
        group["initial_lr"] = lr
        group["lr"] = lr * fn(scheduler.last_epoch)


def mask_events(out: Path) -> int:
    """Mask-change events already traced (initial masks included): what ``--save-masks N`` counts, so a
    resumed run stores the same mask files as an uninterrupted one."""
    pat = tr.read_table(out, "patterns")
    if pat.num_rows == 0:
        return 0
    return pat.num_rows // len(set(pat["layer"].to_pylist()))


def diverged_message(step: int, loss: float, ckpt: Path) -> str:
    at = checkpoint_step(ckpt)
    where = (f"the last good checkpoint (step {at}) is kept" if at is not None
             else "there is no checkpoint yet, so --resume restarts from step 0")
    return (f"training diverged at step {step}: loss is {loss}; the trace is kept and {where}; "
            f"continue with --resume and a lower --lr")
