"""Small seeded draws shared by the text and drawing builders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def pick(rng: np.random.Generator, seq: Sequence[Any]) -> Any:
    return seq[int(rng.integers(len(seq)))]


def uniform_step(rng: np.random.Generator, lo: float, hi: float, step: float = 1.0) -> float:
    """Uniform value on a grid of `step`."""
    return lo + step * int(rng.integers(int(round((hi - lo) / step)) + 1))


def spread(rng: np.random.Generator, n: int, weights: Sequence[float]) -> np.ndarray:
    """Labels 0..len(weights)-1 for n items in the given shares, each present at least once when n allows."""
    w = np.asarray(weights, dtype=float) / float(np.sum(weights))
    counts = np.floor(w * n).astype(int)
    if n >= len(w):
        counts = np.maximum(counts, 1)
    while counts.sum() > n:
        counts[int(np.argmax(counts))] -= 1
    rest = n - int(counts.sum())
    order = np.argsort(-(w * n - np.floor(w * n)), kind="stable")
    for i in range(rest):
        counts[order[i % len(w)]] += 1
    return rng.permutation(np.repeat(np.arange(len(w)), counts))


def normalized(w: Sequence[float]) -> np.ndarray:
    a = np.asarray(w, dtype=float)
    return a / a.sum()
