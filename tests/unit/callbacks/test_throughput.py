"""TrainThroughput: step and data-wait accounting on a scripted clock, and its JSON after a real (tiny) fit."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from prodmatch.callbacks.throughput import TrainThroughput, count_images


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _pair_batch(n: int) -> dict:
    return {"a": torch.zeros(n, 3, 8, 8), "b": torch.zeros(n, 3, 8, 8), "same": torch.zeros(n)}


def test_count_images_counts_4d_tensors_in_any_nesting():
    assert count_images(_pair_batch(5)) == 10
    assert count_images([torch.zeros(4, 3, 2, 2), (torch.zeros(4, 10), torch.zeros(2, 1, 2, 2))]) == 6
    assert count_images({"input_ids": torch.zeros(8, 16, dtype=torch.long)}) == 0


def test_steps_and_waits_are_split_and_the_epoch_start_gap_is_not_counted(tmp_path):
    clock = Clock()
    cb = TrainThroughput(output_path=tmp_path / "t.json", clock=clock)
    logged = {}
    module = SimpleNamespace(device=torch.device("cpu"), log_dict=lambda d, **kw: logged.update(d))
    trainer = SimpleNamespace(world_size=1, is_global_zero=True, default_root_dir=str(tmp_path))
    batch = _pair_batch(4)
    for _epoch in range(2):
        cb.on_train_epoch_start(trainer, module)
        clock.now += 50.0  # worker start-up before the first batch: not a data wait
        for i in range(3):
            if i:
                clock.now += 1.0  # fetching the next batch
            cb.on_train_batch_start(trainer, module, batch, i)
            clock.now += 3.0  # forward, backward, optimizer step
            cb.on_train_batch_end(trainer, module, None, batch, i)
        cb.on_train_epoch_end(trainer, module)
    cb.on_train_end(trainer, module)

    summary = json.loads((tmp_path / "t.json").read_text())
    # Per epoch: 3 steps of 3 s, 2 counted waits of 1 s, 24 images.
    assert summary["steps"] == 6 and summary["images"] == 48
    assert summary["mean_step_ms"] == pytest.approx(3000.0)
    assert summary["mean_wait_ms"] == pytest.approx(1000.0)
    assert summary["data_wait_share"] == pytest.approx(4 / 22)
    assert summary["images_per_s"] == pytest.approx(48 / 22)
    assert summary["world_size"] == 1 and summary["device"] == "cpu"
    # The last epoch's figures were logged under throughput/.
    assert logged["throughput/steps"] == 3
    assert logged["throughput/data_wait_share"] == pytest.approx(2 / 11)


def test_only_rank_zero_writes_the_summary(tmp_path):
    cb = TrainThroughput(output_path=tmp_path / "t.json", clock=Clock())
    module = SimpleNamespace(device=torch.device("cpu"))
    cb.on_train_end(
        SimpleNamespace(world_size=2, is_global_zero=False, default_root_dir=str(tmp_path)), module
    )
    assert not (tmp_path / "t.json").exists()


class _Images(Dataset):
    def __len__(self) -> int:
        return 12

    def __getitem__(self, i: int) -> dict:
        return {"image": torch.rand(3, 8, 8), "target": torch.tensor(i % 2)}


class _Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(self.net(batch["image"]), batch["target"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_real_fit_logs_the_figures_and_writes_the_json(tmp_path):
    cb = TrainThroughput()
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=2,
        callbacks=[cb],
        logger=pl.loggers.CSVLogger(tmp_path),
        accelerator="cpu",
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(_Tiny(), DataLoader(_Images(), batch_size=4))
    summary = json.loads((tmp_path / "throughput.json").read_text())
    assert summary["steps"] == 6 and summary["images"] == 24
    assert 0 <= summary["data_wait_share"] < 1 and summary["images_per_s"] > 0
    assert "throughput/images_per_s" in trainer.logged_metrics
