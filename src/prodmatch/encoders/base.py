"""The encoder interface: inputs (texts or image paths) in, an :class:`EncodeResult` out.

Encoders know nothing of catalogs or views. The pipeline turns a view into inputs (``catalog.texts(view)`` for
text encoders, ``catalog.image_paths()`` for image encoders), calls ``fit(query_texts + database_texts)`` when
``encoder.needs_fit`` is true, then ``encode`` (directly or through :class:`~prodmatch.encoders.cache.EmbeddingCache`).

Contract of :meth:`Encoder.encode`: it returns an :class:`EncodeResult`, a value, and keeps nothing of the call:

- ``vectors``: float32 ``[len(inputs), dim]``, rows in input order, L2-normalised with
  :func:`prodmatch.utils.vectors.l2_normalize` (an all-zero row stays zero); a row of NaN means that input could
  not be read (images only): the caller drops such rows and reports them;
- ``counts``: what the call met, e.g. ``{"unreadable_image": 2, "truncated_image": 1}`` (unreadable rows are NaN;
  truncated images were decoded as far as the file goes and are a warning), and ``examples`` one input per count
  (``{"unreadable_image": "images/x.jpg"}``) for the log line and a ``data.strict`` error message.

Wrappers (a training module's encoder, the distributed ones) and the cache pass the result on as it is. Besides
the protocol's members every encoder names its torch ``network`` (None for TF-IDF), which Lightning's predict
loop places on each process's device, and an image encoder exposes its ``embedder``, the
:class:`~prodmatch.encoders.image_embedder.ImageBatchEmbedder` that the distributed loops drive batch by batch.

Importing this module is cheap (no torch): the TF-IDF path and the registry depend on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from prodmatch.errors import ImageError

__all__ = [
    "DROPPED_STATS",
    "IMAGE_MODALITY",
    "MODALITIES",
    "TEXT_MODALITY",
    "WARNING_STATS",
    "EncodeResult",
    "Encoder",
    "WrappedEncoder",
    "data_counts",
    "merge_results",
    "strict_error",
]

IMAGE_MODALITY = "image"
TEXT_MODALITY = "text"
MODALITIES = (IMAGE_MODALITY, TEXT_MODALITY)

# What an encode can meet: rows it could not embed (NaN, dropped by the pipeline), and inputs it embedded with a
# warning. Each maps to a metrics.json key: data/dropped/<name> and data/warnings/<name>.
DROPPED_STATS = ("unreadable_image",)
WARNING_STATS = ("truncated_image",)


@dataclass(frozen=True, eq=False)
class EncodeResult:
    """The vectors of one ``encode`` call and what it met on the way (see the module docstring)."""

    vectors: np.ndarray  # float32 [N, dim]
    counts: Mapping[str, int] = field(default_factory=dict)  # e.g. {"unreadable_image": 2}; {} = nothing met
    examples: Mapping[str, str] = field(default_factory=dict)  # one input per count
    # the rows of each count, where the encoder knows them: the embedding cache stores what each row met
    positions: Mapping[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_statuses(
        cls,
        vectors: np.ndarray,
        inputs: Sequence[str],
        statuses: np.ndarray,
        reasons: Mapping[int, str],
    ) -> EncodeResult:
        """The result of rows whose per-input status codes (``reasons``: code -> count name) say what was met."""
        counts, examples, positions = {}, {}, {}
        for code, reason in reasons.items():
            rows = np.flatnonzero(statuses == code)
            if rows.size:
                counts[reason], examples[reason], positions[reason] = (
                    int(rows.size),
                    str(inputs[rows[0]]),
                    rows,
                )
        return cls(vectors, counts, examples, positions)


def merge_results(results: Sequence[EncodeResult]) -> tuple[dict[str, int], dict[str, str]]:
    """What several encode calls met together: summed counts, and the first example of each."""
    counts: dict[str, int] = {}
    examples: dict[str, str] = {}
    for result in results:
        for name, n in result.counts.items():
            counts[name] = counts.get(name, 0) + int(n)
        examples = {**result.examples, **examples}
    return counts, examples


@runtime_checkable
class Encoder(Protocol):
    """Turns inputs into L2-normalised float32 vectors, one row per input (see the module docstring)."""

    modality: str  # "image" (inputs are image file paths) or "text" (inputs are strings)
    dim: int  # output width (known after fit for fitted encoders)
    needs_fit: bool  # True: call fit(all texts of the run) before encode (TF-IDF, the local text model)

    def fit(self, texts: Sequence[str]) -> Encoder:
        """Learn from the corpus (vocabulary, IDF, tokenizer); encoders that learn nothing return self."""

    def encode(self, inputs: Sequence[str] | Sequence[str | Path]) -> EncodeResult:
        """The vectors (float32 [N, dim], L2-normalised; NaN row = an unreadable input) and what was met."""

    def cache_key(self) -> str | None:
        """Identity of everything besides the inputs that fixes the vectors; None = never cache."""


class WrappedEncoder:
    """Base of encoders that wrap another one: its modality, width, network and (images) batch embedder."""

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner

    @property
    def modality(self) -> str:
        return self.inner.modality

    @property
    def dim(self) -> int:
        return int(self.inner.dim)

    @property
    def network(self) -> Any:
        return self.inner.network

    @property
    def embedder(self) -> Any:
        return self.inner.embedder


def data_counts(stats: Mapping[str, int]) -> dict[str, int]:
    """Encode stats by what became of the inputs: ``dropped/unreadable_image``, ``warnings/truncated_image``
    (the names of their ``data/`` metric keys, :func:`prodmatch.layout.data_key`)."""
    return {
        f"{'dropped' if name in DROPPED_STATS else 'warnings'}/{name}": int(count)
        for name, count in stats.items()
    }


def strict_error(stats: Mapping[str, int], examples: Mapping[str, str]) -> ImageError | None:
    """The one-line error for ``data.strict=true`` when an encode met bad inputs; None when it met none."""
    met = [name for name in (*DROPPED_STATS, *WARNING_STATS) if stats.get(name)]
    if not met:
        return None
    parts = ", ".join(
        f"{stats[name]} {name.replace('_', ' ')}(s) (e.g. {examples.get(name, '?')})" for name in met
    )
    return ImageError(
        f"data.strict=true and encoding met {parts}; fix or remove those rows, or set data.strict=false to "
        "drop unreadable images and keep truncated ones (both counted in metrics.json)"
    )
