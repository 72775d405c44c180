"""Data-parallel training on torch.distributed: what ``trainer.train`` needs to run under torchrun.

Outside torchrun (no ``WORLD_SIZE`` > 1 in the environment) every method here is a no-op, so the
single-process loop is unchanged. Under ``torchrun --nproc-per-node N -m accelsim train ...`` (or
``accelsim train --nproc N``, which starts torchrun's elastic agent through :func:`launch`):

* ``--batch-size`` is the *global* batch: every rank builds the same global batch (a pure function of
  seed and step, trainer.data) and trains on its own contiguous slice, and its loss is weighted by its
  share of the batch's scored tokens, so DDP's gradient average is exactly the single-process gradient
  of the global batch (up to float summation order).
* Masks: **decided on rank 0 and broadcast** at start and at every mask update. Every rank still runs
  the method's update (its state, e.g. SNFS momenta, must advance alike; with identical all-reduced
  gradients and the method's private generator the decision normally agrees), then takes rank 0's
  masks for any layer that differs. Broadcasting makes agreement a guarantee rather than a consequence
  of bitwise-identical float reductions; the cost is one byte per weight of the sparse layers per update.
  Each rank's mask digest after the change goes into the trace (``ranks`` table) so agreement is checked.
* Rank 0 alone writes the trace and the checkpoint; each other rank saves its own RNG state (dropout
  differs per rank, as it would over the rows of one big batch) next to it. ``--resume`` after every
  rank was killed restarts from the last periodic checkpoint that all ranks completed.
"""
from __future__ import annotations

import hashlib
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from accelsim import trace as tr
from accelsim.errors import UserError, expect

RANK_STATE_DIR = "rank-state"
LAUNCH_CONFIG = ".launch-config.json"
#: what the manifest says about how ranks agree on masks (one fact, one place)
MASK_POLICY = "decided on rank 0, broadcast to every rank at start and at each mask update"


def env_world() -> tuple[int, int, int]:
    """(rank, world size, local world size) as torchrun sets them; (0, 1, 1) outside torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 1
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_WORLD_SIZE", world))


def _rank_seed(seed: int, rank: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(rank), 0xD15]).generate_state(1, dtype=np.uint64)[0] >> 1)


def mask_digest(masks: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(masks):
        h.update(name.encode())
        h.update(np.packbits(masks[name].detach().cpu().numpy().astype(bool).ravel()).tobytes())
    return h.hexdigest()[:16]


class _CommTimer:
    """A DDP communication hook: the default all-reduce (average) plus the span from the first bucket's
    launch to the last bucket's completion, i.e. the measured all-reduce time of a step."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0

    def take(self) -> float:
        span = 0.0 if self.first is None else max(0.0, self.last - self.first)
        self.first, self.last = None, 0.0
        return span

    def hook(self, state, bucket):  # no annotations: DDP compares them with the real Future type
        t0 = time.perf_counter()
        if self.first is None:
            self.first = t0
        buf = bucket.buffer().div_(dist.get_world_size())

        def done(fut):
            self.last = max(self.last, time.perf_counter())
            return fut.value()[0]
        return dist.all_reduce(buf, async_op=True).get_future().then(done)


class _MainOnly:
    """Rank 0's writer on rank 0; on the other ranks the same object whose writing methods do nothing."""

    _WRITES = frozenset({"start", "step", "patterns", "eval", "flush", "discard_after", "record"})

    def __init__(self, inner: Any):
        object.__setattr__(self, "_inner", inner)

    def __getattr__(self, name: str):
        if name in self._WRITES:
            return lambda *a, **k: None
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._inner, name, value)


