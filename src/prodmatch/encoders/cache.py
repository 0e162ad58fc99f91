"""Embeddings on disk, row by row, so repeated runs (and the jobs of a sweep) skip encoding, and a changed
catalog embeds only its changed cards.

Rows are stored per encoder identity (its :meth:`~prodmatch.encoders.base.Encoder.cache_key`: weights,
parameters, the fitted corpus; and its modality) and found by their input (a text's digest; an image's path and
file identity, so an image replaced in place misses): see :mod:`prodmatch.encoders.rows`. A call whose inputs
were all stored by one earlier call in the same order is read back memory-mapped, without a copy; otherwise the
stored rows are gathered, the missing ones encoded (each distinct input once) and stored as a new segment. A
changed encoder key gives another folder; stale folders are simply never read again. Each segment keeps what
its rows met (e.g. unreadable images), so a hit returns the same
:class:`~prodmatch.encoders.base.EncodeResult` as the run that computed it.

Files are written atomically and durably (temporary file, flushed, then renamed) with the usual permissions.
Big outputs are written by the encoder straight into a memory-mapped temporary file whose space is allocated
first, so a large matrix is never held twice.

The cache is an optimisation and never ends a run: a segment that is empty, short, unparsable or of the wrong
shape is dropped (one warning) and its rows written again; a segment that cannot be written (a full disk or
quota, a read-only folder) leaves no temporary file, and the vectors are used without the cache (one warning;
the cache writes nothing more in this run). Temporary files left by a writer killed mid-write (SIGKILL, the OOM
killer) on this host are removed before the next write.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prodmatch.encoders.base import Encoder, EncodeResult, merge_results
from prodmatch.encoders.rows import RowStore, gather, replay, row_keys, status_rows, statuses_of
from prodmatch.errors import one_line
from prodmatch.utils.atomic import allocated_memmap, atomic_path, is_disk_full, remove_orphans
from prodmatch.utils.hashing import stable_hash

__all__ = ["EmbeddingCache"]

log = logging.getLogger("prodmatch.encoders")

_FORMAT = 3  # bump when the storage layout changes (3: rows stored by their input)
# Outputs at least this big are written by the encoder straight into a memory-mapped file (when it can).
MEMMAP_MIN_BYTES = 64 << 20


def _accepts_out(encoder: Encoder) -> bool:
    try:
        return "out" in inspect.signature(encoder.encode).parameters
    except (TypeError, ValueError):
        return False


class EmbeddingCache:
    """``get_or_compute(encoder, inputs)``: the cached vectors, or encode and store them. ``root=None``: off.

    ``hits`` / ``misses`` count calls served wholly from the store / needing an encode; ``rows_embedded`` counts
    the rows actually encoded, ``rows_read`` the rows read back.
    """

    def __init__(self, root: str | Path | None, memmap_min_bytes: int = MEMMAP_MIN_BYTES) -> None:
        self.root = Path(root).expanduser() if root is not None else None
        self.memmap_min_bytes = memmap_min_bytes
        self.writable = True  # False after a write failed (a full disk): read what is there, write no more
        self._swept = False
        self.hits = 0
        self.misses = 0
        self.rows_embedded = 0
        self.rows_read = 0

    def folder_for(self, encoder: Encoder) -> Path | None:
        """The encoder's row store, or None when caching is off or the encoder is uncacheable."""
        key = encoder.cache_key()
        if self.root is None or key is None:
            return None
        digest = stable_hash(_FORMAT, key, encoder.modality)[:40]
        return self.root / f"{type(encoder).__name__.lower()}-{encoder.modality}-{digest}"

    def get_or_compute(self, encoder: Encoder, inputs: Sequence[str | Path]) -> EncodeResult:
        """The encode result of ``inputs``; its vectors a read-only memory map when read back whole."""
        folder = self.folder_for(encoder)
        keys = row_keys(encoder.modality, inputs) if folder is not None else None
        if keys is None:  # no cache, an uncacheable encoder, or an image file that cannot be stat-ed
            return encoder.encode(inputs)
        store = RowStore(folder)
        stored = store.exact(keys)
        if stored is not None:
            self.hits += 1
            self.rows_read += len(keys)
            log.info("embedding cache hit: %d %s inputs (%s) <- %s/%s", len(inputs), encoder.modality,
                     type(encoder).__name__, folder.name, stored.name)  # fmt: skip
            return replay(stored.vectors, stored.status, stored.reasons, inputs)
        seg, row = store.lookup(keys)
        missing = np.flatnonzero(seg < 0)
        if not missing.size:  # every row stored, by several calls or in another order: gathered
            self.hits += 1
            self.rows_read += len(keys)
            log.info("embedding cache hit: %d %s inputs (%s), gathered from %s", len(inputs), encoder.modality,
                     type(encoder).__name__, folder.name)  # fmt: skip
            return self._gathered(encoder, inputs, store, seg, row)
        self.misses += 1
        log.info("embedding cache miss: %d %s inputs (%s), %d of them stored; encoding %d", len(keys),
                 encoder.modality, type(encoder).__name__, len(keys) - missing.size, missing.size)  # fmt: skip
        self._remove_orphans()
        if missing.size == len(keys):
            return self._encode_all(encoder, inputs, keys, store)
        return self._complete(encoder, inputs, keys, store, seg, row, missing)

    # --------------------------------------------------------------------------------------- nothing stored
    def _encode_all(
        self, encoder: Encoder, inputs: Sequence[str | Path], keys: np.ndarray, store: RowStore
    ) -> EncodeResult:
        """Encode every input into a new segment: straight into a memory-mapped temp file when big, else in
        memory. When the segment cannot be written, the vectors are returned all the same."""
        rows = len(inputs)
        self.rows_embedded += rows
        if self.writable and _accepts_out(encoder) and rows * encoder.dim * 4 >= self.memmap_min_bytes:
            return self._encode_into_map(encoder, inputs, keys, store)
        result = encoder.encode(inputs)
        result = EncodeResult(np.asarray(result.vectors, dtype=np.float32), *_met(result))
        self._store(store, result, keys)
        stored = store.exact(keys) if self.writable else None
        if stored is None:
            return result
        return replay(stored.vectors, stored.status, stored.reasons, inputs)  # read back: one copy, read-only

    def _encode_into_map(
        self, encoder: Encoder, inputs: Sequence[str | Path], keys: np.ndarray, store: RowStore
    ) -> EncodeResult:
        rows, name = len(inputs), store.new_name()
        out, result = None, None
        try:
            with atomic_path(store.vectors_path(name)) as tmp:
                # space allocated first: a full disk is an OSError here, never a SIGBUS while encoding
                out = allocated_memmap(tmp, np.float32, (rows, encoder.dim))
                result = encoder.encode(inputs, out=out)  # the encoder normalises ``out`` in place
                out.flush()
            coded = statuses_of(result, rows)
            if coded is None:  # met something without saying where: not stored (a hit could not report it)
                store.discard(name)
                return EncodeResult(out, *_met(result))
            store.publish(name, keys, *coded, encoder.dim)
        except OSError as err:
            if out is None:  # no room for the segment (or no folder): encode in memory instead
                self._write_failed(store, name, err)
                result = encoder.encode(inputs)
                return EncodeResult(np.asarray(result.vectors, dtype=np.float32), *_met(result))
            if result is None:
                raise  # the encoder's own error
            self._write_failed(store, name, err)
            return EncodeResult(out, *_met(result))  # whole: the map outlives its removed file
        return EncodeResult(out, *_met(result))

    # ------------------------------------------------------------------------------------- some rows stored
    def _complete(
        self,
        encoder: Encoder,
        inputs: Sequence[str | Path],
        keys: np.ndarray,
        store: RowStore,
        seg: np.ndarray,
        row: np.ndarray,
        missing: np.ndarray,
    ) -> EncodeResult:
        """The stored rows gathered, the missing ones encoded (each distinct input once) and stored."""
        _, first = np.unique(keys[missing], return_index=True)
        todo = missing[np.sort(first)]  # one input per missing key, in input order
        new = encoder.encode([inputs[i] for i in todo])
        self.rows_embedded += len(todo)
        self.rows_read += len(keys) - missing.size
        segments = store.segments  # the stored rows' segments (``seg`` indexes them)
        out = np.empty((len(keys), encoder.dim), dtype=np.float32)
        gather(segments, seg, row, out)
        new_keys = keys[todo]
        order = np.argsort(new_keys, kind="stable")
        at = order[np.searchsorted(new_keys[order], keys[missing])]  # each missing row's encoded row
        out[missing] = np.asarray(new.vectors)[at]
        status, reasons = np.zeros(len(keys), dtype=np.int8), []
        status_rows(segments, seg, row, reasons, status)
        coded = statuses_of(new, len(todo))
        if coded is None:  # the new rows met something without saying where: reported, not stored
            counts, examples = merge_results([replay(out, status, reasons, inputs), new])
            return EncodeResult(out, counts, examples)
        self._store(store, new, new_keys, coded)
        for reason in coded[1]:
            if reason not in reasons:
                reasons.append(reason)
        codes = coded[0][at]
        for i, reason in enumerate(coded[1]):
            status[missing[codes == i + 1]] = reasons.index(reason) + 1
        return replay(out, status, reasons, inputs)

    @staticmethod
    def _gathered(
        encoder: Encoder, inputs: Sequence[str | Path], store: RowStore, seg: np.ndarray, row: np.ndarray
    ) -> EncodeResult:
        out = np.empty((len(inputs), encoder.dim), dtype=np.float32)
        gather(store.segments, seg, row, out)
        status, reasons = np.zeros(len(inputs), dtype=np.int8), []
        status_rows(store.segments, seg, row, reasons, status)
        return replay(out, status, reasons, inputs)

    # -------------------------------------------------------------------------------------------- writing
    def _store(self, store: RowStore, result: EncodeResult, keys: np.ndarray, coded=None) -> None:
        """Store an in-memory result as a segment (when writable and its rows say what they met)."""
        coded = coded if coded is not None else statuses_of(result, len(keys))
        if not self.writable or coded is None:
            return
        name = store.new_name()
        try:
            store.write(name, np.asarray(result.vectors, dtype=np.float32), keys, *coded)
        except OSError as err:
            self._write_failed(store, name, err)

    def _remove_orphans(self) -> None:
        """Once per cache object: remove what writers killed mid-write on this host left in the folder."""
        if self._swept or self.root is None or not self.root.is_dir():
            return
        self._swept = True
        try:
            if removed := remove_orphans(self.root, recursive=True):
                log.info(
                    "embedding cache: removed %d temporary files of killed writers in %s", removed, self.root
                )
        except OSError:
            pass  # a folder we cannot clean is still one we can read

    def _write_failed(self, store: RowStore, name: str | None, err: OSError) -> None:
        """One warning, then no more writes in this run; what the segment had written is removed."""
        if name is not None:
            store.discard(name)
        self.writable = False
        why = "no space left on the disk (or quota)" if is_disk_full(err) else one_line(err)
        log.warning(
            "embedding cache: cannot write in %s (%s); encoding without the cache in this run (free space "
            "there, point paths.cache_dir elsewhere, or set cache=false)",
            store.folder,
            why,
        )


def _met(result: EncodeResult) -> tuple:
    """What an encode met: its counts, examples and their rows."""
    return result.counts, result.examples, result.positions
