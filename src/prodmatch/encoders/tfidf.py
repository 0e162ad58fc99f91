"""TF-IDF over character n-grams: a strong text baseline that needs no pretrained weights.

Importing this module loads neither torch nor transformers: a TF-IDF evaluation does not pay for them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from prodmatch.encoders.base import TEXT_MODALITY, EncodeResult
from prodmatch.errors import ConfigError
from prodmatch.utils.hashing import stable_hash, texts_hash
from prodmatch.utils.vectors import l2_normalize

if TYPE_CHECKING:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

__all__ = ["TfidfEncoder"]

log = logging.getLogger("prodmatch.encoders")

# Without SVD the output is a dense [N, vocabulary] matrix: refuse sizes that would not fit in memory.
MAX_DENSE_CELLS = 200_000_000
# A model code's short letter prefix, a separator, then its digits: "VE-110", "VE 110", "TR 70M" (a longer
# word before a number, "дорожка 2", is a word, not a code prefix).
_CODE_GAP = re.compile(r"\b([^\W\d_]{1,4})[-\s.](?=\d)")


def join_codes(text: str) -> str:
    """Lower-case and close the gap after a model code's prefix: "VE-110", "VE 110" and "ve110" become one token."""
    return _CODE_GAP.sub(r"\1", text.lower())


class TfidfEncoder:
    """TF-IDF (char_wb n-grams by default), optionally reduced to ``dim`` by a seeded TruncatedSVD.

    ``fit(texts)`` fixes the corpus (the pipeline passes query + database texts, so both share one vocabulary
    and IDF); the vectorizer is fitted on it at the first ``encode`` (or ``dim``), so a cache hit skips that.
    """

    modality = TEXT_MODALITY
    needs_fit = True
    network = None  # no torch network

    def __init__(
        self,
        analyzer: str = "char_wb",
        ngram_range: Sequence[int] = (2, 4),
        min_df: int | float = 1,
        max_features: int | None = None,
        dim: int | None = 256,
        seed: int = 0,
        sublinear_tf: bool = True,
        join_codes: bool = False,
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
        # sellers write one model code many ways: "VE-110", "VE 110", "VE110"
        self.join_codes = bool(join_codes)
        self._corpus: tuple[str, list[str]] | None = None  # (corpus hash, texts)
        self._fitted: tuple[str, TfidfVectorizer, TruncatedSVD | None] | None = None  # (corpus hash, ...)

    def _params(self) -> dict[str, object]:
        return {
            "analyzer": self.analyzer,
            "ngram_range": list(self.ngram_range),
            "min_df": self.min_df,
            "max_features": self.max_features,
            "dim": self.n_components,
            "seed": self.seed,
            "sublinear_tf": self.sublinear_tf,
            **({"join_codes": True} if self.join_codes else {}),  # absent when off: earlier cache keys stay
        }

    @property
    def dim(self) -> int:
        """Output size: the SVD size (the corpus may cap it), or the vocabulary size without SVD."""
        if self._corpus is None and self.n_components is not None:
            return self.n_components
        _, vectorizer, svd = self._fit()
        return svd.n_components if svd is not None else len(vectorizer.vocabulary_)

    def fit(self, texts: Sequence[str]) -> TfidfEncoder:
        """Fix the corpus (all texts of the run); the vectorizer is fitted on it when first needed."""
        texts = [str(t) for t in texts]
        self._corpus = (texts_hash(texts), texts)
        return self

    def cache_key(self) -> str | None:
        if self._corpus is None:
            return None  # not fitted: nothing fixes the vectors yet
        return f"tfidf|{stable_hash(self._params())[:16]}|corpus={self._corpus[0][:16]}"

    def _fit(self) -> tuple[str, TfidfVectorizer, TruncatedSVD | None]:
        """The vectorizer (+ SVD) fitted on the corpus of the last ``fit`` call."""
        if self._corpus is None:
            raise ConfigError(
                "tfidf encoder: call fit(texts) before encode (it learns the vocabulary and IDF)"
            )
        corpus_hash, texts = self._corpus
        if self._fitted is None or self._fitted[0] != corpus_hash:
            vectorizer = self._vectorizer()
            try:
                matrix = vectorizer.fit_transform(texts)
            except ValueError as err:  # e.g. empty vocabulary
                raise ConfigError(
                    f"tfidf cannot be fitted on this text ({err}); check the text view and min_df"
                ) from err
            self._fitted = (corpus_hash, vectorizer, self._svd(matrix))
        return self._fitted

    def _vectorizer(self) -> TfidfVectorizer:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(
            analyzer=self.analyzer,
            ngram_range=self.ngram_range,
            min_df=self.min_df,
            max_features=self.max_features,
            sublinear_tf=self.sublinear_tf,
            preprocessor=join_codes if self.join_codes else None,
            dtype=np.float32,
        )

    def _svd(self, matrix) -> TruncatedSVD | None:  # noqa: ANN001 - a scipy sparse matrix
        if self.n_components is None:
            return None
        from sklearn.decomposition import TruncatedSVD

        # TruncatedSVD needs fewer components than features; a tiny corpus caps the size.
        n_components = min(self.n_components, matrix.shape[1] - 1, matrix.shape[0])
        if n_components < 1:
            raise ConfigError("tfidf corpus too small for dimension reduction; set dim=null or add text")
        if n_components < self.n_components:
            log.warning(
                "tfidf dim %d reduced to %d: the corpus is too small", self.n_components, n_components
            )
        svd = TruncatedSVD(n_components=n_components, algorithm="randomized", random_state=self.seed)
        return svd.fit(matrix)

    def encode(self, inputs: Sequence[str]) -> EncodeResult:
        """float32 [N, dim], L2-normalised, in input order."""
        return EncodeResult(self._vectors(inputs))

    def _vectors(self, inputs: Sequence[str]) -> np.ndarray:
        _, vectorizer, svd = self._fit()
        matrix = vectorizer.transform([str(t) for t in inputs])
        if svd is not None:
            return l2_normalize(np.asarray(svd.transform(matrix), dtype=np.float32), inplace=True)
        cells = matrix.shape[0] * matrix.shape[1]
        if cells > MAX_DENSE_CELLS:
            raise ConfigError(
                f"tfidf without dim would give a dense {matrix.shape[0]} x {matrix.shape[1]} matrix; "
                "set encoders.tfidf.dim (e.g. 256) or encoders.tfidf.max_features"
            )
        return l2_normalize(matrix.toarray(), inplace=True)
