"""The encoder interface: inputs (texts or image paths) in, L2-normalised float32 vectors out.

Encoders know nothing of catalogs or views. The pipeline turns a view into inputs (``catalog.texts(view)`` for
text encoders, ``catalog.image_paths()`` for image encoders), calls ``fit(query_texts + database_texts)`` when
``encoder.needs_fit`` is true, then ``encode`` (directly or through :class:`~prodmatch.encoders.cache.EmbeddingCache`).

Contract of :meth:`Encoder.encode`:

- returns float32 ``[len(inputs), dim]``, rows in input order, L2-normalised with
  :func:`prodmatch.utils.vectors.l2_normalize` (an all-zero row stays zero);
- a row of NaN means that input could not be read (images only): the caller drops such rows and reports them;
- ``encoder.stats`` is reset at every ``encode`` call and then holds counts of what was met, e.g.
  ``{"unreadable_image": 2, "truncated_image": 1}`` (unreadable rows are NaN; truncated images were decoded
  as far as the file goes and are a warning), and ``encoder.stats_examples`` one input per count
  (``{"unreadable_image": "images/x.jpg"}``) for the log line and a ``data.strict`` error message.

Importing this module is cheap (no torch): the TF-IDF path and the registry depend on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from prodmatch.errors import ImageError

__all__ = [
    "DROPPED_STATS",
    "IMAGE_MODALITY",
    "MODALITIES",
    "TEXT_MODALITY",
    "WARNING_STATS",
    "EncodeStats",
    "Encoder",
    "WrappedEncoder",
    "data_counts",
    "strict_error",
]

IMAGE_MODALITY = "image"
TEXT_MODALITY = "text"
MODALITIES = (IMAGE_MODALITY, TEXT_MODALITY)

EncodeStats = dict[str, int]
# What an encode can meet: rows it could not embed (NaN, dropped by the pipeline), and inputs it embedded with a
# warning. Each maps to a metrics.json key: data/dropped/<name> and data/warnings/<name>.
DROPPED_STATS = ("unreadable_image",)
WARNING_STATS = ("truncated_image",)


@runtime_checkable
class Encoder(Protocol):
    """Turns inputs into L2-normalised float32 vectors, one row per input (see the module docstring)."""

    modality: str  # "image" (inputs are image file paths) or "text" (inputs are strings)
    dim: int  # output width (known after fit for fitted encoders)
    needs_fit: bool  # True: call fit(all texts of the run) before encode (TF-IDF, the local text model)
    stats: EncodeStats  # counts of the last encode call (reset at each call); {} when nothing was met

    def fit(self, texts: Sequence[str]) -> Encoder:
        """Learn from the corpus (vocabulary, IDF, tokenizer); encoders that learn nothing return self."""

    def encode(self, inputs: Sequence[str] | Sequence[str | Path]) -> np.ndarray:
        """float32 [N, dim], rows L2-normalised; a NaN row = an input that could not be read (images)."""

    def cache_key(self) -> str | None:
        """Identity of everything besides the inputs that fixes the vectors; None = never cache."""


class WrappedEncoder:
    """Base of encoders that wrap another one: its modality, width and what its last encode met."""

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner

    @property
    def modality(self) -> str:
        return self.inner.modality

    @property
    def dim(self) -> int:
        return int(self.inner.dim)

    @property
    def stats(self) -> dict[str, int]:
        return getattr(self.inner, "stats", {})

    @stats.setter
    def stats(self, value: dict[str, int]) -> None:
        # the embedding cache restores a hit's stats onto the encoder it was asked for: the wrapper
        self.inner.stats = value

    @property
    def stats_examples(self) -> dict[str, str]:
        return getattr(self.inner, "stats_examples", {})

    @stats_examples.setter
    def stats_examples(self, value: dict[str, str]) -> None:
        self.inner.stats_examples = value


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
