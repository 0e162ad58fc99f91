"""ResNet18 image embeddings: the 512-d pooled feature (classification head replaced by Identity).

An image that passed the catalog's load check but cannot be decoded now gives a NaN row and a count in
``encoder.stats`` instead of ending the run; a truncated file is decoded as far as it goes and counted as a
warning. DataLoader workers send uint8 crops (4x less than float) with a status per item; the batch is scaled
and normalised once, on the model's device. With ``pixel_cache`` set, the crops are decoded once and read back
from a pixel store (:mod:`prodmatch.encoders.pixels`) by every later pass over the same files.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import urlparse

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.models import ResNet18_Weights, resnet18
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
from prodmatch.encoders.base import IMAGE_MODALITY, EncodeStats
from prodmatch.encoders.device import resolve_device
from prodmatch.encoders.pixels import PixelStoreDataset, StaleStoreError, open_store, store_writer
from prodmatch.errors import ConfigError, WeightsUnavailableError, one_line
from prodmatch.utils.hashing import tree_identity
from prodmatch.utils.network import host_reachable
from prodmatch.utils.vectors import l2_normalize

__all__ = ["ImageEncoder", "build_resnet18", "resnet18_weights_file"]

log = logging.getLogger("prodmatch.encoders")

WEIGHTS_KEY = "encoders.image.weights"  # the config key users set to point at a local weights file
FEATURE_DIM = 512
_PATH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
# Prefixes that wrappers (DataParallel, Lightning modules, siamese heads) put in front of the ResNet keys.
_KEY_PREFIXES = ("module.", "model.", "backbone.", "encoder.")


def _is_enum_name(weights: str) -> bool:
    return weights == "DEFAULT" or weights in ResNet18_Weights.__members__


def _looks_like_path(weights: str) -> bool:
    return any(sep in weights for sep in ("/", "\\")) or weights.lower().endswith(_PATH_SUFFIXES)


def resnet18_weights_file(weights: str = "IMAGENET1K_V1") -> Path:
    """Where torchvision keeps (or would download) the file of a ResNet18 weights enum entry."""
    url = ResNet18_Weights[weights].url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _unavailable(what: str, reason: str, hint: str = "") -> WeightsUnavailableError:
    fix = f"{hint} or " if hint else ""
    return WeightsUnavailableError(
        f"{what} could not be loaded: {reason}; {fix}pass {WEIGHTS_KEY}=/path/to/resnet18.pth, "
        "or run with pretrained=false (random init)"
    )


def _enum_state_dict(name: str, progress: bool) -> dict[str, torch.Tensor]:
    enum = ResNet18_Weights[name]
    what = f"ResNet18 ImageNet weights ({enum.name})"
    target = resnet18_weights_file(name)
    hint = f"put {target.name} (from {enum.url}) at {target}"
    if not target.is_file() and not host_reachable(enum.url):
        raise _unavailable(
            what, f"not cached and {urlparse(enum.url).hostname} is unreachable (offline?)", hint
        )
    try:
        return enum.get_state_dict(progress=progress, check_hash=True)
    except (URLError, OSError, RuntimeError, ValueError, pickle.UnpicklingError) as err:
        raise _unavailable(what, one_line(err), hint) from err


def _file_state_dict(path_str: str) -> dict[str, torch.Tensor]:
    path = Path(path_str).expanduser()
    what = f"ResNet18 weights file {path}"
    if not path.is_file():
        raise _unavailable(what, "no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as err:
        raise _unavailable(what, f"not a loadable torch state_dict ({one_line(err)})") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # a Lightning checkpoint
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise _unavailable(what, f"holds a {type(state).__name__}, not a state_dict")
    return state


def _strip_prefixes(state: dict[str, Any]) -> dict[str, Any]:
    """Drop a common wrapper prefix so checkpoints of wrapped backbones load into a bare ResNet18."""
    for prefix in _KEY_PREFIXES:
        if "conv1.weight" not in state and f"{prefix}conv1.weight" in state:
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def _load_into(model: nn.Module, state: dict[str, Any], what: str) -> None:
    # The head is replaced anyway, so a checkpoint with any (or no) classifier loads.
    body = {k: v for k, v in _strip_prefixes(state).items() if not k.startswith("fc.")}
    expected = {k for k in model.state_dict() if not k.startswith("fc.")}
    missing = sorted(expected - body.keys())
    if missing:
        raise _unavailable(
            what, f"not a ResNet18 state_dict (missing {len(missing)} keys, e.g. {missing[0]})"
        )
    try:
        model.load_state_dict({k: body[k] for k in expected}, strict=False)
    except RuntimeError as err:
        raise _unavailable(what, f"tensor shapes do not match ResNet18 ({one_line(err, 120)})") from err


def build_resnet18(
    pretrained: bool = True, weights: str = "IMAGENET1K_V1", progress: bool = False
) -> nn.Module:
    """torchvision ResNet18 with ``fc = Identity`` (512-d output).

    ``weights``: a torchvision ``ResNet18_Weights`` name (downloaded once into the torch hub cache) or a local
    state_dict file. ``pretrained=False`` gives random init from the global torch RNG (the caller seeds).
    """
    model = resnet18(weights=None)
    if pretrained:
        weights = str(weights)
        if _is_enum_name(weights):
            name = ResNet18_Weights[weights].name  # "DEFAULT" -> the concrete entry
            _load_into(model, _enum_state_dict(name, progress), f"ResNet18 ImageNet weights ({name})")
        elif _looks_like_path(weights):
            _load_into(model, _file_state_dict(weights), f"ResNet18 weights file {weights}")
        else:
            names = ", ".join(ResNet18_Weights.__members__)
            raise ConfigError(
                f"{WEIGHTS_KEY}={weights!r} is neither a ResNet18_Weights name ({names}) nor a path to a "
                ".pth state_dict; use one of those, or pretrained=false"
            )
    model.fc = nn.Identity()
    return model


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
        if self.pretrained and not self._external and _is_enum_name(self.weights):
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
        elif _is_enum_name(self.weights):
            identity = ResNet18_Weights[self.weights].name
        else:
            path = Path(self.weights).expanduser()
            identity = tree_identity(path) if path.exists() else self.weights
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
        :class:`~prodmatch.encoders.pixels.StaleStoreError` at the end if an image changed since), else decoded."""
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
