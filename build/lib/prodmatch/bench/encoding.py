"""Encoding benchmark: ResNet18 embedding of decoded images, batched vs one at a time."""

from __future__ import annotations

from prodmatch.bench.common import BenchContext, Row, timed


def bench_encoding(ctx: BenchContext) -> list[Row]:
    """ResNet18 embedding of decoded images: batches of 64 (as the encoders do) vs one image at a time."""
    import torch
    from torchvision.models import resnet18

    cfg = ctx.cfg
    torch.manual_seed(cfg.seed)
    model = resnet18(weights=None).eval()
    model.fc = torch.nn.Identity()
    images = torch.randn(cfg.encode_images, 3, cfg.encode_size, cfg.encode_size)

    def run(batch: int) -> None:
        with torch.inference_mode():
            for start in range(0, len(images), batch):
                model(images[start : start + batch])

    size = f"{cfg.encode_images} images x {cfg.encode_size} px"
    batched, _ = timed(lambda: run(64), cfg.repeats)
    single, _ = timed(lambda: run(1), cfg.repeats)
    return [
        Row("ResNet18 encoding, batch 64", size, batched, f"{cfg.encode_images / batched:.0f} images/s"),
        Row("ResNet18 encoding, one at a time", size, single, f"batching is {single / batched:.1f}x faster"),
    ]
