"""Lazy, vectorised pair sampling for siamese training, and same-class pairs for in-batch-negative losses.

Pairs are index arrays into a catalog (never tensors), regenerated per epoch from ``(seed, epoch)``, so the
memory needed stays flat as the catalog grows and every rank of a distributed run draws the same pairs.

Label conventions differ between the losses in use, so pairs carry a plain boolean ``same`` (both cards share
a target) and :func:`pair_labels` is the one place that turns it into a loss label:

* the study's ``ContrastiveLoss`` (:mod:`prodmatch.models.losses`): label 1 = DIFFERENT target;
* ``CosineSimilarityLoss``: y = 1 same target, 0 different;
* sentence-transformers' ``losses.ContrastiveLoss``: label 1 = SAME target.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import torch

from prodmatch.errors import CatalogError, ConfigError

log = logging.getLogger("prodmatch.data")

OneMeans = Literal["same", "different"]
ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def pair_labels(same: ArrayT, one_means: OneMeans) -> ArrayT:
    """Float labels for a loss whose label 1 means ``one_means`` ("same" or "different" target)."""
    if one_means not in ("same", "different"):
        raise ConfigError(f"unknown label convention {one_means!r}; use 'same' or 'different'")
    if isinstance(same, torch.Tensor):
        flag = same.bool() if one_means == "same" else ~same.bool()
        return flag.float()
    flag = np.asarray(same, dtype=bool)
    return (flag if one_means == "same" else ~flag).astype(np.float32)


def encode_labels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (int64) and the sorted names they index, e.g. for targets or skus."""
    names, codes = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
    return codes.astype(np.int64), names.astype(object)


@dataclass(frozen=True)
class Pairs:
    """One epoch of pairs: positions into the catalog the sampler was built on."""

    anchor: np.ndarray  # int64 [n]
    other: np.ndarray  # int64 [n]
    same: np.ndarray  # bool [n]: True when both cards share a target
    singleton_fallbacks: int = 0  # positives drawn for single-card targets, turned into negatives

    def __len__(self) -> int:
        return len(self.anchor)


class PairSampler:
    """Draws (anchor, other, same) pairs over ``pool`` positions, grouped by their target codes.

    Per anchor, with probability ``positive_prob`` the partner is another card of the same target, else a card
    of a different target (uniform over cards). With ``balance_targets`` the anchors' targets are drawn
    uniformly first, so each target is equally represented whatever its size.
    """

    def __init__(
        self,
        target_codes: np.ndarray,
        pool: np.ndarray | None = None,
        positive_prob: float = 0.5,
        balance_targets: bool = False,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= positive_prob <= 1.0:
            raise ConfigError(f"positive_prob={positive_prob} is outside [0, 1]; set a probability")
        codes_all = np.asarray(target_codes, dtype=np.int64)
        self.pool = np.arange(len(codes_all)) if pool is None else np.asarray(pool, dtype=np.int64)
        self.positive_prob = float(positive_prob)
        self.balance_targets = bool(balance_targets)
        self.seed = int(seed)
        codes = codes_all[self.pool]
        if len(np.unique(codes)) < 2:
            raise CatalogError(
                "pair sampling needs cards of at least two targets to draw negatives; "
                "add cards of another target to the training catalog"
            )
        # Group pool positions by target: members of target t are order[offsets[t] : offsets[t] + counts[t]].
        self.codes = codes
        self.order = np.argsort(codes, kind="stable")
        self.counts = np.bincount(codes, minlength=int(codes_all.max()) + 1)
        self.offsets = np.cumsum(self.counts) - self.counts
        self.rank = np.empty(len(codes), dtype=np.int64)  # position of each card inside its target group
        self.rank[self.order] = np.arange(len(codes)) - self.offsets[codes[self.order]]
        self.present = np.flatnonzero(self.counts)

    def __len__(self) -> int:
        return len(self.pool)

    def sample(self, epoch: int, n: int | None = None) -> Pairs:
        """Pairs for ``epoch``; ``n`` pairs (default one per pool card), deterministic per (seed, epoch)."""
        rng = np.random.default_rng((self.seed, int(epoch)))
        n = len(self.pool) if n is None else int(n)
        anchors = self._anchors(rng, n)
        t = self.codes[anchors]
        size = self.counts[t]

        want_pos = rng.random(n) < self.positive_prob
        # Draw both kinds of partner for every anchor and select afterwards: one vectorised pass per kind.
        pos_j = rng.integers(0, np.maximum(size - 1, 1))
        pos_j = pos_j + (pos_j >= self.rank[anchors])  # skip the anchor itself
        positive = self.order[np.minimum(self.offsets[t] + pos_j, len(self.order) - 1)]
        neg_k = rng.integers(0, len(self.codes) - size)
        neg_k = neg_k + np.where(neg_k >= self.offsets[t], size, 0)  # skip the anchor's target block
        negative = self.order[neg_k]

        singleton = want_pos & (size < 2)
        same = want_pos & ~singleton
        other = np.where(same, positive, negative)
        fallbacks = int(singleton.sum())
        if fallbacks:
            log.debug("epoch %d: %d positives for single-card targets drawn as negatives", epoch, fallbacks)
        return Pairs(self.pool[anchors], self.pool[other], same, fallbacks)

    def _anchors(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Anchor positions (into the pool): every card once per pass, or target-balanced draws."""
        if self.balance_targets:
            t = self.present[rng.integers(0, len(self.present), size=n)]
            return self.order[self.offsets[t] + rng.integers(0, self.counts[t])]
        return np.resize(rng.permutation(len(self.pool)), n)


def positive_pairs(codes: np.ndarray, pool: np.ndarray, seed: int, epoch: int) -> Pairs:
    """Pairs of two different cards of the same class, for losses whose negatives are the rest of the batch.

    Every ``pool`` card of a class with at least two pool cards anchors once per epoch, its partner drawn
    from the other cards of its class. Pairs come in rounds (round r holds the r-th card of each class, in
    random order), so consecutive pairs repeat no class while a round lasts: a batch holds a class twice
    (its own false negative) only where it spans two rounds and draws the same class from both.
    """
    pool = np.asarray(pool, dtype=np.int64)
    codes_pool = np.asarray(codes, dtype=np.int64)[pool]
    rng = np.random.default_rng((int(seed), int(epoch), 3))
    counts = np.bincount(codes_pool[codes_pool >= 0], minlength=1)
    members = np.flatnonzero((codes_pool >= 0) & (counts[np.maximum(codes_pool, 0)] >= 2))
    if len(members) == 0:
        raise CatalogError(
            "positive pairs need a class with at least two training cards; check the labels or the split"
        )
    # Group by class, shuffled inside each class; rank = the card's position inside its class group.
    order = np.lexsort((rng.random(len(members)), codes_pool[members]))
    m, c = members[order], codes_pool[members[order]]
    first = np.searchsorted(c, c)
    size = counts[c]
    rank = np.arange(len(c)) - first
    partner_rank = rng.integers(0, size - 1)
    partner_rank = partner_rank + (partner_rank >= rank)  # another card of the class, never itself
    partner = m[first + partner_rank]
    sequence = np.lexsort((rng.random(len(c)), rank))  # round by round, classes shuffled in each
    return Pairs(pool[m[sequence]], pool[partner[sequence]], np.ones(len(c), dtype=bool))
