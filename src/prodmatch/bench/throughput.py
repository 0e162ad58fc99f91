"""Image-embedding throughput: loader only, forward only and end to end, on the same batches.

    python -m prodmatch.bench --throughput [--data-dir data/synthetic] [--image-size 64] [--json PATH]

Embeds the demo database's images with the project's :class:`~prodmatch.encoders.image.ImageEncoder`
(random-init ResNet18: the weights do not change the cost; its
:class:`~prodmatch.encoders.image_embedder.ImageBatchEmbedder` does the work) and reports images per second for

- ``loader``: decoding and cropping in the DataLoader workers, no model;
- ``forward``: the model on the same batches, already decoded and held in memory;
- ``end_to_end``: ``encoder.encode(paths)``, i.e. both, as a run pays for them;
- ``store_write``: the same, writing the pixel store on the way (a training run's first evaluation);
- ``store_read``: ``encode`` reading the crops back from that store (every later evaluation of the run, and
  the other runs of a sweep);

and the ratios ``end_to_end / forward`` and ``store_read / forward`` (the target: >= 0.7 on a 2-core CPU,
>= 0.9 on a GPU) and ``loader / forward``. Each figure is the median of ``--repeats`` timed passes after one
warm-up pass.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from prodmatch.bench.common import machine_info, write_section
from prodmatch.data.catalog import load_catalog
from prodmatch.data.images import normalize_batch
from prodmatch.data.synthetic import ensure_catalog
from prodmatch.encoders.image import ImageEncoder
from prodmatch.encoders.image_embedder import ImageBatchEmbedder
from prodmatch.utils.atomic import write_json

__all__ = ["main", "measure"]


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _image_paths(data_dir: Path, limit: int) -> list[Path]:
    """The demo database's image paths (the catalog is generated first when missing)."""

    csv = data_dir / "comparable_data.csv"
    if not csv.is_file():
        ensure_catalog(data_dir)
    paths = load_catalog(csv, data_dir).image_paths()
    return paths[:limit] if limit > 0 else paths


def measure(
    paths: Sequence[str | Path],
    image_size: int = 64,
    batch_size: int = 64,
    num_workers: int = 2,
    device: str = "auto",
    repeats: int = 3,
) -> dict[str, Any]:
    """Images per second of loader, forward and end-to-end passes over ``paths``, plus their ratios."""

    encoder = ImageEncoder(
        pretrained=False,
        image_size=image_size,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        progress=False,
    )
    embedder = encoder.embedder
    model, target = embedder.net, embedder.device
    sync = torch.cuda.synchronize if target.type == "cuda" else (lambda: None)
    batches = [images for images, _ in embedder.loader(paths, target)]  # the same batches for every pass

    def forward() -> None:
        with torch.inference_mode():
            for images in batches:
                model(normalize_batch(images.to(target, non_blocking=True))).float().cpu()
        sync()

    def loader() -> None:
        for _ in embedder.loader(paths, target):
            pass

    def end_to_end(through: ImageBatchEmbedder = embedder) -> None:
        through.encode(paths)
        sync()

    store_root = Path(tempfile.mkdtemp(prefix="prodmatch-pixels-"))
    stored = ImageBatchEmbedder(
        model, embedder.dim, image_size, batch_size, num_workers, embedder.mean, embedder.std,
        pixel_cache=store_root, progress=False,
    )  # fmt: skip

    def store_write() -> None:
        shutil.rmtree(store_root, ignore_errors=True)  # every pass writes the store anew
        end_to_end(stored)

    def store_read() -> None:
        end_to_end(stored)  # reads the store the last write pass left

    end_to_end()  # warm-up: first-touch allocations, lazy init, page cache
    try:
        seconds = {
            "loader": _median_seconds(loader, repeats),
            "forward": _median_seconds(forward, repeats),
            "end_to_end": _median_seconds(end_to_end, repeats),
            "store_write": _median_seconds(store_write, repeats),
            "store_read": _median_seconds(store_read, repeats),
        }
    finally:
        shutil.rmtree(store_root, ignore_errors=True)
    rates = {name: len(paths) / s for name, s in seconds.items()}
    return {
        "images": len(paths),
        "image_size": image_size,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "device": str(target),
        "device_name": torch.cuda.get_device_name(target) if target.type == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "img_per_s": rates,
        "end_to_end_over_forward": rates["end_to_end"] / rates["forward"],
        "store_read_over_forward": rates["store_read"] / rates["forward"],
        "loader_over_forward": rates["loader"] / rates["forward"],
    }


def format_result(result: dict[str, Any]) -> str:
    """A few readable lines for the terminal."""
    rates = result["img_per_s"]
    return "\n".join(
        [
            f"{result['images']} images at {result['image_size']} px, batch {result['batch_size']}, "
            f"{result['num_workers']} workers, {result['device']} ({result['torch_threads']} torch threads)",
            *(f"  {name:<12} {rate:8.1f} img/s" for name, rate in rates.items()),
            f"  end_to_end / forward = {result['end_to_end_over_forward']:.2f}",
            f"  store_read / forward = {result['store_read_over_forward']:.2f}",
            f"  loader / forward     = {result['loader_over_forward']:.2f}",
        ]
    )


def to_markdown(result: dict[str, Any], command: str) -> str:
    """A bench/results.md section: the three rates and the two ratios, with the command and the machine."""
    rates = result["img_per_s"]
    machine = ", ".join(f"{k} {v}" for k, v in machine_info().items())
    return "\n".join(
        [
            f"## Image-embedding throughput at {result['image_size']} px "
            f"({', '.join(filter(None, [result['device'], result.get('device_name')]))})",
            "",
            f"`{command}`: {result['images']} images, batch {result['batch_size']}, "
            f"{result['num_workers']} DataLoader workers, {result['torch_threads']} torch threads; {machine}.",
            "Median of the timed passes after one warm-up pass; forward only runs on the same batches, decoded "
            "beforehand and held in memory. Store write: end to end, writing the pixel store of decoded crops on "
            "the way; store read: end to end from that store (a training run's later evaluations).",
            "",
            "| pass | images/s |",
            "| --- | ---: |",
            *(f"| {name.replace('_', ' ')} | {rate:,.0f} |" for name, rate in rates.items()),
            "",
            f"End to end / forward only = **{result['end_to_end_over_forward']:.2f}** decoding, "
            f"**{result['store_read_over_forward']:.2f}** from the pixel store; "
            f"loader / forward only = {result['loader_over_forward']:.2f}.",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prodmatch.bench --throughput", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path("data/synthetic"), help="the demo catalog's folder"
    )
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--limit", type=int, default=0, help="embed only the first N images (0: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    parser.add_argument(
        "--markdown", type=Path, default=None, help="also write a section of this markdown file"
    )
    args = parser.parse_args(argv)
    paths = _image_paths(args.data_dir, args.limit)
    result = measure(paths, args.image_size, args.batch_size, args.num_workers, args.device, args.repeats)
    print(format_result(result))
    if args.json is not None:
        write_json(args.json, result)
    if args.markdown is not None:
        import sys

        command = "python -m prodmatch.bench --throughput " + " ".join(sys.argv[1:] if argv is None else argv)
        name = f"throughput-{result['image_size']}-{result['device'].split(':')[0]}"
        write_section(args.markdown, name, to_markdown(result, command.strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
