"""The encoder interface, the on-disk embedding cache and small helpers shared by the encoders."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import torch

from prodmatch.errors import ConfigError

if TYPE_CHECKING:
    from prodmatch.data.catalog import Catalog

__all__ = [
    "EmbeddingCache",
    "Encoder",
    "catalog_texts",
    "file_identity",
    "l2_normalize",
    "resolve_device",
    "short_reason",
    "stable_hash",
    "texts_hash",
]

log = logging.getLogger("prodmatch.encoders")


@runtime_checkable
class Encoder(Protocol):
    """Turns the rows of a catalog into L2-normalised float32 vectors, one row per card."""

    dim: int

    def prepare(self, catalogs: Sequence[Catalog], view: str) -> None:
        """Fit whatever depends on the data (vocabulary, tokenizer) on all catalogs of a run; may be a no-op."""

    def encode(self, catalog: Catalog, view: str) -> np.ndarray:
        """float32 [N, dim], rows L2-normalised, in catalog row order."""

    def cache_key(self, view: str) -> str | None:
        """Identity of everything that determines the vectors besides the catalog; None = never cache."""


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length as float32; all-zero rows stay zero instead of becoming NaN."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; anything else must be a valid torch device string."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device={device!r} is not a torch device; use auto, cpu, cuda or cuda:N") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but no CUDA GPU is available; use device=auto or device=cpu")
    return resolved


def stable_hash(*parts: object) -> str:
    """sha256 hex of a JSON rendering of ``parts`` (stable across processes, unlike ``hash``)."""
    payload = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def texts_hash(texts: Sequence[str]) -> str:
    """sha256 hex of a text corpus, order-sensitive."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\x00")  # separator: ["ab", "c"] and ["a", "bc"] must differ
    return digest.hexdigest()


def file_identity(path: str | Path) -> str:
    """Cheap identity of a file or directory tree: resolved path plus size and mtime of every file."""
    path = Path(path).expanduser().resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    stats = [(str(p.relative_to(path)) if path.is_dir() else p.name, *_stat(p)) for p in files]
    return f"{path}:{stable_hash(stats)[:16]}"


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def catalog_texts(catalogs: Sequence[Catalog], view: str) -> list[str]:
    """All texts of ``view`` from ``catalogs``, concatenated in order."""
    return [text for catalog in catalogs for text in catalog.texts(view)]


def short_reason(err: BaseException, limit: int = 200) -> str:
    """First line of an exception message, shortened, for one-line user errors."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reason = lines[0] if lines else type(err).__name__
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."


def image_files_stamp(catalog: Catalog) -> str:
    """Hash of every image file's size and modification time (a stat per file, no reads)."""
    try:
        stats = [os.stat(p) for p in catalog.image_paths()]
    except OSError:
        return "unreadable"  # encoding names the missing file with a clear error
    return stable_hash(*((st.st_size, st.st_mtime_ns) for st in stats))


class EmbeddingCache:
    """Embeddings on disk keyed by (encoder config, catalog content, view), so repeated runs skip encoding.

    A changed encoder config or catalog gives a different key and so a different file; stale files are simply
    never read again. ``root=None`` disables caching.
    """

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root).expanduser() if root is not None else None
        self.hits = 0
        self.misses = 0

    def path_for(self, encoder: Encoder, catalog: Catalog, view: str) -> Path | None:
        """The cache file for this triple, or None when the encoder is not cacheable or caching is off."""
        key = encoder.cache_key(view)
        if self.root is None or key is None:
            return None
        # Image embeddings also depend on the files: an image replaced in place must not hit a stale entry.
        files = image_files_stamp(catalog) if view == "image" else ""
        digest = stable_hash(key, catalog.fingerprint(), view, files)[:40]
        return self.root / f"{type(encoder).__name__.lower()}-{view}-{digest}.npy"

    def get_or_compute(self, encoder: Encoder, catalog: Catalog, view: str) -> np.ndarray:
        """Cached embeddings of ``catalog`` under ``view``, computing and storing them on a miss."""
        path = self.path_for(encoder, catalog, view)
        if path is None:
            return encoder.encode(catalog, view)
        cached = self._load(path, len(catalog))
        if cached is not None:
            self.hits += 1
            log.info(
                "embedding cache hit: %s/%s (%s) <- %s", catalog.name, view, type(encoder).__name__, path.name
            )
            return cached
        self.misses += 1
        log.info(
            "embedding cache miss: %s/%s (%s); encoding %d rows",
            catalog.name,
            view,
            type(encoder).__name__,
            len(catalog),
        )
        vectors = encoder.encode(catalog, view)
        self._save(path, vectors)
        return vectors

    @staticmethod
    def _load(path: Path, rows: int) -> np.ndarray | None:
        if not path.is_file():
            return None
        try:
            vectors = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:  # truncated or foreign file: recompute rather than fail
            log.warning("embedding cache file %s unreadable (%s); recomputing", path, short_reason(err))
            return None
        if vectors.ndim != 2 or vectors.shape[0] != rows or vectors.dtype != np.float32:
            log.warning(
                "embedding cache file %s has shape %s, expected %d rows; recomputing",
                path,
                vectors.shape,
                rows,
            )
            return None
        return vectors

    @staticmethod
    def _save(path: Path, vectors: np.ndarray) -> None:
        """Write via a temp file in the same folder + os.replace, so readers never see half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".npy.tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
