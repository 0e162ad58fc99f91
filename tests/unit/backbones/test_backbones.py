"""Backbones: the small CNN and ResNet18 as embedding nets at 32 and 64 px, their config errors, the net group."""

from __future__ import annotations

import pytest
import torch

from prodmatch.backbones.head import EmbeddingNet
from prodmatch.backbones.resnet import FEATURE_DIM, ResNet18
from prodmatch.backbones.small_cnn import GeM, SmallCNN
from prodmatch.errors import ConfigError


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("pooling", ["avg", "max", "gem"])
def test_small_cnn_embeds_at_32_and_64_px(size: int, pooling: str) -> None:
    torch.manual_seed(0)
    net = SmallCNN(width=8, depth=4, pooling=pooling, embedding_size=16)
    out = net(torch.randn(3, 3, size, size))
    assert out.shape == (3, 16) and net.embedding_size == 16
    assert net.feature_dim == 8 * 2**3  # the last block's channels
    out.sum().backward()  # every layer takes a gradient, the learned GeM exponent too
    assert all(p.grad is not None for p in net.parameters())


def test_small_cnn_width_depth_and_convs_set_its_shape() -> None:
    net = SmallCNN(width=4, depth=3, convs=2, embedding_size=None)
    assert net.embedding_size == net.feature_dim == 16 and isinstance(net.projection, torch.nn.Identity)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 4, 8, 8, 16, 16]
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 16)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"width": 0}, "model.net.width=0"), ({"depth": 1.5}, "model.net.depth=1.5"),
     ({"pooling": "mean"}, "model.net.pooling='mean'"), ({"embedding_size": 0}, "model.net.embedding_size=0")],
)  # fmt: skip
def test_small_cnn_bad_settings_are_one_line(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        SmallCNN(**kwargs)
    assert key in str(info.value) and "\n" not in str(info.value)


def test_multiscale_pools_every_block() -> None:
    net = SmallCNN(width=4, depth=3, multiscale=True, pooling="gem", embedding_size=8)
    assert net.feature_dim == 4 + 8 + 16
    assert net.backbone(torch.randn(2, 3, 32, 32)).shape == (2, 28)
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 8)


def test_gem_lies_between_average_and_max_pooling() -> None:
    x = torch.rand(2, 5, 4, 4) + 0.1
    gem = GeM(p=3.0)(x).flatten(1)
    assert (gem >= x.mean((2, 3)) - 1e-6).all() and (gem <= x.amax((2, 3)) + 1e-6).all()


@pytest.mark.parametrize("size", [32, 64])
def test_resnet18_is_an_embedding_net_at_small_sizes(size: int) -> None:
    torch.manual_seed(0)
    net = ResNet18(pretrained=False, embedding_size=24)
    assert isinstance(net, EmbeddingNet) and net.feature_dim == FEATURE_DIM
    assert net.eval()(torch.randn(2, 3, size, size)).shape == (2, 24)
    assert ResNet18(pretrained=False).embedding_size == FEATURE_DIM  # null: the 512-d features


@pytest.mark.parametrize(("net", "cls"), [("small_cnn", SmallCNN), ("resnet18", ResNet18)])
def test_net_config_group_picks_the_backbone(compose_cfg, net: str, cls: type) -> None:
    from hydra.utils import instantiate

    cfg = compose_cfg(
        "train", ["experiment=product_arcface", f"model/net={net}", "model.net.embedding_size=32"]
    )
    module = instantiate(cfg.model)
    assert type(module.net) is cls and module.net.embedding_size == 32
