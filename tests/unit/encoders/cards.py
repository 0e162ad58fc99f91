"""A hand-made catalog of a few cards (CSV + one small image each) and tiny encoders for the encoder tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from prodmatch.encoders.image import ImageEncoder
from prodmatch.encoders.text import TextEncoder

TINY_LOCAL = {"hidden_size": 32, "num_layers": 1, "heads": 2, "intermediate_size": 64, "vocab_size": 300}

CARDS = [
    ("Беговая дорожка Torneo Smarta T-314", "begovye_dorozhki", "Torneo", "складная, 12 км/ч"),
    ("Беговая дорожка Torneo Smarta T-314 складная", "begovye_dorozhki", "Torneo", "складная, 12 км/ч"),
    ("Велотренажер Oxygen Cardio Concept IV", "velotrenazhery", "Oxygen", "магнитный, 8 уровней"),
    ("Гребной тренажер Concept2 Model D", "grebnye_trenazhery", "Concept2", "воздушный"),
    ("Эллиптический тренажер Sole E35", "ellipticheskie_trenazhery", "Sole", "маховик 13 кг"),
    ("Степпер Torneo Twister S-211", "steppery", "Torneo", "поворотный"),
    ("Мультистанция Body Solid EXM-1500S", "multistantsii", "Body Solid", "стек 72 кг"),
]


def write_catalog(root: Path, name: str = "cards", cards=CARDS, seed: int = 0) -> Path:
    """A schema-complete CSV plus one small image per card (varied sizes and modes)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (title, target, brand, chars) in enumerate(cards):
        ref = f"images/{name}_{i}.png"
        pixels = rng.integers(0, 256, size=(40 + 3 * i, 48, 3), dtype=np.uint8)
        img = Image.fromarray(pixels)
        (img.convert("L") if i % 3 == 2 else img).save(root / ref)
        rows.append(
            {
                "title": title,
                "price": 10000 + 1000 * i,
                "cat_1": "Кардиотренажеры",
                "cat_2": brand,
                "cat_3": "",
                "caracteristics": chars,
                "img_ref": ref,
                "target": target,
                "dealer": "shop",
            }
        )
    csv = root / f"{name}.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def image_encoder(**kwargs) -> ImageEncoder:
    base = dict(pretrained=False, image_size=32, batch_size=4, num_workers=0, device="cpu", progress=False)
    return ImageEncoder(**{**base, **kwargs})


def text_encoder(cache_dir: Path, **kwargs) -> TextEncoder:
    base = dict(pretrained=False, local=TINY_LOCAL, cache_dir=str(cache_dir), device="cpu", progress=False)
    return TextEncoder(**{**base, **kwargs})


def assert_unit_rows(x: np.ndarray, rows: int, dim: int) -> None:
    assert x.shape == (rows, dim)
    assert x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
