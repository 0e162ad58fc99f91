"""TF-IDF: explicit fit on the run's corpus, then encode any texts into its space."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prodmatch.data.catalog import Catalog, load_catalog
from prodmatch.encoders.tfidf import TfidfEncoder
from prodmatch.errors import ConfigError
from tests.unit.encoders.cards import CARDS, assert_unit_rows, write_catalog


def fitted(texts: list[str], **kwargs) -> TfidfEncoder:
    return TfidfEncoder(**kwargs).fit(texts)


def test_tfidf_similarities(catalog: Catalog):
    texts = catalog.texts("title")
    vectors = fitted(texts, dim=None).encode(texts).vectors
    assert_unit_rows(vectors, len(catalog), vectors.shape[1])
    sims = vectors @ vectors.T
    np.testing.assert_allclose(np.diag(sims), 1.0, atol=1e-5)
    # The two Torneo treadmills are closer to each other than to the rowing machine.
    assert sims[0, 1] > 0.8 and sims[0, 1] > sims[0, 3] + 0.3


def test_tfidf_identical_titles_cosine_one(tmp_path: Path):
    cat = load_catalog(write_catalog(tmp_path, cards=[CARDS[0], CARDS[0], CARDS[3]]), tmp_path)
    texts = cat.texts("title")
    vectors = fitted(texts, dim=2).encode(texts).vectors
    assert float(vectors[0] @ vectors[1]) == pytest.approx(1.0, abs=1e-5)


def test_tfidf_dimension_reduction(catalog: Catalog):
    texts = catalog.texts("text_all")
    encoder = fitted(texts, dim=5, seed=0)
    vectors = encoder.encode(texts).vectors
    assert_unit_rows(vectors, len(catalog), 5)
    assert encoder.dim == 5
    np.testing.assert_allclose(vectors, fitted(texts, dim=5, seed=0).encode(texts).vectors, atol=1e-5)


def test_tfidf_fits_on_the_whole_corpus(catalog: Catalog):
    texts = catalog.texts("title")
    encoder = TfidfEncoder(dim=None).fit(texts[:3] + texts)
    assert encoder.encode(texts[:3]).vectors.shape[1] == encoder.encode(texts).vectors.shape[1] == encoder.dim


def test_tfidf_cache_key_follows_corpus_and_params(catalog: Catalog):
    texts = catalog.texts("title")
    assert TfidfEncoder().cache_key() is None  # not fitted: nothing fixes the vectors yet
    keys = {
        fitted(texts, dim=4).cache_key(),
        fitted(texts[:4], dim=4).cache_key(),
        fitted(texts, dim=4, ngram_range=(1, 3)).cache_key(),
    }
    assert len(keys) == 3 and fitted(texts, dim=4).cache_key() in keys


def test_tfidf_refit_changes_the_space(catalog: Catalog):
    encoder = fitted(catalog.texts("title"), dim=None)
    first_dim = encoder.dim
    encoder.fit(catalog.texts("text_all"))
    assert encoder.dim > first_dim  # the longer corpus has more n-grams


def test_tfidf_needs_fit(catalog: Catalog):
    encoder = TfidfEncoder()
    assert encoder.needs_fit and encoder.modality == "text"
    with pytest.raises(ConfigError, match="fit"):
        encoder.encode(catalog.texts("title"))


def test_join_codes_makes_one_token_of_a_model_code_written_three_ways():
    from prodmatch.encoders.tfidf import TfidfEncoder, join_codes

    assert join_codes("VELOMAX Ultra VE-110 Plus") == "velomax ultra ve110 plus"
    assert join_codes("Body-Form TR 70M, Арт. BOTR-633") == "body-form tr70m, арт. botr633"
    assert join_codes("Беговая дорожка 2 шт") == "беговая дорожка 2 шт"  # a word before a number stays apart
    titles = ["Velomax VE-110", "Velomax VE 110", "Velomax VE110", "Velomax VE-120"]
    for joined, same_code in ((False, False), (True, True)):
        enc = TfidfEncoder(analyzer="word", ngram_range=(1, 1), dim=None, join_codes=joined).fit(titles)
        v = enc.encode(titles).vectors
        assert np.allclose(v[0] @ v[2], 1.0) is same_code and np.allclose(v[1] @ v[2], 1.0) is same_code
        assert v[0] @ v[3] < 0.99  # another model stays another model
    on = TfidfEncoder(join_codes=True).fit(titles).cache_key()
    assert on != TfidfEncoder().fit(titles).cache_key() and "join" not in str(TfidfEncoder()._params())
