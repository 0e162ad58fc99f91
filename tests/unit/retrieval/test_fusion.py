"""Fusion: weighted concatenation maths and re-ranking of first-stage candidates."""

from __future__ import annotations

import numpy as np
import pytest

from prodmatch.errors import ConfigError
from prodmatch.retrieval.fusion import concat, rerank


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def blocks() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((12, 5)) * 3.0, rng.standard_normal((12, 3)) + 1.0


@pytest.mark.parametrize("weights", [None, (1.0, 1.0), (3.0, 1.0), (0.2, 0.7), (1.0, 0.0)])
def test_weighted_concat_cosine_is_weighted_mean_of_block_cosines(blocks, weights):
    a, b = blocks
    fused = concat([a, b], weights)
    assert fused.dtype == np.float32 and fused.shape == (12, 8)
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-6)
    w = np.ones(2) if weights is None else np.asarray(weights)
    expected = (w[0] * unit(a) @ unit(a).T + w[1] * unit(b) @ unit(b).T) / w.sum()
    np.testing.assert_allclose(fused @ fused.T, expected, atol=1e-5)


def test_raw_concat_keeps_blocks_as_given(blocks):
    a, b = blocks
    raw = concat([a, b], normalize=False)
    np.testing.assert_allclose(raw, np.hstack([a, b]).astype(np.float32))
    with pytest.raises(ConfigError, match="normalize=true"):
        concat([a, b], [1.0, 2.0], normalize=False)


@pytest.mark.parametrize(
    ("weights", "match"),
    [((1.0,), "one value per block"), ((1.0, -1.0), "non-negative"), ((0.0, 0.0), "not all zero")],
)
def test_concat_rejects_bad_weights(blocks, weights, match):
    with pytest.raises(ConfigError, match=match):
        concat(list(blocks), weights)


def test_concat_rejects_mismatched_rows(blocks):
    with pytest.raises(ValueError, match="same number of rows"):
        concat([blocks[0], blocks[1][:5]])


def test_rerank_orders_candidates_by_second_modality():
    # Second-modality database vectors: item i points at angle i * 10 degrees; the query points at 25 degrees.
    angles = np.deg2rad(np.arange(8) * 10.0)
    db = np.stack([np.cos(angles), np.sin(angles)], axis=1) * 5.0  # scale must not matter
    query = np.array([[np.cos(np.deg2rad(25)), np.sin(np.deg2rad(25))]])
    candidates = np.array([[7, 0, 2, 4, 6]])  # first-stage order, unrelated to the second modality
    ids, scores = rerank(candidates, query, db, k=3)
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    assert ids.tolist() == [[2, 4, 0]]  # 20, 40 and 0 degrees are 5, 15 and 25 degrees off
    np.testing.assert_allclose(scores[0], np.cos(np.deg2rad([5, 15, 25])), atol=1e-6)


def test_rerank_ties_keep_first_stage_order_and_padding_goes_last():
    db = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    query = np.array([[1.0, 0.0], [0.0, 1.0]])
    candidates = np.array([[-1, 3, 2, 0, 1], [0, -1, -1, 2, -1]])
    ids, scores = rerank(candidates, query, db, k=4)
    assert ids.tolist() == [[3, 0, 1, 2], [2, 0, -1, -1]]
    np.testing.assert_allclose(scores[0], [1, 1, 1, 0], atol=1e-6)
    assert scores[1, :2].tolist() == [1.0, 0.0] and np.isneginf(scores[1, 2:]).all()


def test_rerank_pads_when_k_exceeds_candidates_and_chunks_agree():
    rng = np.random.default_rng(1)
    db, queries = rng.standard_normal((50, 6)), rng.standard_normal((9, 6))
    candidates = rng.integers(0, 50, size=(9, 4))
    ids, scores = rerank(candidates, queries, db, k=6)
    assert ids.shape == (9, 6) and (ids[:, 4:] == -1).all() and np.isneginf(scores[:, 4:]).all()
    expected = np.einsum("qd,qkd->qk", unit(queries), unit(db)[ids[:, :4]])
    np.testing.assert_allclose(scores[:, :4], expected, atol=1e-5)
    chunked = rerank(candidates, queries, db, k=6, chunk_size=2)
    np.testing.assert_array_equal(chunked[0], ids)


def test_rerank_validates_ids_and_shapes():
    db, q = np.ones((4, 3)), np.ones((2, 3))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        rerank(np.array([[0, 4], [1, 2]]), q, db, k=1)
    with pytest.raises(ValueError, match="integer array"):
        rerank(np.array([[0.0, 1.0], [1.0, 2.0]]), q, db, k=1)
    with pytest.raises(ValueError, match="dimension"):
        rerank(np.array([[0, 1], [1, 2]]), np.ones((2, 2)), db, k=1)
