"""What a training batch holds: the sampler objects the DataModule takes (``datamodule/sampler=...``).

A sampler turns the labelled cards of a pool (database positions, with their class codes and dealers) into one
epoch's :class:`Draw`: rows of card positions in batch order. It draws from ``(seed, epoch)`` alone, so every rank
of a distributed run draws the same rows and a resumed run draws what an uninterrupted one does. Its ``layout``
says what a batch holds, and so which modules it can train:

* ``pairs``: (a, b, same) pairs, the study's siamese and classifier batches (:class:`PairBatches`);
* ``cards``: single cards ``x`` with their class ``label``, several cards per class in a batch, for
  pytorch-metric-learning losses (:class:`MPerClass`, :class:`DistinctCards`);
* ``views``: two augmented views ``a`` / ``b`` of each card, ``label`` = the card (self-supervised NT-Xent,
  :class:`Views`);
* ``positives``: (a, b) cards of the same class for in-batch-negative losses such as sentence-transformers'
  MultipleNegativesRankingLoss (:class:`Positives`).

Each config node of ``conf/datamodule/sampler/`` maps onto one constructor here.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from prodmatch.data.training.pairs import PairSampler, positive_pairs
from prodmatch.errors import CatalogError, ConfigError

log = logging.getLogger("prodmatch.data")

LAYOUTS = ("pairs", "cards", "views", "positives")


@dataclass(frozen=True)
class Draw:
    """One epoch's rows in batch order: database positions of each row's card(s) and the row's label.

    ``second`` holds the other card of a pair (``pairs``, ``positives``) or the card again (``views``: its second
    view); None for single-card rows. ``same`` (``pairs`` only): both cards share a class.
    """

    first: np.ndarray  # int64 [n]
    labels: np.ndarray  # int64 [n]
    second: np.ndarray | None = None  # int64 [n]
    same: np.ndarray | None = None  # bool [n]

    def __len__(self) -> int:
        return len(self.first)


class Sampler(ABC):
    """Draws an epoch's rows over a pool of labelled cards; ``name`` is its ``datamodule/sampler`` node."""

    name: ClassVar[str]
    layout: ClassVar[str]

    def check(self, codes: np.ndarray, pool: np.ndarray, batch_size: int) -> None:
        """Raise one ConfigError line when this sampler cannot fill batches of ``batch_size`` from ``pool``."""
        return None  # every pool will do, unless a sampler says otherwise

    @abstractmethod
    def draw(
        self,
        codes: np.ndarray,
        pool: np.ndarray,
        seed: int,
        epoch: int,
        batch_size: int,
        dealers: np.ndarray | None = None,
    ) -> Draw:
        """The rows of ``epoch`` over ``pool`` (database positions); ``codes`` are every card's class (-1: none)."""

    def validation(
        self,
        codes: np.ndarray,
        pool: np.ndarray,
        seed: int,
        batch_size: int,
        dealers: np.ndarray | None = None,
    ) -> Draw | None:
        """Fixed validation rows over ``pool`` (the same every epoch), or None when it cannot give any."""
        return self.draw(codes, pool, seed, 0, batch_size, dealers)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def class_order(codes: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """``pool`` sorted by class (stable): validation batches then hold the positives of their anchors."""
    return pool[np.argsort(codes[pool], kind="stable")]


class PairBatches(Sampler):
    """The study's pairs: per anchor card, with probability ``positive_prob`` another card of its class, else a
    card of another class (:class:`~prodmatch.data.training.pairs.PairSampler`); ``pairs_per_epoch`` pairs (null:
    one per pool card), classes drawn uniformly first with ``balance_targets``. Validation: one pair per card."""

    name = "pairs"
    layout = "pairs"

    def __init__(
        self, positive_prob: float = 0.5, balance_targets: bool = False, pairs_per_epoch: int | None = None
    ) -> None:
        if not 0.0 <= positive_prob <= 1.0:
            raise ConfigError(
                f"datamodule.sampler.positive_prob={positive_prob} is outside [0, 1]; set a probability"
            )
        if pairs_per_epoch is not None and (isinstance(pairs_per_epoch, bool) or pairs_per_epoch < 1):
            raise ConfigError(
                f"datamodule.sampler.pairs_per_epoch={pairs_per_epoch} must be >= 1, or null for one pair per card"
            )
        self.positive_prob = float(positive_prob)
        self.balance_targets = bool(balance_targets)
        self.pairs_per_epoch = pairs_per_epoch

    def check(self, codes: np.ndarray, pool: np.ndarray, batch_size: int) -> None:
        self._pairs(codes, pool, 0)  # a pool of one class raises CatalogError, naming the fix

    def _pairs(self, codes: np.ndarray, pool: np.ndarray, seed: int) -> PairSampler:
        return PairSampler(codes, pool, self.positive_prob, self.balance_targets, seed)

    def draw(self, codes, pool, seed, epoch, batch_size, dealers=None) -> Draw:
        pairs = self._pairs(codes, pool, seed).sample(epoch, self.pairs_per_epoch)
        return Draw(pairs.anchor, codes[pairs.anchor], pairs.other, pairs.same)

    def validation(self, codes, pool, seed, batch_size, dealers=None) -> Draw | None:
        if len(np.unique(codes[pool])) < 2:
            return None
        pairs = self._pairs(codes, pool, seed).sample(0)
        return Draw(pairs.anchor, codes[pairs.anchor], pairs.other, pairs.same)


@contextmanager
def _numpy_seeded(*key: int) -> Iterator[None]:
    """Run the block with NumPy's global RNG seeded from ``key``, restoring the caller's state after."""
    state = np.random.get_state()
    np.random.seed(int(np.random.default_rng(key).integers(2**32 - 1)))
    try:
        yield
    finally:
        np.random.set_state(state)


class MPerClass(Sampler):
    """``m`` cards of each class per batch, by pytorch-metric-learning's ``MPerClassSampler``: a class with fewer
    than ``m`` pool cards repeats some (the same image, augmented afresh). One epoch is about one card per pool
    card; the library draws from NumPy's global RNG, seeded here from (seed, epoch). Validation: class order."""

    name = "m_per_class"
    layout = "cards"

    def __init__(self, m: int = 4) -> None:
        self.m = int(m)

    def check(self, codes: np.ndarray, pool: np.ndarray, batch_size: int) -> None:
        classes = len(np.unique(codes[pool]))
        if self.m < 1 or batch_size % self.m:
            raise ConfigError(
                f"datamodule.sampler.m={self.m} must be >= 1 and divide datamodule.batch_size={batch_size}; "
                "set e.g. datamodule.sampler.m=4"
            )
        if self.m * classes < batch_size:
            raise ConfigError(
                f"datamodule.batch_size={batch_size} exceeds m x classes ({self.m} x {classes}); "
                "lower datamodule.batch_size"
            )

    def draw(self, codes, pool, seed, epoch, batch_size, dealers=None) -> Draw:
        from pytorch_metric_learning.samplers import MPerClassSampler

        sampler = MPerClassSampler(codes[pool], self.m, batch_size, max(len(pool), batch_size))
        with _numpy_seeded(int(seed), int(epoch), 4):
            rows = pool[np.fromiter(iter(sampler), dtype=np.int64, count=len(sampler))]
        return Draw(rows, codes[rows])

    def validation(self, codes, pool, seed, batch_size, dealers=None) -> Draw | None:
        rows = class_order(codes, pool)
        return Draw(rows, codes[rows])


class Views(Sampler):
    """Two augmented views of each pool card, every card once per epoch in a seeded order; ``label`` = the card's
    position (labels are not read: SimCLR's NT-Xent). Validation: class order, the second view augmented."""

    name = "views"
    layout = "views"

    def draw(self, codes, pool, seed, epoch, batch_size, dealers=None) -> Draw:
        rows = pool[np.random.default_rng((int(seed), int(epoch), 5)).permutation(len(pool))]
        return Draw(rows, rows.copy(), rows)

    def validation(self, codes, pool, seed, batch_size, dealers=None) -> Draw | None:
        rows = class_order(codes, pool)
        return Draw(rows, rows.copy(), rows)


class Positives(Sampler):
    """(a, b) pairs of two different cards of one class, every card of a class with two or more pool cards
    anchoring once per epoch, in rounds that repeat no class
    (:func:`~prodmatch.data.training.pairs.positive_pairs`). Validation: the same over the validation cards."""

    name = "positives"
    layout = "positives"

    def draw(self, codes, pool, seed, epoch, batch_size, dealers=None) -> Draw:
        pairs = positive_pairs(codes, pool, seed, epoch)
        return Draw(pairs.anchor, codes[pairs.anchor], pairs.other)

    def validation(self, codes, pool, seed, batch_size, dealers=None) -> Draw | None:
        try:
            return self.draw(codes, pool, seed, 0, batch_size)
        except CatalogError:
            return None  # no validation class holds two cards


class DistinctCards(Sampler):
    """``k`` distinct cards of each product in a batch, ``batch_size / k`` products per batch, no product twice.

    The rule, per epoch (seeded by (seed, epoch)):

    * A product's pool cards are ordered cross-dealer first: one card of each of its dealers (dealers in random
      order), then a second card of each dealer that has one, and so on (cards shuffled within a dealer).
    * A product with ``n >= k`` cards is visited ``ceil(n / k)`` times, so every card is seen; visit ``j`` takes the
      ``k`` cards at positions ``j*k, ..., j*k + k - 1`` of that order, cyclically: always ``k`` distinct cards,
      and the first visit's are from as many dealers as the product has.
    * A product with fewer than ``k`` cards (a single-card product, for ``k = 2``) has no ``k`` distinct cards:
      with ``views=true`` it is visited once and its cards repeat to make ``k`` rows, each repeat another
      augmented view of the same image (two views of one card, SimCLR-style); with ``views=false`` (the default)
      it is left out of training, and the count is logged.
    * Visits are arranged in rounds (round j holds every product's j-th visit, products shuffled), and cut into
      batches of ``batch_size / k`` visits; a visit whose product is already in the batch waits for the next.
      The visits left over at the end (fewer than one batch) wait for another epoch's draw.

    Rows are single cards (``cards`` layout: ``x``, ``label``), a product's ``k`` rows next to each other.
    """

    name = "distinct_cards"
    layout = "cards"

    def __init__(self, k: int = 2, views: bool = False) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ConfigError(
                f"datamodule.sampler.k={k!r} must be an integer >= 2 (positives need two cards); set e.g. k=2"
            )
        self.k = k
        self.views = bool(views)

    def check(self, codes: np.ndarray, pool: np.ndarray, batch_size: int) -> None:
        if batch_size % self.k or batch_size < 2 * self.k:
            raise ConfigError(
                f"datamodule.sampler.k={self.k} must divide datamodule.batch_size={batch_size} at least twice "
                f"(two products per batch); set e.g. datamodule.batch_size={max(4, 16 // self.k) * self.k}"
            )
        counts = np.bincount(codes[pool][codes[pool] >= 0])
        short = int(((counts > 0) & (counts < self.k)).sum())
        if short and not self.views:
            log.info(
                "distinct_cards: %d of %d training products have fewer than k=%d distinct cards and are left out "
                "(datamodule.sampler.views=true fills them with augmented views)",
                short, int((counts > 0).sum()), self.k,
            )  # fmt: skip
        eligible = int((counts > 0).sum() if self.views else (counts >= self.k).sum())
        if eligible < batch_size // self.k:
            raise ConfigError(
                f"datamodule.sampler=distinct_cards: {eligible} products with "
                f"{'a card' if self.views else f'{self.k} distinct cards'} for batches of "
                f"{batch_size // self.k} products; lower datamodule.batch_size"
                f"{'' if self.views else ' or set datamodule.sampler.views=true'}"
            )

    def draw(self, codes, pool, seed, epoch, batch_size, dealers=None) -> Draw:
        rng = np.random.default_rng((int(seed), int(epoch), 6))
        cards, keys = self.visits(codes, pool, rng, dealers)
        batches = _batches(keys, rng, batch_size // self.k)
        rows = cards[batches.ravel()].ravel()
        return Draw(rows, codes[rows])

    def visits(
        self,
        codes: np.ndarray,
        pool: np.ndarray,
        rng: np.random.Generator,
        dealers: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(cards [V, k], (product, round) [V, 2]) of the epoch's visits to the pool's products (class docstring)."""
        pool = np.asarray(pool, dtype=np.int64)
        pool = pool[codes[pool] >= 0]
        c = codes[pool]
        dealer = np.zeros(len(pool), dtype=np.int64) if dealers is None else _codes_of(dealers)[pool]
        # Cross-dealer order inside each product: a card's "dealer round" is its rank among its product's cards
        # of the same dealer (cards shuffled first); dealers are shuffled inside each round.
        shuffle = rng.random(len(pool))
        by_dealer = np.lexsort((shuffle, dealer, c))
        c_sorted, d_sorted = c[by_dealer], dealer[by_dealer]
        same_group = np.r_[False, (c_sorted[1:] == c_sorted[:-1]) & (d_sorted[1:] == d_sorted[:-1])]
        dealer_round = np.empty(len(pool), dtype=np.int64)
        dealer_round[by_dealer] = _run_rank(same_group)
        order = np.lexsort((rng.random(len(pool)), dealer_round, c))
        cards, products = pool[order], c[order]
        starts = np.flatnonzero(np.r_[True, products[1:] != products[:-1]])
        sizes = np.diff(np.r_[starts, len(products)])
        short = sizes < self.k
        n_visits = np.where(short, 0 if not self.views else 1, -(-sizes // self.k))
        product_of_visit = np.repeat(np.arange(len(sizes)), n_visits)
        round_of_visit = np.arange(len(product_of_visit)) - np.repeat(
            np.cumsum(n_visits) - n_visits, n_visits
        )
        slot = round_of_visit[:, None] * self.k + np.arange(self.k)[None, :]
        offsets = slot % sizes[product_of_visit][:, None]
        visit_cards = cards[starts[product_of_visit][:, None] + offsets]
        return visit_cards, np.stack([product_of_visit, round_of_visit], axis=1)


def _codes_of(values: np.ndarray) -> np.ndarray:
    """Integer codes of arbitrary values (e.g. dealer names)."""
    _, inverse = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
    return inverse.astype(np.int64)


def _run_rank(continues: np.ndarray) -> np.ndarray:
    """Rank of each element inside its run, where ``continues[i]`` says element i continues the run of i - 1."""
    index = np.arange(len(continues))
    run_start = np.maximum.accumulate(np.where(continues, 0, index))
    return index - run_start


def _batches(product_round: np.ndarray, rng: np.random.Generator, per_batch: int) -> np.ndarray:
    """Visit indices [B, per_batch]: rounds in order, products shuffled in each round, no product twice in a
    batch (a visit that would repeat one waits for the next batch); the remainder is left over."""
    if len(product_round) == 0:
        return np.empty((0, per_batch), dtype=np.int64)
    product, rounds = product_round[:, 0], product_round[:, 1]
    sequence = np.lexsort((rng.random(len(product)), rounds))
    batches: list[list[int]] = []
    pending = sequence.tolist()
    while len(pending) >= per_batch:
        batch: list[int] = []
        seen: set[int] = set()
        waiting: list[int] = []
        for i, visit in enumerate(pending):
            p = int(product[visit])
            if p in seen:
                waiting.append(visit)
                continue
            batch.append(visit)
            seen.add(p)
            if len(batch) == per_batch:
                waiting.extend(pending[i + 1 :])
                break
        if len(batch) < per_batch:
            break  # the rest holds too few distinct products for a batch
        batches.append(batch)
        pending = waiting
    return np.asarray(batches, dtype=np.int64).reshape(-1, per_batch)
