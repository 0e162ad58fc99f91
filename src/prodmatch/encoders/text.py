"""Sentence embeddings through sentence-transformers: a hub id, a local model dir, or the locally built model.

``pretrained=false`` builds the tiny local BERT (:mod:`prodmatch.encoders.local_text`) from the corpus given to
:meth:`TextEncoder.fit`; the model itself is built (or reused from the cache) at the first ``encode``, so an
embedding-cache hit never pays for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from prodmatch.encoders.base import TEXT_MODALITY, EncodeResult
from prodmatch.encoders.local_text import check_local, local_model_key, local_sentence_model
from prodmatch.encoders.sentence import DEFAULT_MODEL, check_pooling, is_local_path, load_sentence_model
from prodmatch.errors import ConfigError
from prodmatch.utils.hashing import weights_digest
from prodmatch.utils.vectors import l2_normalize

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["TextEncoder"]


class TextEncoder:
    """Sentence embeddings of texts, L2-normalised, batched by length with a progress bar.

    ``model``: a ready SentenceTransformer (a training module's live model): never cached, and handed back in
    the mode it was in (sentence-transformers' ``encode`` switches a model to eval mode and leaves it there).
    """

    modality = TEXT_MODALITY

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_MODEL,
        pretrained: bool = True,
        pooling: str = "cls",
        max_length: int = 256,
        batch_size: int = 64,
        device: str = "auto",
        local: dict[str, int] | None = None,
        cache_dir: str | None = None,
        model: SentenceTransformer | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        check_pooling(pooling)
        if batch_size <= 0 or max_length <= 0:
            raise ConfigError(
                f"text encoder: batch_size={batch_size}, max_length={max_length}; both must be >= 1"
            )
        self.model_name_or_path = str(model_name_or_path)
        self.pretrained = pretrained
        self.pooling = pooling
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.local = check_local(dict(local or {}))
        self.cache_dir = cache_dir
        self.seed = seed
        self.progress = progress
        self._external = model is not None  # a training module's model: its weights change, never cache
        self._model = model
        self._corpus: tuple[str, list[str]] | None = None  # (local model key, texts) once fitted

    @property
    def needs_fit(self) -> bool:
        """The locally built model's tokenizer is trained on the run's texts."""
        return not self.pretrained and not self._external

    @property
    def dim(self) -> int:
        if self.needs_fit:
            return self.local["hidden_size"]
        return int(self.model.get_embedding_dimension())

    def fit(self, texts: Sequence[str]) -> TextEncoder:
        """pretrained=false: fix the corpus the local model is built from; otherwise nothing to learn."""
        if self.needs_fit:
            texts = list(texts)
            key = local_model_key(texts, self.pooling, self.seed, **self.local)
            if self._corpus is None or self._corpus[0] != key:
                self._corpus = (key, texts)
                self._model = None  # another corpus: another model
        return self

    @property
    def model(self) -> SentenceTransformer:
        """The model, loaded (or built, for the local one) on first use."""
        if self._model is None:
            self._model = self._local_model() if self.needs_fit else self._pretrained_model()
        return self._model

    def _pretrained_model(self) -> SentenceTransformer:
        return load_sentence_model(
            self.model_name_or_path, pooling=self.pooling, max_length=self.max_length, device=self.device
        )

    def _local_model(self) -> SentenceTransformer:
        if self._corpus is None:
            raise ConfigError(
                "pretrained=false text encoder: call fit(texts) before encode "
                "(the local model is built from the run's texts)"
            )
        model = local_sentence_model(
            self._corpus[1], self.cache_dir, self.pooling, seed=self.seed, device=self.device, **self.local
        )
        model.max_seq_length = min(self.max_length, self.local["max_position"])
        return model

    def cache_key(self) -> str | None:
        if self._external:
            return None
        suffix = f"pooling={self.pooling}|max_length={self.max_length}"
        if self.needs_fit:
            return None if self._corpus is None else f"st-local|{self._corpus[0]}|{suffix}"
        name = self.model_name_or_path
        if is_local_path(name) and Path(name).expanduser().exists():
            try:  # the folder's files, not its path: a model retrained into the same folder is another model
                name = f"folder:{weights_digest(name)}"
            except OSError:
                return None  # unreadable: loading it will say so; nothing to key a cache entry by
        return f"st|{name}|{suffix}"

    @property
    def network(self) -> SentenceTransformer:
        return self.model

    def encode(self, inputs: Sequence[str]) -> EncodeResult:
        """float32 [N, dim], L2-normalised, in input order."""
        texts = [str(t) for t in inputs]
        if not texts:
            return EncodeResult(np.zeros((0, self.dim), dtype=np.float32))
        model = self.model
        was_training = model.training
        try:
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                show_progress_bar=self.progress,
                convert_to_numpy=True,
                normalize_embeddings=False,  # normalised once, below, by the project's one helper
            )
        finally:
            model.train(was_training)  # undo encode()'s switch to eval mode
        return EncodeResult(l2_normalize(np.asarray(vectors, dtype=np.float32), inplace=True))
