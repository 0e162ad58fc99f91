"""A rerun after a few cards changed: the embedding cache embeds only those.

    python -m prodmatch.bench --incremental [--data-dir data/synthetic] [--changed 0.01] [--image-size 64]
        [--verify] [--json PATH] [--markdown bench/results.md]

Embeds the demo database's images (a copy of them, in a temporary folder) with a neural encoder, the project's
:class:`~prodmatch.encoders.image.ImageEncoder` (random-init ResNet18: the weights do not change the cost),
through a fresh :class:`~prodmatch.encoders.cache.EmbeddingCache` (``cold_s``); then replaces the images of a
seeded ``--changed`` share of the cards (mirrored, so their bytes differ) and embeds the catalog again with a new
encoder and cache object over the same folder, as the next run would (``rerun_s``; ``rerun_embedded``: the rows
it encoded). Both times include building the network and every cache lookup. ``--verify`` also embeds the
changed catalog cold in another cache and reports whether the rerun's vectors are identical.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from prodmatch.bench.common import machine_info, write_section
from prodmatch.data.catalog import load_catalog
from prodmatch.data.synthetic import ensure_catalog
from prodmatch.encoders.cache import EmbeddingCache
from prodmatch.encoders.image import ImageEncoder
from prodmatch.utils.atomic import write_json

__all__ = ["main", "measure"]


def _copied_images(data_dir: Path, dest: Path, limit: int) -> list[Path]:
    """The demo database's images copied under ``dest`` (the catalog is generated first when missing)."""
    csv = data_dir / "comparable_data.csv"
    if not csv.is_file():
        ensure_catalog(data_dir)
    paths = load_catalog(csv, data_dir).image_paths()
    paths = paths[:limit] if limit > 0 else paths
    copies = []
    for i, path in enumerate(paths):
        copy = dest / f"{i:07d}{Path(path).suffix}"
        shutil.copyfile(path, copy)
        copies.append(copy)
    return copies


def change_cards(paths: Sequence[Path], share: float, seed: int = 0) -> np.ndarray:
    """Replace the images of a seeded ``share`` of the cards by their mirror image; the positions changed."""
    n = max(1, round(share * len(paths)))
    changed = np.sort(np.random.default_rng(seed).choice(len(paths), n, replace=False))
    for i in changed:
        with Image.open(paths[i]) as img:
            mirrored, fmt = ImageOps.mirror(img.convert("RGB")), img.format
        mirrored.save(paths[i], format=fmt)
    return changed


def _encoder(image_size: int, batch_size: int, num_workers: int, device: str) -> ImageEncoder:
    return ImageEncoder(
        pretrained=False,
        image_size=image_size,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        progress=False,
    )


def _embed(root: Path, make_encoder: Any, paths: Sequence[Path]) -> tuple[float, np.ndarray, int]:
    """(seconds, vectors, rows encoded) of one run: a new encoder and cache object over ``root``."""
    start = time.perf_counter()
    cache = EmbeddingCache(root)
    vectors = np.asarray(cache.get_or_compute(make_encoder(), paths).vectors)
    return time.perf_counter() - start, vectors, cache.rows_embedded


def measure(
    data_dir: Path,
    share: float,
    image_size: int = 64,
    batch_size: int = 64,
    num_workers: int = 2,
    device: str = "auto",
    limit: int = 0,
    verify: bool = False,
) -> dict[str, Any]:
    """Cold run, change ``share`` of the cards, rerun (see the module docstring)."""

    def make_encoder() -> ImageEncoder:
        return _encoder(image_size, batch_size, num_workers, device)

    with tempfile.TemporaryDirectory(prefix="prodmatch-incremental-") as tmp:
        images, cache = Path(tmp) / "images", Path(tmp) / "cache"
        images.mkdir()
        paths = _copied_images(data_dir, images, limit)
        cold_s, _, cold_embedded = _embed(cache, make_encoder, paths)
        changed = change_cards(paths, share)
        rerun_s, rerun, rerun_embedded = _embed(cache, make_encoder, paths)
        result: dict[str, Any] = {
            "encoder": "ImageEncoder (ResNet18, random init)",
            "cards": len(paths),
            "image_size": image_size,
            "device": device,
            "cold_s": round(cold_s, 3),
            "cold_embedded": cold_embedded,
            "changed_share": round(len(changed) / len(paths), 4),
            "changed_cards": int(len(changed)),
            "rerun_s": round(rerun_s, 3),
            "rerun_embedded": rerun_embedded,
            "rerun_over_cold": round(rerun_s / cold_s, 4),
        }
        if verify:
            _, cold_changed, _ = _embed(Path(tmp) / "cold", make_encoder, paths)
            result["identical_to_cold"] = bool(np.array_equal(rerun, cold_changed, equal_nan=True))
    return result | {"machine": machine_info()}


def format_result(r: dict[str, Any]) -> str:
    lines = [
        f"{r['cards']} cards, {r['encoder']} at {r['image_size']} px",
        f"  cold:  {r['cold_s']:.2f} s ({r['cold_embedded']} rows embedded)",
        f"  rerun after {r['changed_cards']} changed cards ({r['changed_share']:.1%}): {r['rerun_s']:.2f} s "
        f"({r['rerun_embedded']} rows embedded), rerun / cold = {r['rerun_over_cold']:.3f}",
    ]
    if "identical_to_cold" in r:
        lines.append(f"  rerun vectors identical to a cold run: {r['identical_to_cold']}")
    return "\n".join(lines)


def to_markdown(r: dict[str, Any], command: str) -> str:
    machine = ", ".join(f"{k} {v}" for k, v in r["machine"].items())
    same = (
        f" The rerun's vectors are {'identical' if r['identical_to_cold'] else 'NOT identical'} to a cold run "
        "over the changed catalog."
        if "identical_to_cold" in r
        else ""
    )
    return "\n".join(
        [
            f"## A rerun after {r['changed_share']:.0%} of the cards changed",
            "",
            f"`{command}`: {r['cards']} demo database images, {r['encoder']} at {r['image_size']} px, a new "
            f"encoder and cache object per run (as a new process); {machine}.",
            "",
            "| run | wall | rows embedded |",
            "| --- | ---: | ---: |",
            f"| cold (empty cache) | {r['cold_s']:.2f} s | {r['cold_embedded']} |",
            f"| rerun, {r['changed_cards']} cards changed | {r['rerun_s']:.2f} s | {r['rerun_embedded']} |",
            "",
            f"rerun / cold = **{r['rerun_over_cold']:.3f}**.{same}",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prodmatch.bench --incremental", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data-dir", type=Path, default=Path("data/synthetic"), help="the demo catalog")
    parser.add_argument("--changed", type=float, default=0.01, help="share of the cards changed")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--limit", type=int, default=0, help="only the first N cards (0: all)")
    parser.add_argument("--verify", action="store_true", help="also compare with a cold run (one more pass)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    parser.add_argument("--markdown", type=Path, default=None, help="also write a section of this file")
    args = parser.parse_args(argv)
    if not 0 < args.changed <= 1:
        parser.error("--changed must be in (0, 1]")
    result = measure(
        args.data_dir, args.changed, args.image_size, args.batch_size, args.num_workers, args.device,
        args.limit, args.verify,
    )  # fmt: skip
    print(format_result(result))
    if args.json is not None:
        write_json(args.json, result)
    if args.markdown is not None:
        command = "python -m prodmatch.bench --incremental " + " ".join(
            sys.argv[1:] if argv is None else argv
        )
        write_section(args.markdown, "incremental", to_markdown(result, command.strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