class Distributed:
    """One process's place in a data-parallel run (world size 1 outside torchrun)."""

    def __init__(self, seed: int = 0, threads: int | None = None):
        self.rank, self.world_size, self.local_world = env_world()
        self.backend = ""
        self._timer = _CommTimer()
        self._rows: list[dict] = []
        self._digest, self._adopted = "", 0
        if self.world_size == 1:
            return
        if threads is None:  # torch would start one thread per core in every process: oversubscribed
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.local_world))
        if self.rank:  # own dropout stream per rank, as the rows of one big batch would get
            torch.manual_seed(_rank_seed(seed, self.rank))
            random.seed(_rank_seed(seed, self.rank))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------ setup
    def check(self, batch_size: int) -> None:
        expect(batch_size % self.world_size == 0,
               f"expected a global batch size divisible by the {self.world_size} processes, got {batch_size}",
               field="batch_size")

    def wrap(self, model: torch.nn.Module, method) -> torch.nn.Module:
        """Join the process group (gloo for CPU models, nccl for CUDA ones), give every rank rank 0's
        masks, and wrap the model in DDP; returns what the loop calls forward on."""
        if self.world_size == 1:
            return model
        cuda = next(model.parameters()).is_cuda
        self.backend = "nccl" if cuda else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(self.backend)
        self.sync_masks(method)
        self._digest = ""  # digests are recorded at mask changes only (a resume would add one here)
        from torch.nn.parallel import DistributedDataParallel as DDP

        local = int(os.environ.get("LOCAL_RANK", 0))
        ddp = DDP(model, device_ids=[local] if cuda else None,
                  # FFF layers touch only the visited neurons' rows: some parameters get no gradient
                  find_unused_parameters=any(type(m).__name__ == "FFFLayer" for m in model.modules()))
        ddp.register_comm_hook(None, self._timer.hook)
        return ddp

    def describe(self, manifest: tr.Manifest) -> None:
        manifest.world_size = self.world_size
        if self.world_size > 1:
            manifest.extra["distributed"] = {"world_size": self.world_size, "backend": self.backend,
                                             "per_rank_batch": manifest.batch_size // self.world_size,
                                             "masks": MASK_POLICY}

    def main_only(self, writer: Any) -> Any:
        return writer if self.is_main else _MainOnly(writer)

    # ------------------------------------------------------------------ per step
    def batch(self, data, step: int, batch_size: int) -> dict[str, torch.Tensor]:
        """This rank's contiguous slice of the global batch (the whole batch on one process)."""
        full = data.train_batch(step, batch_size)
        if self.world_size == 1:
            return full
        n = batch_size // self.world_size
        part = {k: v[self.rank * n:(self.rank + 1) * n] for k, v in full.items()}
        # weight of this slice in the global mean loss: its scored tokens over the batch's, times world
        # size because DDP averages gradients over ranks
        scored = (full["labels"] != -100).sum().clamp(min=1)
        self._weight = float((part["labels"] != -100).sum()) * self.world_size / float(scored)
        return part

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        return loss if self.world_size == 1 else loss * self._weight

    def sync_masks(self, method, change: object = True) -> None:
        """Rank 0's masks on every rank (after the local update); a no-op off mask-change steps."""
        if self.world_size == 1 or change is None or not getattr(method, "masks", None):
            return
        names = sorted(method.masks)
        flat = torch.cat([method.masks[n].reshape(-1) for n in names]).to(torch.uint8)
        ref = flat.clone()
        dist.broadcast(ref, src=0)
        adopt, offset = {}, 0
        for n in names:
            m = method.masks[n]
            mine = ref[offset:offset + m.numel()].view(m.shape).bool()
            offset += m.numel()
            if not torch.equal(mine, m):
                adopt[n] = mine
        if adopt:  # zeroes the changed weights and their optimizer moments, like any mask change
            method.commit(adopt)
        self._adopted, self._digest = len(adopt), mask_digest(method.masks)

    def gather_step(self, step: int, loss: float, wall: float) -> tuple[float, float]:
        """Every rank's loss and time for the trace; returns (global loss, slowest rank's time)."""
        if self.world_size == 1:
            return loss, wall
        # the scaled losses sum to world x the global mean (DDP averages): each rank's share is 1/world of it
        mine = torch.tensor([loss / self.world_size, wall, self._timer.take(), float(self._adopted)],
                            dtype=torch.float64)
        parts = [torch.empty_like(mine) for _ in range(self.world_size)]
        dist.all_gather(parts, mine)
        digests: list[Any] = [""] * self.world_size
        if self._digest:
            dist.all_gather_object(digests, self._digest)
        if self.is_main:
            for r, p in enumerate(parts):
                self._rows.append({"step": step, "rank": r, "loss": float(p[0]), "wall_s": float(p[1]),
                                   "allreduce_s": float(p[2]), "mask_digest": digests[r] or "",
                                   "masks_adopted": int(p[3])})
        self._digest, self._adopted = "", 0
        return float(sum(p[0] for p in parts)), float(max(p[1] for p in parts))

    # ------------------------------------------------------------------ checkpoint / resume
    def checkpoint(self, out: Path, step: int) -> None:
        """After rank 0's checkpoint: its per-rank rows, every other rank's RNG state, then a barrier so
        a checkpoint counts only once every rank has saved its part."""
        if self.world_size == 1:
            return
        if self.is_main:
            tr.append_rows(out, "ranks", self._rows)
            self._rows.clear()
        else:
            d = Path(out) / RANK_STATE_DIR
            d.mkdir(exist_ok=True)
            path = d / f"rank-{self.rank:05d}.pt"
            tmp = path.with_name(f".{path.name}.tmp")
            torch.save({"step": step, "torch_rng": torch.get_rng_state(), "python_rng": random.getstate()}, tmp)
            os.replace(tmp, path)
        dist.barrier()

    def discard(self) -> None:
        """Rows after the last checkpoint are dropped on interrupt: resume restarts from that checkpoint."""
        self._rows.clear()

    def restore(self, out: Path, step: int, world_size: int) -> None:
        """On resume: the same number of processes, and each rank's own RNG state at ``step``."""
        expect(world_size == self.world_size,
               f"the run was trained on {world_size} process(es), this resume has {self.world_size}; "
               f"resume with --nproc {world_size}", source=out, field="world_size")
        if not self.rank:
            return
        path = Path(out) / RANK_STATE_DIR / f"rank-{self.rank:05d}.pt"
        expect(path.is_file(), "no saved state for this rank", source=path)
        state = torch.load(path, weights_only=True)
        expect(int(state["step"]) == step, f"rank state is at step {int(state['step'])}, the checkpoint at {step}",
               source=path, field="step")
        from accelsim.trainer.train import _as_tuple  # train imports this module

        torch.set_rng_state(state["torch_rng"])
        random.setstate(_as_tuple(state["python_rng"]))

    @property
    def checkpoints_on_interrupt(self) -> bool:
        """One process saves where it stopped; ranks of a killed group may stop a step apart, so they
        resume from the last checkpoint all of them completed instead."""
        return self.world_size == 1

    def close(self) -> None:
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


