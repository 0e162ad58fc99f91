"""Image embeddings of any network: image files in, one L2-normalised row per file out, one batch in flight.

:class:`ImageBatchEmbedder` owns everything between the files and the rows: decoding in DataLoader workers
(uint8 crops, 4x less to send than float, with a status per item) or reading the crops back from a pixel store
(:mod:`prodmatch.encoders.pixels`, with ``pixel_cache`` set: decoded once, read back by every later pass over the
same files), scaling and normalising each batch once on the network's device, and the copy of a batch's rows to
the host while the device runs the next batch. An image that passed the catalog's load check but cannot be
decoded now gives a NaN row and a count in the :class:`~prodmatch.encoders.base.EncodeResult`; a truncated file
is decoded as far as it goes and counted as a warning.

The network is used as it is: on its device, in eval mode (a network in training mode would embed with batch
statistics and dropout, so the embedder refuses it rather than switch it: the caller owns its mode).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from prodmatch.data.images import (
    IMAGE_UNREADABLE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    STATUS_REASONS,
    ImageDataset,
    build_transform,
    normalize_batch,
)
from prodmatch.encoders.base import IMAGE_MODALITY, EncodeResult
from prodmatch.encoders.pixels import PixelStoreDataset, StaleStoreError, open_store, store_writer
from prodmatch.errors import ConfigError
from prodmatch.utils import progress
from prodmatch.utils.hashing import stable_hash, state_digest
from prodmatch.utils.vectors import l2_normalize

__all__ = ["ImageBatchEmbedder", "image_result"]

log = logging.getLogger("prodmatch.encoders")

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]  # (uint8 crops [B, 3, S, S], statuses [B])
Launched = tuple[torch.Tensor, "torch.cuda.Event | None"]  # a batch's features bound for the host


class ImageBatchEmbedder:
    """Batched embeddings of image files by ``net`` (images -> ``[B, dim]`` rows), L2-normalised (see the module doc).

    It is an encoder in its own right (``encode``; cached under a digest of the net's weights) and the batching
    that the distributed loops drive one batch at a time (``dataset``, ``loader``, ``embed_batch``, ``stream``).
    ``mean`` / ``std``: the normalisation the net was trained with. ``pixel_cache``: a folder for pixel stores.
    """

    modality = IMAGE_MODALITY
    needs_fit = False

    def __init__(
        self,
        net: nn.Module,
        dim: int,
        image_size: int,
        batch_size: int = 64,
        num_workers: int = 2,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        pixel_cache: str | Path | None = None,
        progress: bool = True,
    ) -> None:
        check_batching(batch_size, num_workers)
        self.net = net
        self.dim = int(dim)
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.mean, self.std = tuple(mean), tuple(std)
        self.pixel_cache = str(pixel_cache) if pixel_cache else None
        self.progress = progress
        self._transform = build_transform(image_size, train=False, normalize=False)

    @property
    def embedder(self) -> ImageBatchEmbedder:
        """What the distributed loops batch: every image encoder exposes one (this one is its own)."""
        return self

    @property
    def network(self) -> nn.Module:
        return self.net

    def fit(self, texts: Sequence[str]) -> ImageBatchEmbedder:
        """Nothing to learn from a corpus."""
        return self

    def cache_key(self) -> str | None:
        """The net's live weights and what turns a file into a row: its architecture, a digest of its state dict
        (read now: a net in training changes), width, crop size and normalisation. The seeded initial net of a
        sweep's jobs therefore embeds a catalog once."""
        arch = stable_hash(type(self.net).__qualname__, repr(self.net))[:16]
        weights = state_digest(self.net.state_dict())
        return f"net|{arch}|{weights}|dim={self.dim}|size={self.image_size}|mean={self.mean}|std={self.std}"

    # ------------------------------------------------------------------------------------ whole lists
    def encode(self, inputs: Sequence[str | Path], out: np.ndarray | None = None) -> EncodeResult:
        """float32 [N, dim] rows in input order; NaN rows for images that cannot be read, counted.

        ``out``: a writable float32 [N, dim] array (e.g. a memory-mapped file) to fill instead of a new one.
        """
        paths = [str(p) for p in inputs]
        if out is None:
            out = np.empty((len(paths), self.dim), dtype=np.float32)
        statuses = np.zeros(len(paths), dtype=np.int8)

        def into_out(start: int, rows: np.ndarray, status: np.ndarray) -> None:
            out[start : start + len(rows)] = rows
            statuses[start : start + len(rows)] = status

        if paths:
            device = self.device
            try:
                self.stream(_numbered(self.batches(paths, device)), into_out, len(paths))
            except StaleStoreError as err:
                log.info("%s; decoding again", err)
                self.stream(_numbered(self._decoded(paths, device)), into_out, len(paths))
        return image_result(out, paths, statuses)

    def stream(
        self,
        batches: Iterable[tuple[Any, torch.Tensor, torch.Tensor]],
        sink: Callable[[Any, np.ndarray, np.ndarray], None],
        rows: int,
    ) -> None:
        """Embed ``(key, uint8 crops, statuses)`` batches into ``sink(key, rows, statuses)``, one batch in flight:
        the device runs a batch's forward pass while the host files the last one's rows, so a GPU never waits on
        the host (on the CPU it is the same loop, in order). ``rows``: how many images the batches hold."""
        self._check_eval()
        total = -(-rows // self.batch_size)
        in_flight: tuple[Any, Launched, np.ndarray] | None = None
        with torch.inference_mode():
            for key, images, status in tqdm(
                batches,
                desc=progress.describe("images"),
                unit="batch",
                total=total,
                disable=not self.progress,
            ):
                launched = (key, self._launch(images), status.cpu().numpy())
                if in_flight is not None:
                    _land(*in_flight, sink)
                in_flight = launched
            if in_flight is not None:
                _land(*in_flight, sink)

    # ------------------------------------------------------------------------------------ batches
    @property
    def device(self) -> torch.device:
        """Where the net's weights are: the caller (or a trainer) put them there."""
        param = next(self.net.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

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

    def batches(self, paths: list[str], device: torch.device) -> Batches:
        """(uint8 crops, statuses) of ``paths`` in order: read from the pixel store when one is written (raising
        :class:`~prodmatch.encoders.pixels.StaleStoreError` at the end if an image changed since), else decoded."""
        store = open_store(self.pixel_cache, paths, self.image_size) if self.pixel_cache else None
        if store is not None:
            return store.batches(self.batch_size, device, paths=paths)
        return self._decoded(paths, device)

    def _decoded(self, paths: list[str], device: torch.device) -> Batches:
        """Decoded batches of ``paths``, written to the pixel store on the way when ``pixel_cache`` is set."""
        writer = store_writer(self.pixel_cache, paths, self.image_size) if self.pixel_cache else None
        decoded = self.loader(paths, device)
        return decoded if writer is None else writer.tee(decoded)

    def embed_batch(self, images: torch.Tensor, statuses: torch.Tensor) -> np.ndarray:
        """float32 [B, dim] L2-normalised rows of a batch of decoded crops; NaN where the status is unreadable.

        For loops that hand over one batch at a time (Lightning's predict loop); the caller holds inference mode.
        """
        self._check_eval()
        return _host_rows(self._launch(images), statuses.cpu().numpy())

    def _launch(self, images: torch.Tensor) -> Launched:
        """Start a batch's forward pass: its float32 features, bound for host memory, and the event that says
        they have arrived (None on the CPU, where they are there already)."""
        device = self.device
        rows = images.shape[0]
        if 0 < rows < self.batch_size:
            # A row's vector must not depend on the rows beside it: oneDNN and cuDNN choose kernels by the batch's
            # shape, so a short batch is padded to the full size. The rows the embedding cache encodes alone (a
            # changed card) then equal a cold run's bit for bit.
            images = torch.cat([images, images.new_zeros((self.batch_size - rows, *images.shape[1:]))])
        batch = normalize_batch(images.to(device, non_blocking=True), self.mean, self.std)
        feats = self.net(batch).float()[:rows]
        if device.type != "cuda":
            return feats, None
        host = torch.empty(feats.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(feats, non_blocking=True)
        arrived = torch.cuda.Event()
        arrived.record()
        return host, arrived

    def _check_eval(self) -> None:
        if self.net.training:
            raise RuntimeError(
                f"{type(self.net).__name__} is in training mode: put it in eval mode (net.eval()) before "
                "embedding with it; its batch statistics and dropout would change every row"
            )


def check_batching(batch_size: int, num_workers: int) -> None:
    """One line for a batch size or worker count no DataLoader can take."""
    if batch_size <= 0 or num_workers < 0:
        raise ConfigError(
            f"image encoder: batch_size={batch_size}, num_workers={num_workers}; "
            "batch_size must be >= 1 and num_workers >= 0"
        )


def image_result(
    vectors: np.ndarray, paths: Sequence[str], statuses: np.ndarray, what: str = "image encoding"
) -> EncodeResult:
    """The result of embedding ``paths`` (an encode's, or a merged one's): what the statuses counted, with one
    warning line for what they hold (``what`` names the pass in it)."""
    result = EncodeResult.from_statuses(vectors, paths, statuses, STATUS_REASONS)
    if result.counts:
        met = "; ".join(
            f"{n} {reason.replace('_', ' ')}(s), e.g. {result.examples[reason]}"
            for reason, n in result.counts.items()
        )
        log.warning(
            "%s of %d files met %s; unreadable rows are NaN (dropped and counted), truncated "
            "images were decoded as far as the file goes",
            what,
            len(paths),
            met,
        )
    return result


def _numbered(batches: Batches) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Batches keyed by the position of their first row."""
    start = 0
    for images, status in batches:
        yield start, images, status
        start += len(images)


def _host_rows(launched: Launched, statuses: np.ndarray) -> np.ndarray:
    """A launched batch's rows once on the host: NaN where unreadable, then L2-normalised."""
    feats, arrived = launched
    if arrived is not None:
        arrived.synchronize()
    rows = feats.numpy()
    rows[statuses == IMAGE_UNREADABLE] = np.nan
    return l2_normalize(rows, inplace=True)


def _land(
    key: Any, launched: Launched, status: np.ndarray, sink: Callable[[Any, np.ndarray, np.ndarray], None]
) -> None:
    """Hand a launched batch's rows and statuses to ``sink``."""
    sink(key, _host_rows(launched, status), status)
