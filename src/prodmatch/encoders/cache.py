"""Embeddings on disk, so repeated runs (and the jobs of a sweep) skip encoding.

An entry is keyed by the encoder's :meth:`~prodmatch.encoders.base.Encoder.cache_key` (weights, parameters, the
fitted corpus), its modality and the identity of the inputs (the texts' hash; for images the paths plus each
file's size and mtime, so an image replaced in place misses). A changed key gives another file; stale files are
simply never read again.

Entries are ``.npy`` files written atomically (temporary file, then rename) with the usual permissions, and are
read back memory-mapped, so a large matrix is never held twice: big outputs are written by the encoder straight
into a memory-mapped temporary file. A JSON file beside each entry keeps what the encode met (e.g. unreadable
images), so a hit returns the same :class:`~prodmatch.encoders.base.EncodeResult` as the run that computed it.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prodmatch.encoders.base import IMAGE_MODALITY, Encoder, EncodeResult
from prodmatch.errors import one_line
from prodmatch.utils.atomic import atomic_path, save_npy, write_json
from prodmatch.utils.hashing import stable_hash, stats_hash, texts_hash

__all__ = ["EmbeddingCache", "inputs_identity"]

log = logging.getLogger("prodmatch.encoders")

_FORMAT = 2  # bump when the entry layout changes
# Outputs at least this big are written by the encoder straight into a memory-mapped file (when it can).
MEMMAP_MIN_BYTES = 64 << 20


def inputs_identity(modality: str, inputs: Sequence[str | Path]) -> str | None:
    """Texts: their hash. Images: paths plus each file's size and mtime; None when a file cannot be stat-ed."""
    if modality != IMAGE_MODALITY:
        return texts_hash(str(t) for t in inputs)
    paths = [str(p) for p in inputs]
    try:
        return f"{texts_hash(paths)}:{stats_hash(paths)}"
    except OSError:
        return None  # a missing file: encode without caching (its row comes back NaN and counted)


def _accepts_out(encoder: Encoder) -> bool:
    try:
        return "out" in inspect.signature(encoder.encode).parameters
    except (TypeError, ValueError):
        return False


class EmbeddingCache:
    """``get_or_compute(encoder, inputs)``: the cached vectors, or encode and store them. ``root=None``: off."""

    def __init__(self, root: str | Path | None, memmap_min_bytes: int = MEMMAP_MIN_BYTES) -> None:
        self.root = Path(root).expanduser() if root is not None else None
        self.memmap_min_bytes = memmap_min_bytes
        self.hits = 0
        self.misses = 0

    def path_for(self, encoder: Encoder, inputs: Sequence[str | Path]) -> Path | None:
        """The entry's ``.npy`` path, or None when caching is off, the encoder uncacheable or inputs unstable."""
        key = encoder.cache_key()
        if self.root is None or key is None:
            return None
        identity = inputs_identity(encoder.modality, inputs)
        if identity is None:
            return None
        digest = stable_hash(_FORMAT, key, encoder.modality, identity)[:40]
        return self.root / f"{type(encoder).__name__.lower()}-{encoder.modality}-{digest}.npy"

    def get_or_compute(self, encoder: Encoder, inputs: Sequence[str | Path]) -> EncodeResult:
        """The encode result of ``inputs``, its vectors a read-only memory map when cached."""
        path = self.path_for(encoder, inputs)
        if path is None:
            return encoder.encode(inputs)
        cached = self._load(path, len(inputs))
        if cached is not None:
            self.hits += 1
            log.info(
                "embedding cache hit: %d %s inputs (%s) <- %s",
                len(inputs),
                encoder.modality,
                type(encoder).__name__,
                path.name,
            )
            return _result(*cached)
        self.misses += 1
        log.info(
            "embedding cache miss: %d %s inputs (%s); encoding",
            len(inputs),
            encoder.modality,
            type(encoder).__name__,
        )
        self._compute(encoder, inputs, path)
        loaded = self._load(path, len(inputs))
        if loaded is None:  # e.g. the cache folder vanished meanwhile: nothing left to read back
            return encoder.encode(inputs)
        return _result(*loaded)

    def _compute(self, encoder: Encoder, inputs: Sequence[str | Path], path: Path) -> None:
        """Encode into the entry: straight into a memory-mapped temp file when big, else in memory."""
        rows = len(inputs)
        if _accepts_out(encoder) and rows * encoder.dim * 4 >= self.memmap_min_bytes:
            with atomic_path(path) as tmp:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, encoder.dim))
                met = encoder.encode(inputs, out=out)  # the encoder normalises ``out`` in place
                out.flush()
                self._write_meta(path, met, rows)  # before the rename publishes the vectors
                del out, met
            return
        result = encoder.encode(inputs)
        self._write_meta(path, result, rows)
        save_npy(path, np.asarray(result.vectors, dtype=np.float32))

    @staticmethod
    def _write_meta(path: Path, result: EncodeResult, rows: int) -> None:
        meta = {"rows": rows, "stats": dict(result.counts), "examples": dict(result.examples)}
        write_json(_meta_path(path), meta)

    @staticmethod
    def _load(path: Path, rows: int) -> tuple[np.ndarray, dict] | None:
        if not path.is_file():
            return None
        try:
            meta = json.loads(_meta_path(path).read_text(encoding="utf-8"))
            vectors = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:  # missing, truncated or foreign file: recompute rather than fail
            log.warning("embedding cache entry %s unreadable (%s); recomputing", path.name, one_line(err))
            return None
        if vectors.ndim != 2 or vectors.shape[0] != rows or vectors.dtype != np.float32:
            log.warning(
                "embedding cache entry %s has shape %s, expected %d rows; recomputing",
                path.name,
                vectors.shape,
                rows,
            )
            return None
        return vectors, meta


def _result(vectors: np.ndarray, meta: dict) -> EncodeResult:
    """A cache entry as the encode result that wrote it."""
    return EncodeResult(vectors, dict(meta.get("stats", {})), dict(meta.get("examples", {})))


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".json")
