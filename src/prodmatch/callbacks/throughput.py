"""TrainThroughput: training images per second and the share of step time spent waiting on data.

A step is timed from `on_train_batch_start` to `on_train_batch_end`; the data wait is the gap from one step's
end to the next step's start, which is where the training loop fetches the next batch (and copies it to the
device). The first gap of every epoch (DataLoader workers starting up) is not counted. On a GPU the step is
closed with `torch.cuda.synchronize()`, so the wait is the time the GPU idles for data, not time hidden behind
kernels still running. Add it to a run with `'callbacks=[default,throughput]'` (conf/callbacks/throughput.yaml).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from prodmatch.layout import THROUGHPUT, THROUGHPUT_FILE
from prodmatch.utils.atomic import write_json

log = logging.getLogger("prodmatch.callbacks")


def count_images(batch: Any) -> int:
    """Images in a batch: the leading sizes of its 4-D tensors ([N, C, H, W]), in any dict/list nesting."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim == 4 else 0
    if isinstance(batch, dict):
        return sum(count_images(v) for v in batch.values())
    if isinstance(batch, (list, tuple)):
        return sum(count_images(v) for v in batch)
    return 0


class TrainThroughput(pl.Callback):
    """Times every training step and the data wait between steps; logs per epoch, writes a JSON at fit end.

    ``output_path``: the JSON summary (default `<trainer.default_root_dir>/throughput.json`). ``clock`` is
    injectable for tests. Figures are this process's: under DDP each rank feeds its own device.
    """

    def __init__(self, output_path: str | Path | None = None, clock: Callable[[], float] = time.perf_counter):
        self.output_path = Path(output_path) if output_path is not None else None
        self.clock = clock
        self.totals = {"steps": 0, "images": 0, "step_s": 0.0, "wait_s": 0.0, "waits": 0}
        self._epoch = dict(self.totals)
        self._step_start: float | None = None
        self._last_end: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_end = None  # the first fetch of an epoch includes worker start-up: not counted
        self._epoch = {key: 0 for key in self.totals}

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        now = self.clock()
        if self._last_end is not None:
            self._add(wait_s=now - self._last_end, waits=1)
        self._step_start = now

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._step_start is None:
            return
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)  # close the step when the GPU is done with it
        now = self.clock()
        self._add(steps=1, images=count_images(batch), step_s=now - self._step_start)
        self._last_end, self._step_start = now, None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._epoch["steps"]:
            pl_module.log_dict({THROUGHPUT + k: v for k, v in summarize(self._epoch).items()}, on_epoch=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        summary = {
            **summarize(self.totals),
            "world_size": trainer.world_size,
            "device": str(pl_module.device),
        }
        if not trainer.is_global_zero:
            return
        path = self.output_path or Path(trainer.default_root_dir) / THROUGHPUT_FILE
        write_json(path, summary)
        log.info(
            "training: %.1f images/s, %.1f%% of step time waiting on data (%d steps) -> %s",
            summary["images_per_s"],
            100 * summary["data_wait_share"],
            summary["steps"],
            path,
        )

    def _add(self, **amounts: float) -> None:
        for key, amount in amounts.items():
            self.totals[key] += amount
            self._epoch[key] += amount


def summarize(totals: dict[str, float]) -> dict[str, float]:
    """Rates and shares from step/wait totals: images/s over the timed span, the data-wait share of it."""
    # The uncounted start-up gap of each epoch leaves wait_s one gap short per epoch: a slight underestimate.
    span = totals["step_s"] + totals["wait_s"]
    return {
        "steps": int(totals["steps"]),
        "images": int(totals["images"]),
        "images_per_s": totals["images"] / span if span > 0 else 0.0,
        "mean_step_ms": 1e3 * totals["step_s"] / totals["steps"] if totals["steps"] else 0.0,
        "mean_wait_ms": 1e3 * totals["wait_s"] / totals["waits"] if totals["waits"] else 0.0,
        "data_wait_share": totals["wait_s"] / span if span > 0 else 0.0,
    }
