"""torchrun worker for tests/test_distributed.py (not a test module): trains the TrainConfig in a JSON file
on every rank; with a step number, every rank SIGKILLs itself after that step (a kill of the whole group
at a known point, which polling from outside could not guarantee)."""
import json
import os
import signal
import sys
from pathlib import Path

from accelsim.trainer.train import TrainConfig, train


def main(config: str, kill_at: int = -1) -> None:
    cfg = TrainConfig.from_dict(json.loads(Path(config).read_text()))

    def on_step(step: int, metrics: dict) -> None:
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    train(cfg, progress=False, on_step=on_step)


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
