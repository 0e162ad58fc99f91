"""Embeddings stored row by row, each row found by the identity of its input: the embedding cache's storage.

One folder per encoder identity (its ``cache_key`` and modality) holds *segments*: the rows of one encode call.
A segment is three files sharing a name: ``<name>.npy`` (float32 [rows, dim]), ``<name>.json`` (its row count,
width and what the rows met) and ``<name>.keys.npy`` (per row: a 16-byte digest of its input and a status
code). The keys file is written last, so a segment exists once its keys do; every file is written atomically
and durably. A row's key is a digest of its text, or of its image file's path and identity (stat, or content
under ``data.identity=content``), so a card whose text or image changed misses and is embedded again, while
every other card is read back.

A segment that cannot be read back whole (a file missing, empty, short, unparsable or of the wrong shape) is
dropped with one warning and its files removed: its rows miss and are written again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prodmatch.encoders.base import IMAGE_MODALITY, EncodeResult
from prodmatch.errors import one_line
from prodmatch.utils.atomic import save_npy, write_json
from prodmatch.utils.hashing import file_identities, row_digests

__all__ = ["KEY_DTYPE", "RowStore", "Segment", "row_keys"]

log = logging.getLogger("prodmatch.encoders")

KEY_DTYPE = np.dtype([("key", "S16"), ("status", "i1")])  # status 0: nothing met; i: the (i-1)-th reason
_FORMAT = 1
KEYS_SUFFIX = ".keys.npy"


def row_keys(modality: str, inputs: Sequence[str | Path]) -> np.ndarray | None:
    """One key per input (``S16``): a digest of the text, or of the image path and the file's identity; None
    when an image file cannot be stat-ed (the call is then encoded without the cache)."""
    if modality != IMAGE_MODALITY:
        return row_digests(str(t) for t in inputs)
    paths = [str(p) for p in inputs]
    try:
        identities = file_identities(paths)
    except OSError:
        return None
    return row_digests(f"{p}\x00{i}" for p, i in zip(paths, identities, strict=True))


@dataclass
class Segment:
    """The rows of one stored encode call: vectors (read-only memory map), keys, status codes, reasons."""

    name: str
    vectors: np.ndarray
    keys: np.ndarray
    status: np.ndarray
    reasons: list[str]


def statuses_of(result: EncodeResult, rows: int) -> tuple[np.ndarray, list[str]] | None:
    """Per-row status codes and their reasons from what an encode met; None when it met something without
    saying which rows (those rows cannot be stored: a hit would not report them)."""
    reasons = sorted(result.counts)
    status = np.zeros(rows, dtype=np.int8)
    for i, reason in enumerate(reasons):
        if not result.counts[reason]:
            continue
        at = result.positions.get(reason)
        if at is None or len(at) != result.counts[reason]:
            return None
        status[np.asarray(at, dtype=np.int64)] = i + 1
    return status, reasons


def replay(vectors: np.ndarray, status: np.ndarray, reasons: Sequence[str], inputs: Sequence) -> EncodeResult:
    """The encode result of stored rows: the vectors, and the counts, examples and rows of what they met."""
    counts, examples, positions = {}, {}, {}
    for i, reason in enumerate(reasons):
        at = np.flatnonzero(status == i + 1)
        if at.size:
            counts[reason], examples[reason], positions[reason] = int(at.size), str(inputs[at[0]]), at
    return EncodeResult(vectors, counts, examples, positions)


class RowStore:
    """The segments of one encoder identity in ``folder`` (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._segments: list[Segment] | None = None

    @property
    def segments(self) -> list[Segment]:
        """Every readable segment (read once; torn ones are dropped, see the module docstring)."""
        if self._segments is None:
            found = sorted(self.folder.glob("*" + KEYS_SUFFIX)) if self.folder.is_dir() else []
            loaded = (self._load(p.name[: -len(KEYS_SUFFIX)]) for p in found)
            self._segments = [s for s in loaded if s is not None]
        return self._segments

    def exact(self, keys: np.ndarray) -> Segment | None:
        """A segment holding exactly these keys in this order (a repeated call: read back without a copy)."""
        for segment in self.segments:
            if len(segment.keys) == len(keys) and np.array_equal(segment.keys, keys):
                return segment
        return None

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(segment index, row) of each key, -1 where no segment holds it."""
        seg = np.full(len(keys), -1, dtype=np.int64)
        row = np.full(len(keys), -1, dtype=np.int64)
        if not self.segments or not len(keys):
            return seg, row
        stored = np.concatenate([s.keys for s in self.segments])
        owner = np.concatenate([np.full(len(s.keys), i) for i, s in enumerate(self.segments)])
        local = np.concatenate([np.arange(len(s.keys)) for s in self.segments])
        order = np.argsort(stored, kind="stable")
        ranked = stored[order]
        pos = np.minimum(np.searchsorted(ranked, keys), len(ranked) - 1)
        found = ranked[pos] == keys
        seg[found], row[found] = owner[order[pos[found]]], local[order[pos[found]]]
        return seg, row

    def new_name(self) -> str:
        return uuid.uuid4().hex[:16]

    def vectors_path(self, name: str) -> Path:
        return self.folder / f"{name}.npy"

    def publish(self, name: str, keys: np.ndarray, status: np.ndarray, reasons: list[str], dim: int) -> None:
        """Make a segment whose vectors file is written: its meta, then its keys (the segment then exists)."""
        meta = {"format": _FORMAT, "rows": len(keys), "dim": int(dim), "reasons": list(reasons)}
        write_json(self.folder / f"{name}.json", meta)
        table = np.empty(len(keys), dtype=KEY_DTYPE)
        table["key"], table["status"] = keys, status
        save_npy(self.folder / f"{name}{KEYS_SUFFIX}", table)
        self._segments = None  # read again with the new one on the next lookup

    def write(
        self, name: str, vectors: np.ndarray, keys: np.ndarray, status: np.ndarray, reasons: list[str]
    ) -> None:
        """Store rows held in memory as the new segment ``name``."""
        save_npy(self.vectors_path(name), np.asarray(vectors, dtype=np.float32))
        self.publish(name, keys, status, reasons, vectors.shape[1])

    def discard(self, name: str) -> None:
        """Remove what a segment left (a write that failed half-way); a folder we cannot clean is still read."""
        for suffix in (KEYS_SUFFIX, ".json", ".npy"):
            with contextlib.suppress(OSError):
                (self.folder / f"{name}{suffix}").unlink(missing_ok=True)

    def _load(self, name: str) -> Segment | None:
        try:
            table = np.load(self.folder / f"{name}{KEYS_SUFFIX}", allow_pickle=False)
            meta = json.loads((self.folder / f"{name}.json").read_text(encoding="utf-8"))
            vectors = np.load(self.vectors_path(name), mmap_mode="r", allow_pickle=False)
            rows, reasons = int(meta["rows"]), [str(r) for r in meta["reasons"]]
        except (OSError, ValueError, EOFError, KeyError, TypeError) as err:
            return self._torn(name, one_line(err))
        if table.dtype != KEY_DTYPE or table.shape != (rows,):
            return self._torn(name, f"keys of shape {table.shape}, expected {rows} rows")
        if vectors.dtype != np.float32 or vectors.ndim != 2 or vectors.shape[0] != rows:
            return self._torn(name, f"vectors of shape {vectors.shape}, expected {rows} rows")
        return Segment(name, vectors, table["key"], table["status"], reasons)

    def _torn(self, name: str, why: str) -> None:
        log.warning("embedding cache: segment %s in %s unreadable (%s); its rows are embedded again", name,
                    self.folder.name, why)  # fmt: skip
        self.discard(name)
        return None


def gather(segments: Sequence[Segment], seg: np.ndarray, row: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out`` with the stored rows at (segment, row) pairs (rows with segment -1 are left as they are)."""
    for i, segment in enumerate(segments):
        at = np.flatnonzero(seg == i)
        if at.size:
            out[at] = segment.vectors[row[at]]


def status_rows(
    segments: Sequence[Segment], seg: np.ndarray, row: np.ndarray, reasons: list[str], status: np.ndarray
) -> None:
    """Fill ``status`` (codes into ``reasons``, extended as needed) with the stored rows' status codes."""
    for i, segment in enumerate(segments):
        at = np.flatnonzero(seg == i)
        if not at.size:
            continue
        codes = segment.status[row[at]]
        for code in np.unique(codes[codes > 0]):
            reason = segment.reasons[int(code) - 1]
            if reason not in reasons:
                reasons.append(reason)
            status[at[codes == code]] = reasons.index(reason) + 1
