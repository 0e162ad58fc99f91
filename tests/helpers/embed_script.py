"""`python embed_script.py SPEC.json`: embed images and texts with :func:`embed_with_trainer`, as a user's script
does; under ``strategy=ddp`` Lightning starts this script again for every rank > 0.

SPEC holds ``out_dir``, ``trainer`` (Trainer keyword arguments), ``paths`` and ``texts``. The encoders are a
random-init ResNet18 (seed 0, 32 px, batch 2) and TF-IDF fitted on the texts, so every process and the test
build the same ones (:func:`encoders`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from prodmatch.distributed.predict import embed_with_trainer
from prodmatch.encoders.image import ImageEncoder
from prodmatch.encoders.tfidf import TfidfEncoder


def encoders(texts: list[str]) -> tuple[ImageEncoder, TfidfEncoder]:
    image = ImageEncoder(
        pretrained=False, seed=0, image_size=32, batch_size=2, num_workers=0, device="cpu", progress=False
    )
    return image, TfidfEncoder(dim=8).fit(texts)


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    image, tfidf = encoders(spec["texts"])
    out = Path(spec["out_dir"])
    embed_with_trainer(image, spec["paths"], out / "images", spec["trainer"])
    embed_with_trainer(tfidf, spec["texts"], out / "texts", spec["trainer"])


if __name__ == "__main__":
    main(sys.argv[1])
