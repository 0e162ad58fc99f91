"""Embeddings on disk, so repeated runs (and the jobs of a sweep) skip encoding.

An entry is keyed by the encoder's :meth:`~prodmatch.encoders.base.Encoder.cache_key` (weights, parameters, the
fitted corpus), its modality and the identity of the inputs (the texts' hash; for images the paths plus each
file's size and mtime, so an image replaced in place misses). A changed key gives another file; stale files are
simply never read again.

Entries are ``.npy`` files written atomically and durably (temporary file, flushed, then renamed) with the usual
permissions, and are read back memory-mapped, so a large matrix is never held twice: big outputs are written by
the encoder straight into a memory-mapped temporary file, whose space is allocated first. A JSON file beside each
entry keeps what the encode met (e.g. unreadable images), so a hit returns the same
:class:`~prodmatch.encoders.base.EncodeResult` as the run that computed it.

The cache is an optimisation and never ends a run: an entry that is empty, short, unparsable or of the wrong
shape is a miss (one warning) and is written again; an entry that cannot be written (a full disk or quota, a
read-only folder) leaves no temporary file, and the vectors are used without the cache (one warning; the cache
writes nothing more in this run). Temporary files left by a writer killed mid-write (SIGKILL, the OOM killer) on
this host are removed before the next write.
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
from prodmatch.utils.atomic import (
    allocated_memmap,
    atomic_path,
    is_disk_full,
    remove_orphans,
    save_npy,
    write_json,
)
from prodmatch.utils.hashing import files_identity, stable_hash, texts_hash

__all__ = ["EmbeddingCache", "inputs_identity"]

log = logging.getLogger("prodmatch.encoders")

_FORMAT = 2  # bump when the entry layout changes
# Outputs at least this big are written by the encoder straight into a memory-mapped file (when it can).
MEMMAP_MIN_BYTES = 64 << 20


def inputs_identity(modality: str, inputs: Sequence[str | Path]) -> str | None:
    """Texts: their hash. Images: paths plus each file's identity (stat or content, see ``data.identity``); None
    when a file cannot be read."""
    if modality != IMAGE_MODALITY:
        return texts_hash(str(t) for t in inputs)
    paths = [str(p) for p in inputs]
    try:
        return f"{texts_hash(paths)}:{files_identity(paths)}"
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
        self.writable = True  # False after a write failed (a full disk): read what is there, write no more
        self._swept = False
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
        self._remove_orphans()
        result = self._compute(encoder, inputs, path)
        loaded = self._load(path, len(inputs)) if path.is_file() else None
        return result if loaded is None else _result(*loaded)  # read back memory-mapped: one copy, read-only

    def _remove_orphans(self) -> None:
        """Once per cache object: remove what writers killed mid-write on this host left in the folder."""
        if self._swept or self.root is None or not self.root.is_dir():
            return
        self._swept = True
        try:
            if removed := remove_orphans(self.root):
                log.info(
                    "embedding cache: removed %d temporary files of killed writers in %s", removed, self.root
                )
        except OSError:
            pass  # a folder we cannot clean is still one we can read

    def _compute(self, encoder: Encoder, inputs: Sequence[str | Path], path: Path) -> EncodeResult:
        """Encode into the entry: straight into a memory-mapped temp file when big, else in memory. When the
        entry cannot be written, the vectors are returned all the same (see :meth:`_write_failed`)."""
        rows = len(inputs)
        if self.writable and _accepts_out(encoder) and rows * encoder.dim * 4 >= self.memmap_min_bytes:
            out, met = None, None
            try:
                with atomic_path(path) as tmp:
                    # space allocated first: a full disk is an OSError here, never a SIGBUS while encoding
                    out = allocated_memmap(tmp, np.float32, (rows, encoder.dim))
                    met = encoder.encode(inputs, out=out)  # the encoder normalises ``out`` in place
                    out.flush()
                    self._write_meta(path, met, rows)  # before the rename publishes the vectors
                return EncodeResult(out, met.counts, met.examples)
            except OSError as err:
                if out is None:  # no room for the entry (or no folder): encode in memory instead
                    self._write_failed(path, err)
                    return _in_memory(encoder.encode(inputs))
                if met is None:
                    raise  # the encoder's own error
                # whole: the map outlives its removed temporary file
                self._write_failed(path, err)
                return EncodeResult(out, met.counts, met.examples)
        result = _in_memory(encoder.encode(inputs))
        if self.writable:
            try:
                self._write_meta(path, result, rows)
                save_npy(path, result.vectors)
            except OSError as err:
                self._write_failed(path, err)
        return result

    def _write_failed(self, path: Path, err: OSError) -> None:
        """One warning, then no more writes in this run; a meta file without its vectors is removed."""
        if not path.is_file():
            _meta_path(path).unlink(missing_ok=True)
        self.writable = False
        why = "no space left on the disk (or quota)" if is_disk_full(err) else one_line(err)
        log.warning(
            "embedding cache: cannot write %s in %s (%s); encoding without the cache in this run (free space "
            "there, point paths.cache_dir elsewhere, or set cache=false)",
            path.name,
            path.parent,
            why,
        )

    @staticmethod
    def _write_meta(path: Path, result: EncodeResult, rows: int) -> None:
        meta = {"rows": rows, "stats": dict(result.counts), "examples": dict(result.examples)}
        write_json(_meta_path(path), meta)

    @staticmethod
    def _load(path: Path, rows: int) -> tuple[np.ndarray, dict] | None:
        """The entry's vectors and meta, or None: absent, or unusable (empty, short, unparsable or of the wrong
        shape: one warning, and the caller writes it again)."""
        if not path.is_file():
            return None
        try:
            meta = json.loads(_meta_path(path).read_text(encoding="utf-8"))
            vectors = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:  # missing, empty, truncated or foreign: recompute
            log.warning("embedding cache entry %s unreadable (%s); recomputing", path.name, one_line(err))
            return None
        if not isinstance(meta, dict) or meta.get("rows", rows) != rows:
            log.warning("embedding cache entry %s has a foreign meta file; recomputing", path.name)
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


def _in_memory(result: EncodeResult) -> EncodeResult:
    """``result`` with its vectors as a float32 array (what an entry holds)."""
    return EncodeResult(np.asarray(result.vectors, dtype=np.float32), result.counts, result.examples)


def _result(vectors: np.ndarray, meta: dict) -> EncodeResult:
    """A cache entry as the encode result that wrote it."""
    return EncodeResult(vectors, dict(meta.get("stats", {})), dict(meta.get("examples", {})))


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".json")
