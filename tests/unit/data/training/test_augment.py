"""Augmentation presets: each strong effect is applied, views repeat under the same seed, light is the old
transform, and the presets compose from the config group."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from prodmatch.data.images import build_transform
from prodmatch.data.training.augment import Augment, BackgroundFill, EvalTransform, Reframe, border_colour
from prodmatch.data.training.datasets import seeded
from prodmatch.errors import ConfigError

WHITE = 255


def _card(size: int = 64, background: int = WHITE) -> torch.Tensor:
    """A uint8 card: a red square (the product) centred on a uniform background."""
    image = torch.full((3, size, size), background, dtype=torch.uint8)
    q = size // 4
    image[:, q : size - q, q : size - q] = torch.tensor([200, 30, 30], dtype=torch.uint8)[:, None, None]
    return image


def _object_share(image: torch.Tensor) -> float:
    """Share of the frame the red product covers."""
    r, g, b = image.float()
    return float(((r > 120) & (g < 90) & (b < 90)).float().mean())


def test_border_colour_is_the_background() -> None:
    assert border_colour(_card(background=40)).tolist() == [40.0, 40.0, 40.0]


def test_zoom_out_makes_the_object_smaller_and_fills_the_frame_with_the_background() -> None:
    card = _card()
    with seeded(0):
        out = Reframe(zoom_out=2.0, zoom_out_p=1.0, rotate=0.0, shift=0.0)(card)
    assert out.shape == card.shape
    assert _object_share(out) < 0.8 * _object_share(card)
    assert (out[:, 0, :] == WHITE).all()  # the new frame is the background colour, not black


def test_rotation_and_shift_move_the_object() -> None:
    card = _card()
    with seeded(1):
        turned = Reframe(zoom_out=1.0, zoom_out_p=0.0, rotate=30.0, shift=0.0)(card)
    with seeded(1):
        shifted = Reframe(zoom_out=1.0, zoom_out_p=0.0, rotate=0.0, shift=0.2)(card)
    assert not torch.equal(turned, card) and not torch.equal(shifted, card)
    moved = shifted.float().sum(0) != card.float().sum(0)
    assert moved.any() and (shifted[:, 0, 0] == WHITE).all()


def test_background_fill_recolours_a_uniform_background_only() -> None:
    card = _card()
    with seeded(2):
        out = BackgroundFill(p=1.0)(card)
    colour = out[:, 0, 0]
    assert not torch.equal(colour, torch.tensor([WHITE] * 3, dtype=torch.uint8))
    assert (out[:, :5, :5] == colour[:, None, None]).all()  # the whole background took one colour
    assert _object_share(out) == pytest.approx(_object_share(card))  # the product is untouched
    noisy = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    with seeded(2):
        assert torch.equal(BackgroundFill(p=1.0)(noisy), noisy)  # a busy backdrop is no background


def _strong(**changes) -> Augment:
    settings = dict(crop_scale=(0.35, 1.0), zoom_out=2.0, zoom_out_p=0.5, rotate=10.0, shift=0.1, background=0.5,
                    brightness=0.4, contrast=0.4, saturation=0.4, grayscale=0.2)  # fmt: skip
    return Augment(**{**settings, **changes})


@pytest.mark.parametrize(
    "effect",
    [{"grayscale": 1.0}, {"brightness": 0.8}, {"saturation": 0.9}, {"contrast": 0.8}, {"flip": 1.0}],
)
def test_each_colour_and_flip_effect_changes_the_view(effect: dict) -> None:
    card = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    none = dict(
        crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=0.0, brightness=0, contrast=0, saturation=0
    )
    plain = Augment(**none).transform(32)
    augmented = Augment(**{**none, **effect}).transform(32)
    with seeded(3):
        a = plain(card)
    with seeded(3):
        b = augmented(card)
    assert a.shape == b.shape == (3, 32, 32) and not torch.allclose(a, b)
    if "grayscale" in effect:
        assert torch.allclose(b[0] * 0.229 + 0.485, b[1] * 0.224 + 0.456, atol=1e-5)  # equal channels


def test_views_repeat_under_the_same_seed_and_differ_across_seeds() -> None:
    transform = _strong().transform(32)
    card = _card()
    with seeded(5, 0, 0):
        a = transform(card)
    with seeded(5, 0, 0):
        again = transform(card)
    with seeded(5, 0, 1):
        other = transform(card)
    assert a.shape == (3, 32, 32) and a.dtype == torch.float32
    torch.testing.assert_close(a, again)
    assert not torch.equal(a, other)


def test_strong_applies_each_geometric_effect_over_many_views() -> None:
    transform = _strong(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=0.0, grayscale=0.0,
                        brightness=0, contrast=0, saturation=0).transform(64)  # fmt: skip
    card = _card()
    shares, corners = [], []
    for i in range(40):
        with seeded(9, i):
            view = transform(card)
        pixels = (view * torch.tensor([0.229, 0.224, 0.225])[:, None, None]
                  + torch.tensor([0.485, 0.456, 0.406])[:, None, None]) * 255  # fmt: skip
        shares.append(_object_share(pixels.round().clamp(0, 255)))
        corners.append(pixels[:, 0, 0].round().tolist())
    assert min(shares) < 0.6 * _object_share(card)  # zoomed out
    assert len({tuple(c) for c in corners}) > 3  # backgrounds filled with several colours


def test_light_on_a_pil_image_is_the_old_training_transform() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 60, 3), dtype=np.uint8))
    old = build_transform(32, train=True)
    new = Augment().transform(32)
    with seeded(11):
        expected = old(image)
    with seeded(11):
        got = new(image)
    torch.testing.assert_close(got, expected)


def test_eval_transform_resizes_crops_and_centre_crops_pil_images() -> None:
    eval32 = EvalTransform(32)
    assert eval32(_card(64)).shape == (3, 32, 32)
    torch.testing.assert_close(eval32(_card(32)), EvalTransform(32)(_card(32)))
    image = Image.fromarray(np.zeros((50, 70, 3), dtype=np.uint8))
    torch.testing.assert_close(eval32(image), build_transform(32)(image))


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"crop_scale": (0.0, 1.0)}, "augment.crop_scale"), ({"zoom_out": 0.5}, "augment.zoom_out=0.5"),
     ({"grayscale": 2.0}, "augment.grayscale=2.0"), ({"shift": 0.7}, "augment.shift=0.7")],
)  # fmt: skip
def test_bad_presets_are_one_config_line(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        Augment(**kwargs)
    assert key in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("preset", ["light", "strong"])
def test_augment_group_composes_into_the_datamodule(compose_cfg, tiny_catalogs, preset: str) -> None:
    from hydra.utils import instantiate

    cfg = compose_cfg("train", [f"augment={preset}", "datamodule.modality=image"])
    dm = instantiate(cfg.datamodule, database=tiny_catalogs[1])
    assert isinstance(dm.augment, Augment)
    assert (dm.augment.zoom_out > 1.0) == (preset == "strong")
