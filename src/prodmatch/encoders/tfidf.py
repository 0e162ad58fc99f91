"""TF-IDF over character n-grams: a strong text baseline that needs no pretrained weights."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from prodmatch.data.catalog import TEXT_VIEWS
from prodmatch.encoders.base import catalog_texts, l2_normalize, stable_hash, texts_hash
from prodmatch.errors import ConfigError

if TYPE_CHECKING:
    from prodmatch.data.catalog import Catalog

__all__ = ["TfidfEncoder"]

log = logging.getLogger("prodmatch.encoders")

# Without SVD the output is a dense [N, vocabulary] matrix: refuse sizes that would not fit in memory.
MAX_DENSE_CELLS = 200_000_000


class _Fitted:
    """A vectorizer (+ SVD) fitted on one corpus."""

    def __init__(self, vectorizer: TfidfVectorizer, svd: TruncatedSVD | None) -> None:
        self.vectorizer = vectorizer
        self.svd = svd

    @property
    def dim(self) -> int:
        return self.svd.n_components if self.svd is not None else len(self.vectorizer.vocabulary_)


class TfidfEncoder:
    """TF-IDF (char_wb n-grams by default), optionally reduced to ``dim`` by a seeded TruncatedSVD.

    ``prepare(catalogs, view)`` fixes the corpus (all catalogs' texts of the view, so queries and database share
    one vocabulary and IDF); fitting happens at the first ``encode`` so a cache hit skips it.
    """

    def __init__(
        self,
        analyzer: str = "char_wb",
        ngram_range: Sequence[int] = (2, 4),
        min_df: int | float = 1,
        max_features: int | None = None,
        dim: int | None = 256,
        seed: int = 0,
        sublinear_tf: bool = True,
    ) -> None:
        if analyzer not in ("char_wb", "char", "word"):
            raise ConfigError(f"tfidf analyzer={analyzer!r}; use char_wb, char or word")
        lo, hi = (int(n) for n in ngram_range)
        if not 1 <= lo <= hi:
            raise ConfigError(f"tfidf ngram_range={list(ngram_range)}; need 1 <= min <= max, e.g. [2, 4]")
        if dim is not None and dim < 1:
            raise ConfigError(
                f"tfidf dim={dim}; use a positive size (e.g. 256) or null for the full vocabulary"
            )
        self.analyzer = analyzer
        self.ngram_range = (lo, hi)
        self.min_df = min_df
        self.max_features = max_features
        self.n_components = dim
        self.seed = seed
        self.sublinear_tf = sublinear_tf
        self._corpora: dict[str, tuple[str, list[str]]] = {}  # view -> (corpus hash, texts)
        self._fitted: dict[str, _Fitted] = {}  # corpus hash -> fitted vectorizer (+ SVD)

    def _params(self) -> dict[str, object]:
        return {
            "analyzer": self.analyzer,
            "ngram_range": list(self.ngram_range),
            "min_df": self.min_df,
            "max_features": self.max_features,
            "dim": self.n_components,
            "seed": self.seed,
            "sublinear_tf": self.sublinear_tf,
        }

    @property
    def dim(self) -> int:
        """Output size: the SVD size, or the vocabulary size without SVD (known once fitted)."""
        if self._fitted:
            return next(iter(self._fitted.values())).dim
        if self.n_components is not None:
            return self.n_components
        raise ConfigError(
            "tfidf without dim: the size is the vocabulary size, known after prepare() + encode()"
        )

    def prepare(self, catalogs: Sequence[Catalog], view: str) -> None:
        """Fix the corpus of ``view``: the texts of all ``catalogs``."""
        self._check_view(view)
        texts = catalog_texts(catalogs, view)
        self._corpora[view] = (texts_hash(texts), texts)

    def cache_key(self, view: str) -> str | None:
        entry = self._corpora.get(view)
        if entry is None:
            return None  # not prepared: the vectors would depend on whichever catalog comes first
        return f"tfidf|{stable_hash(self._params())[:16]}|corpus={entry[0][:16]}"

    def fitted(self, view: str) -> _Fitted:
        """The vectorizer (+ SVD) for ``view``, fitted on its prepared corpus on first use."""
        entry = self._corpora.get(view)
        if entry is None:
            raise ConfigError(f"tfidf encoder: prepare(catalogs, '{view}') must run before encode")
        corpus_hash, texts = entry
        if corpus_hash not in self._fitted:
            self._fitted[corpus_hash] = self._fit(texts)
        return self._fitted[corpus_hash]

    def _fit(self, texts: list[str]) -> _Fitted:
        vectorizer = TfidfVectorizer(
            analyzer=self.analyzer,
            ngram_range=self.ngram_range,
            min_df=self.min_df,
            max_features=self.max_features,
            sublinear_tf=self.sublinear_tf,
            dtype=np.float32,
        )
        try:
            matrix = vectorizer.fit_transform(texts)
        except ValueError as err:  # e.g. empty vocabulary
            raise ConfigError(
                f"tfidf cannot be fitted on this text ({err}); check the text view and min_df"
            ) from err
        if self.n_components is None:
            return _Fitted(vectorizer, None)
        # TruncatedSVD needs fewer components than features; a tiny corpus caps the size.
        n_components = min(self.n_components, matrix.shape[1] - 1, matrix.shape[0])
        if n_components < self.n_components:
            log.warning(
                "tfidf dim %d reduced to %d: the corpus is too small", self.n_components, n_components
            )
        if n_components < 1:
            raise ConfigError("tfidf corpus too small for dimension reduction; set dim=null or add text")
        svd = TruncatedSVD(n_components=n_components, algorithm="randomized", random_state=self.seed)
        svd.fit(matrix)
        return _Fitted(vectorizer, svd)

    def encode(self, catalog: Catalog, view: str) -> np.ndarray:
        """float32 [N, dim], L2-normalised, in catalog row order."""
        self._check_view(view)
        fitted = self.fitted(view)
        matrix = fitted.vectorizer.transform(catalog.texts(view))
        if fitted.svd is not None:
            return l2_normalize(fitted.svd.transform(matrix))
        cells = matrix.shape[0] * matrix.shape[1]
        if cells > MAX_DENSE_CELLS:
            raise ConfigError(
                f"tfidf without dim would give a dense {matrix.shape[0]} x {matrix.shape[1]} matrix; "
                "set dim (e.g. 256) or max_features"
            )
        return l2_normalize(matrix.toarray())

    @staticmethod
    def _check_view(view: str) -> None:
        if view not in TEXT_VIEWS:
            raise ConfigError(f"the tfidf encoder encodes one of {', '.join(TEXT_VIEWS)}, got '{view}'")
