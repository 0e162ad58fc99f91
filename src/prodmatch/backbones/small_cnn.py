"""A small convolutional backbone for CPU training at 32-64 px: blocks of 3x3 convolutions, each halving the size.

Block i has ``width * 2**i`` channels: ``convs`` (3x3 convolution, BatchNorm, ReLU) layers, then a 2x2 max pool.
The last block's map is pooled globally (``avg``, ``max`` or ``gem``: generalised mean with a learned exponent,
which sits between the two) and projected to ``embedding_size``. At 32 px, width 32 and depth 4, the forward pass
costs about 15 M multiply-adds per image with one convolution per block (ResNet18: about 150 M at 64 px).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prodmatch.backbones.head import EmbeddingNet
from prodmatch.errors import ConfigError

POOLINGS = ("avg", "max", "gem")


class GeM(nn.Module):
    """Generalised-mean pooling ``mean(x ** p) ** (1 / p)`` over the spatial map, ``p`` learned (Radenovic et al.)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.clamp(min=1.0)
        return F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(p), 1).pow(1.0 / p)


def _pool(pooling: str) -> nn.Module:
    if pooling == "avg":
        return nn.AdaptiveAvgPool2d(1)
    if pooling == "max":
        return nn.AdaptiveMaxPool2d(1)
    return GeM()


def _block(in_channels: int, out_channels: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        conv = nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1, bias=False)
        layers += [conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


class ConvBody(nn.Module):
    """The blocks and the global pooling: the last block's pooled map, or every block's (``multiscale``)."""

    def __init__(self, channels: list[int], convs: int, pooling: str, multiscale: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            _block(channels[i], channels[i + 1], convs) for i in range(len(channels) - 1)
        )
        pooled = self.blocks if multiscale else self.blocks[-1:]
        self.pools = nn.ModuleList(_pool(pooling) for _ in pooled)
        self.multiscale = multiscale
        self.feature_dim = sum(channels[1:]) if multiscale else channels[-1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x, maps = images, []
        for block in self.blocks:
            x = block(x)
            maps.append(x)
        kept = maps if self.multiscale else maps[-1:]
        return torch.cat([pool(m).flatten(1) for pool, m in zip(self.pools, kept, strict=True)], dim=1)


class SmallCNN(EmbeddingNet):
    """``depth`` blocks of ``width * 2**i`` channels, global ``pooling``, a projection to ``embedding_size``.

    ``multiscale``: pool every block's map, not only the last, and concatenate them: the early blocks' pooled
    maps keep colour and fine texture statistics (a learned, foreground-aware colour histogram) that the last
    block's coarse map has mixed away; it costs almost nothing. Works from 32 px (depth 4 leaves a 2x2 map) up to
    224 px; random init from the global torch RNG (it has no published weights, so ``pretrained`` does not apply).
    """

    def __init__(
        self,
        width: int = 32,
        depth: int = 4,
        convs: int = 1,
        pooling: str = "avg",
        multiscale: bool = False,
        embedding_size: int | None = 128,
    ) -> None:
        for key, value, low in (("width", width, 1), ("depth", depth, 1), ("convs", convs, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"model.net.{key}={value!r} must be an integer >= {low}; set e.g. {key}=4")
        if pooling not in POOLINGS:
            raise ConfigError(f"model.net.pooling={pooling!r} is unknown; use one of {', '.join(POOLINGS)}")
        channels = [3] + [width * 2**i for i in range(depth)]
        body = ConvBody(channels, convs, pooling, bool(multiscale))
        super().__init__(body, body.feature_dim, embedding_size)
        self.min_image_size = 2**depth  # below it, a max pool meets a 1x1 map
