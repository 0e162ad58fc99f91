"""Realistic vectors for the scale benchmark: the project's title TF-IDF over synthetic catalogs, made once.

Cards come from the synthetic generator's card tables (no images are drawn) at the ``full`` scale, one catalog
per generator seed (about 13,800 database cards and 1,000 query cards each), as many seeds as ``--db`` needs.
Titles are embedded the way the project's TF-IDF encoders do (``encoders.tfidf_word``: words with model codes
joined; ``encoders.tfidf``: char_wb 2-4 grams), both fitted on a seeded sample of the titles, stacked and
reduced to ``dim`` by one seeded TruncatedSVD, then L2-normalised. The database is a seeded sample of the
seeds' database cards; the queries are a seeded sample of the same seeds' query cards (the ``sportdoma``
shop's), so each query has the few near-duplicates its product has at other shops, as in real matching.

The matrix ``[queries; database]`` is cached as one ``.npy`` keyed by every parameter, so the benchmark's
worker processes (and later runs) read it instead of making it again.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prodmatch.utils.atomic import save_npy, write_json
from prodmatch.utils.hashing import stable_hash
from prodmatch.utils.vectors import l2_normalize

log = logging.getLogger("prodmatch.bench")

_BLOCK = 100_000  # titles transformed at a time


@dataclass(frozen=True)
class CatalogSpec:
    """What fixes the vectors: sizes, dimension, sampling seed, and how many titles fit the TF-IDF + SVD."""

    db: int
    queries: int
    dim: int
    seed: int = 0
    fit_rows: int = 200_000
    scale: str = "full"  # the generator's scale of each seed's catalog
    version: int = 1  # bump when the recipe changes: old cache files are then ignored

    @property
    def key(self) -> str:
        return stable_hash(asdict(self))[:16]


def seed_cards(seed: int, scale: str = "full") -> tuple[list[str], list[str], list[str], list[str]]:
    """(query titles, query SKUs, database titles, database SKUs) of one generator seed, without images."""
    # imported on use: the generator (PIL, pandas) stays out of the bench workers that only read vectors
    from prodmatch.data.synthetic.generation import _plan  # the card tables alone: no image is drawn
    from prodmatch.data.synthetic.tables import SCALES  # imported on use, with the generator

    company, database, _ = _plan(seed, SCALES[scale])
    return (
        [c["title"] for c in company],
        [f"{seed}:{c['sku']}" for c in company],
        [c["title"] for c in database],
        [f"{seed}:{c['sku']}" for c in database],
    )


def collect_cards(spec: CatalogSpec) -> dict[str, Any]:
    """Titles and SKUs from generator seeds 0, 1, ... until both the database and the queries are covered."""
    q_titles: list[str] = []
    q_skus: list[str] = []
    db_titles: list[str] = []
    db_skus: list[str] = []
    seeds = 0
    while len(db_titles) < spec.db or len(q_titles) < spec.queries:
        qt, qs, dt, ds = seed_cards(seeds, spec.scale)
        q_titles += qt
        q_skus += qs
        db_titles += dt
        db_skus += ds
        seeds += 1
    rng = np.random.default_rng(spec.seed)
    db_rows = np.sort(rng.choice(len(db_titles), spec.db, replace=False))
    q_rows = np.sort(rng.choice(len(q_titles), spec.queries, replace=False))
    return {
        "seeds": seeds,
        "queries": [q_titles[i] for i in q_rows],
        "query_skus": np.asarray(q_skus, dtype=object)[q_rows],
        "database": [db_titles[i] for i in db_rows],
        "database_skus": np.asarray(db_skus, dtype=object)[db_rows],
    }


def vectorizers() -> list:
    """The project's two title TF-IDF vectorizers, with the settings of ``conf/encoders/default.yaml``."""
    from prodmatch.encoders.tfidf import TfidfEncoder  # imported on use: scikit-learn

    word = TfidfEncoder(analyzer="word", ngram_range=(1, 1), dim=None, join_codes=True)
    char = TfidfEncoder(analyzer="char_wb", ngram_range=(2, 4), dim=None)
    return [word._vectorizer(), char._vectorizer()]


def embed_titles(titles: list[str], spec: CatalogSpec) -> np.ndarray:
    """float32 [N, dim]: word + char TF-IDF fitted on a seeded sample, one seeded SVD, L2-normalised rows."""
    import scipy.sparse as sp
    from sklearn.decomposition import TruncatedSVD

    rng = np.random.default_rng(spec.seed)
    fit = titles
    if len(titles) > spec.fit_rows:
        fit = [titles[i] for i in np.sort(rng.choice(len(titles), spec.fit_rows, replace=False))]
    tfidf = [v.fit(fit) for v in vectorizers()]
    svd = TruncatedSVD(n_components=spec.dim, algorithm="randomized", random_state=spec.seed)
    svd.fit(sp.hstack([v.transform(fit) for v in tfidf]).tocsr())
    out = np.empty((len(titles), spec.dim), dtype=np.float32)
    for start in range(0, len(titles), _BLOCK):
        block = titles[start : start + _BLOCK]
        out[start : start + len(block)] = svd.transform(
            sp.hstack([v.transform(block) for v in tfidf]).tocsr()
        )
    return l2_normalize(out, inplace=True)


def duplicates_per_query(query_skus: np.ndarray, database_skus: np.ndarray) -> dict[str, float]:
    """How many database cards share each query's product: the near-duplicates a search should find."""
    values, counts = np.unique(database_skus.astype(str), return_counts=True)
    per_sku = dict(zip(values.tolist(), counts.tolist(), strict=True))
    n = np.array([per_sku.get(s, 0) for s in query_skus.astype(str)])
    return {"mean_duplicates_per_query": float(n.mean()), "share_of_queries_with_one": float((n > 0).mean())}


def catalog_vectors(spec: CatalogSpec, cache_dir: str | Path) -> tuple[Path, dict[str, Any]]:
    """The cached ``[queries; database]`` float32 matrix for ``spec`` (made when missing) and its description."""
    cache_dir = Path(cache_dir)
    path, meta_path = cache_dir / f"catalog_{spec.key}.npy", cache_dir / f"catalog_{spec.key}.json"
    if path.is_file() and meta_path.is_file():
        return path, json.loads(meta_path.read_text())
    start = time.perf_counter()
    cards = collect_cards(spec)
    titles = cards["queries"] + cards["database"]
    log.info("catalog vectors: %d titles from %d generator seeds", len(titles), cards["seeds"])
    vectors = embed_titles(titles, spec)
    meta = asdict(spec) | {"seeds": cards["seeds"], "make_s": time.perf_counter() - start}
    meta |= duplicates_per_query(cards["query_skus"], cards["database_skus"])
    save_npy(path, vectors)
    write_json(meta_path, meta)
    return path, meta


def load_catalog_vectors(path: str | Path, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """(queries, database) read into memory, as the generated clusters are (peak RSS counts them alike)."""
    matrix = np.load(path)
    return matrix[:queries], matrix[queries:]
