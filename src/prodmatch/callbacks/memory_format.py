"""ChannelsLast: train and predict with NHWC weights, which tensor cores on recent GPUs run fastest.

A convolution runs in channels_last when its weight is channels_last, whatever the input's layout, so
converting the module once is enough; the inputs need no change. Add it to a run with
`'callbacks=[default,channels_last]'` (conf/callbacks/channels_last.yaml).
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch


class ChannelsLast(pl.Callback):
    """Convert the module's 4-D parameters to ``torch.channels_last`` before fitting and predicting."""

    def _convert(self, pl_module: pl.LightningModule) -> None:
        pl_module.to(memory_format=torch.channels_last)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._convert(pl_module)

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._convert(pl_module)