# ---------------------------------------------------------------------- accelsim train --nproc N
def launch(cfg, nproc: int, resume: bool) -> None:
    """Run ``cfg`` on ``nproc`` local processes under torchrun's elastic agent (standalone rendezvous).

    Workers run ``python -P -m accelsim.trainer.distributed CONFIG [--resume]``; the config travels as a
    JSON file in the run directory (what ``TrainConfig.to_dict`` writes, so nothing is re-parsed)."""
    import json

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / LAUNCH_CONFIG
    config_path.write_text(json.dumps(cfg.to_dict()))
    launch_cfg = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"accelsim-{uuid.uuid4().hex[:8]}",
                              rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
                              monitor_interval=0.1, start_method="spawn")
    args = ["-P", "-m", "accelsim.trainer.distributed", str(config_path)] + (["--resume"] if resume else [])
    try:
        elastic_launch(launch_cfg, sys.executable)(*args)
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        raise UserError(f"training process of rank {rank} failed (exit code {failure.exitcode}); its message "
                        f"is above", source=out) from None


def _worker_main(argv: list[str]) -> None:
    """One torchrun worker of :func:`launch`: user errors as one line, exit 2, as the console command."""
    import json

    from accelsim.trainer.train import TrainConfig, train

    try:
        cfg = TrainConfig.from_dict(json.loads(Path(argv[0]).read_text()))
        train(cfg, resume="--resume" in argv[1:], progress=False)
    except UserError as err:
        print(f"accelsim: error (rank {env_world()[0]}): {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
