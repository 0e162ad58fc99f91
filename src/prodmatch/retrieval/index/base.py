"""The one index interface, its result conventions and the checks every backend shares.

Every backend (exact, ANNOY, faiss, Milvus) follows :class:`Index`::

    index.build(vectors)                      # float [N, D]; rows are L2-normalised on the way in
    ids, scores = index.search(queries, k)    # int64 [Q, k], float32 [Q, k] cosine similarity, best first
    len(index); index.dim

Persisting an index is not part of the interface: a run embeds the database anyway (fusion, re-ranking and the
recall check need its vectors), and an index reused from a file is right only for the very vectors it was built
from. ANNOY, exact and faiss indexes offer ``save(path)`` / ``load(path)`` (with a ``<path>.json`` sidecar) for
scripts that build once and search often; a Milvus index's ``save(path)`` records its collection (kept on the
server with ``keep=true``).

Scores are always cosine similarities, so exact and approximate results are comparable. When the database
holds fewer than ``k`` items (or an approximate search finds fewer), rows are padded with id ``PAD_ID`` (-1)
and score ``PAD_SCORE`` (-inf) so the result keeps its ``[Q, k]`` shape; metrics count padded slots as misses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from prodmatch.errors import ConfigError
from prodmatch.utils.atomic import write_json

PAD_ID = -1
PAD_SCORE = -np.inf


@runtime_checkable
class Index(Protocol):
    """What the retrieval pipeline needs from a nearest-neighbour backend."""

    def build(self, vectors: np.ndarray) -> Index: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def __len__(self) -> int: ...

    @property
    def dim(self) -> int | None: ...


def as_matrix(x: object, name: str, dim: int | None = None) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 [N, D] array; ValueError on a bad shape or non-finite values."""
    arr = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array [rows, dim], got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has dimension {arr.shape[1]} but the index holds {dim}-d vectors")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"{name} has NaN or infinite values in {rows.size} rows (first: row {rows[0]}); "
            "check the encoder output before indexing"
        )
    return arr


def check_k(k: int) -> int:
    """Validate the number of neighbours asked for."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be a positive integer (got {k!r}); ask for at least one neighbour")
    return int(k)


def positive_int(value: object, key: str, hint: str = "") -> int:
    """``value`` as an int >= 1, else a ConfigError naming the key (``hint`` says what to use)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{key} must be a positive integer (got {value!r}){'; ' + hint if hint else ''}")
    return int(value)


def pad_results(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad [Q, m] results (m <= k) to [Q, k] with id -1 and score -inf."""
    missing = k - ids.shape[1]
    if missing <= 0:
        return ids, scores
    q = ids.shape[0]
    ids = np.hstack([ids, np.full((q, missing), PAD_ID, dtype=np.int64)])
    scores = np.hstack([scores, np.full((q, missing), PAD_SCORE, dtype=np.float32)])
    return ids, scores


def sidecar_path(path: str | Path) -> Path:
    """``<path>.json``: where a saved index keeps its dimension and build parameters."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def write_sidecar(path: str | Path, meta: dict[str, Any]) -> None:
    write_json(sidecar_path(path), meta)


def read_sidecar(path: str | Path, what: str) -> dict[str, Any]:
    """The sidecar of a saved index at ``path``; ConfigError when the index or its sidecar is missing."""
    path, sidecar = Path(path), sidecar_path(path)
    if not path.is_file() or not sidecar.is_file():
        raise ConfigError(
            f"{what} {path} or its {sidecar.name} sidecar not found; build and save the index first "
            "or fix the path"
        )
    return json.loads(sidecar.read_text())
