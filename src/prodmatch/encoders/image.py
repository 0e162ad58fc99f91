"""ResNet18 image embeddings: the 512-d pooled feature (the backbone is :mod:`prodmatch.backbones.resnet`'s).

An image that passed the catalog's load check but cannot be decoded now gives a NaN row and a count in
``encoder.stats`` instead of ending the run; a truncated file is decoded as far as it goes and counted as a
warning. DataLoader workers send uint8 crops (4x less than float) with a status per item; the batch is scaled
and normalised once, on the model's device. With ``pixel_cache`` set, the crops are decoded once and read back
from a pixel store (:mod:`prodmatch.data.pixels`) by every later pass over the same files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.models import ResNet18_Weights
from tqdm.auto import tqdm

from prodmatch.backbones.resnet import FEATURE_DIM, build_resnet18, is_weights_name
from prodmatch.data.images import (
    IMAGE_UNREADABLE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    STATUS_REASONS,
    ImageDataset,
    build_transform,
    normalize_batch,
)
from prodmatch.data.pixels import PixelStoreDataset, StaleStoreError, open_store, store_writer
from prodmatch.encoders.base import IMAGE_MODALITY, EncodeStats
from prodmatch.encoders.device import resolve_device
from prodmatch.errors import ConfigError
from prodmatch.utils.hashing import weights_digest
from prodmatch.utils.vectors import l2_normalize

__all__ = ["ImageEncoder"]

log = logging.getLogger("prodmatch.encoders")


class ImageEncoder:
    """Batched ResNet18 image embeddings through a DataLoader (decoding in workers), L2-normalised.

    ``backbone``: a ready network (a training module's live backbone): never cached, evaluated in eval mode
    and left in the training mode it was in, on the device the trainer put it. ``pixel_cache``: a folder for
    pixel stores (decode once, read the crops back on later passes); None decodes every pass.
    """

    modality = IMAGE_MODALITY
    needs_fit = False
    dim = FEATURE_DIM

    def __init__(
        self,
        pretrained: bool = True,
        weights: str = "IMAGENET1K_V1",
        image_size: int = 224,
        batch_size: int = 64,
        num_workers: int = 2,
        device: str = "auto",
        backbone: nn.Module | None = None,
        seed: int = 0,
        progress: bool = True,
        pixel_cache: str | None = None,
    ) -> None:
        if batch_size <= 0 or num_workers < 0:
            raise ConfigError(
                f"image encoder: batch_size={batch_size}, num_workers={num_workers}; "
                "batch_size must be >= 1 and num_workers >= 0"
            )
        self.pretrained = pretrained
        self.weights = str(weights)
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.device = device
        self.seed = seed
        self.progress = progress
        self.pixel_cache = pixel_cache
        self.stats: EncodeStats = {}
        self.stats_examples: dict[str, str] = {}  # reason -> first input met with it
        self._external = backbone is not None  # a training module's backbone: its weights change, never cache
        self._model = backbone
        self._mean, self._std = self._normalisation()
        self._transform = build_transform(image_size, train=False, normalize=False)

    def _normalisation(self) -> tuple[Sequence[float], Sequence[float]]:
        """The mean/std the weights were trained with (torchvision's meta), ImageNet's otherwise."""
        if self.pretrained and not self._external and is_weights_name(self.weights):
            preset = ResNet18_Weights[self.weights].transforms()
            return tuple(preset.mean), tuple(preset.std)
        return IMAGENET_MEAN, IMAGENET_STD

    @property
    def model(self) -> nn.Module:
        """The backbone, built (and its weights loaded) on first use."""
        if self._model is None:
            # Seeded in a forked RNG: random init is reproducible without disturbing the caller's stream.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self._model = build_resnet18(self.pretrained, self.weights)
            self._model.to(resolve_device(self.device))
        return self._model

    def fit(self, texts: Sequence[str]) -> ImageEncoder:
        """Nothing to learn from a corpus."""
        return self

    def cache_key(self) -> str | None:
        if self._external:
            return None
        if not self.pretrained:
            identity = f"random(seed={self.seed})"
        elif is_weights_name(self.weights):
            identity = ResNet18_Weights[self.weights].name
        else:
            path = Path(self.weights).expanduser()
            try:  # the file's bytes, not its path: weights replaced at the same path are other weights
                identity = f"file:{weights_digest(path)}" if path.exists() else self.weights
            except OSError:
                return None  # unreadable: loading it will say so; nothing to key a cache entry by
        return f"resnet18|weights={identity}|pretrained={self.pretrained}|image_size={self.image_size}"

    def dataset(self, paths: Sequence[str | Path]) -> ImageDataset | PixelStoreDataset:
        """Items (uint8 crop [3, S, S], status) in input order: from the pixel store when one is written and its
        files are unchanged, else decoded lazily (in DataLoader workers)."""
        names = [str(p) for p in paths]
        store = open_store(self.pixel_cache, names, self.image_size) if self.pixel_cache else None
        if store is not None and store.matches(names):
            return PixelStoreDataset(store)
        return self._decoding_dataset(paths)

    def _decoding_dataset(self, paths: Sequence[str | Path]) -> ImageDataset:
        return ImageDataset(paths, self._transform, size_hint=self.image_size, with_status=True)

    def loader(self, paths: Sequence[str | Path], device: torch.device) -> DataLoader:
        """Batches of (uint8 crops [B, 3, S, S], statuses [B]) in input order, decoded in worker processes."""
        return DataLoader(
            self._decoding_dataset(paths),
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=device.type == "cuda",
        )

    def encode(self, inputs: Sequence[str | Path], out: np.ndarray | None = None) -> np.ndarray:
        """float32 [N, 512], L2-normalised, in input order; NaN rows for images that cannot be read.

        ``out``: a writable float32 [N, 512] array (e.g. a memory-mapped file) to fill instead of a new one.
        """
        paths = [str(p) for p in inputs]
        if out is None:
            out = np.empty((len(paths), self.dim), dtype=np.float32)
        statuses = np.zeros(len(paths), dtype=np.int8)
        if paths:
            self._forward_all(paths, out, statuses)
        self.record_stats(paths, statuses)
        return out

    def _forward_all(self, paths: list[str], out: np.ndarray, statuses: np.ndarray) -> None:
        model = self.model
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                device = _device_of(model)
                try:
                    self._run_pass(self.batches(paths, device), len(paths), out, statuses)
                except StaleStoreError as err:
                    log.info("%s; decoding again", err)
                    self._run_pass(self._decoded(paths, device), len(paths), out, statuses)
        finally:
            model.train(was_training)  # a training module's backbone goes back to the mode it was in

    def _run_pass(
        self,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        rows: int,
        out: np.ndarray,
        statuses: np.ndarray,
    ) -> None:
        """Embed ``batches`` into ``out`` / ``statuses``, one batch in flight: the device runs a batch's forward
        pass while the host files the last one's rows, so a GPU never waits on the host (on the CPU it is the
        same loop, in order)."""
        total = -(-rows // self.batch_size)
        start, in_flight = 0, None
        for images, status in tqdm(
            batches, desc="images", unit="batch", total=total, disable=not self.progress
        ):
            launched = (start, self._launch(images), status.numpy())
            if in_flight is not None:
                _file_rows(*in_flight, out, statuses)
            in_flight, start = launched, start + len(images)
        if in_flight is not None:
            _file_rows(*in_flight, out, statuses)

    def batches(self, paths: list[str], device: torch.device) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """(uint8 crops, statuses) of ``paths`` in order: read from the pixel store when one is written (raising
        :class:`~prodmatch.data.pixels.StaleStoreError` at the end if an image changed since), else decoded."""
        store = open_store(self.pixel_cache, paths, self.image_size) if self.pixel_cache else None
        if store is not None:
            return store.batches(self.batch_size, device, paths=paths)
        return self._decoded(paths, device)

    def _decoded(self, paths: list[str], device: torch.device) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """Decoded batches of ``paths``, written to the pixel store on the way when ``pixel_cache`` is set."""
        writer = store_writer(self.pixel_cache, paths, self.image_size) if self.pixel_cache else None
        decoded = self.loader(paths, device)
        return decoded if writer is None else writer.tee(decoded)

    def embed_batch(self, images: torch.Tensor, statuses: torch.Tensor) -> np.ndarray:
        """float32 [B, 512] L2-normalised rows of a batch of decoded crops; NaN where the status is unreadable.

        The caller puts the backbone in eval and inference mode (``encode``, Lightning's predict loop).
        """
        return _host_rows(self._launch(images), statuses.cpu().numpy())

    def _launch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.Event | None]:
        """Start a batch's forward pass: its float32 features, bound for host memory, and the event that says
        they have arrived (None on the CPU, where they are there already)."""
        model = self.model
        device = _device_of(model)
        feats = model(normalize_batch(images.to(device, non_blocking=True), self._mean, self._std)).float()
        if device.type != "cuda":
            return feats, None
        host = torch.empty(feats.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(feats, non_blocking=True)
        arrived = torch.cuda.Event()
        arrived.record()
        return host, arrived

    def record_stats(self, paths: Sequence[str], statuses: np.ndarray) -> None:
        """Set ``stats`` / ``stats_examples`` from the statuses of ``paths`` (an encode's, or a merged one's) and log
        one warning line for what they hold."""
        self.stats, self.stats_examples = {}, {}
        parts = []
        for code, reason in STATUS_REASONS.items():
            rows = np.flatnonzero(statuses == code)
            if rows.size:
                self.stats[reason] = int(rows.size)
                self.stats_examples[reason] = paths[rows[0]]
                parts.append(f"{rows.size} {reason.replace('_', ' ')}(s), e.g. {paths[rows[0]]}")
        if parts:
            log.warning(
                "image encoding of %d files met %s; unreadable rows are NaN (dropped and counted), truncated "
                "images were decoded as far as the file goes",
                len(paths),
                "; ".join(parts),
            )


def _host_rows(launched: tuple[torch.Tensor, torch.cuda.Event | None], statuses: np.ndarray) -> np.ndarray:
    """A launched batch's rows once on the host: NaN where unreadable, then L2-normalised."""
    feats, arrived = launched
    if arrived is not None:
        arrived.synchronize()
    rows = feats.numpy()
    rows[statuses == IMAGE_UNREADABLE] = np.nan
    return l2_normalize(rows, inplace=True)


def _file_rows(
    start: int,
    launched: tuple[torch.Tensor, torch.cuda.Event | None],
    status: np.ndarray,
    out: np.ndarray,
    statuses: np.ndarray,
) -> None:
    """Write a launched batch's rows and statuses at ``start`` of ``out`` / ``statuses``."""
    rows = _host_rows(launched, status)
    out[start : start + len(rows)] = rows
    statuses[start : start + len(rows)] = status


def _device_of(model: nn.Module) -> torch.device:
    """Where the backbone's weights are: ``device`` for a built one, wherever a trainer put any other."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
