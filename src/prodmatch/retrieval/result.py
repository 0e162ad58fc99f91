"""The retrieval result: one object from search to metrics, artifacts, W&B tables, galleries and reports.

A :class:`RetrievalResult` holds the final ranking of every query (database positions and cosine scores, best
first, at least ``k`` deep), what produced it (channels, fusion, search) and how good the search was against
exact search. ``save(run_dir)`` writes it with its provenance (the catalogs' CSV paths, row ids and content
hashes, the resolved config); ``load(run_dir)`` reads it back through the catalog layer, refusing a catalog
whose CSV changed since, so every later stage is a function of a loaded result and never re-derives it.
Under the product protocol the query cards' product groups (their ``split`` column) are saved with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prodmatch.data.catalog import Catalog, load_catalog
from prodmatch.errors import ConfigError
from prodmatch.layout import RESULT_DIR, RESULT_META_FILE
from prodmatch.retrieval.protocol import SPLIT_COLUMN, query_split
from prodmatch.utils import atomic
from prodmatch.utils.hashing import file_hash

_SPLIT_FILE = "queries_split.npy"
_FORMAT = 1


@dataclass
class RetrievalResult:
    """The final top-ranked database cards of every query, plus what metrics and reports need."""

    queries: Catalog
    database: Catalog
    ids: np.ndarray  # int64 [Q, depth >= k]: database positions (into `database`), best first; -1 = padding
    scores: np.ndarray  # float32 [Q, depth]: cosine similarity of the final ranking; -inf = padding
    k: int  # the evaluation cut (retrieval.k)
    description: str  # e.g. "image top-40, re-ranked by title_cat"
    channels: list[dict[str, str]] = field(default_factory=list)  # [{encoder, view}, ...]
    uses_images: bool = False  # whether any channel embedded images (galleries and W&B tables show them)
    search: dict[str, Any] = field(default_factory=dict)  # index backend, ann_recall@k and its sample size
    data: dict[str, int] = field(default_factory=dict)  # cards dropped or warned about while embedding
    timings: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] | None = None  # the run's resolved config (provenance)
    fusion_weights: dict[str, float] = field(default_factory=dict)  # by channel label, when chosen (auto)

    def __post_init__(self) -> None:
        if self.ids.shape != self.scores.shape or self.ids.shape[0] != len(self.queries):
            raise ValueError(
                f"ids {self.ids.shape} and scores {self.scores.shape} must both be [{len(self.queries)}, depth]"
            )
        if self.ids.shape[1] < self.k:
            raise ValueError(f"the ranking holds {self.ids.shape[1]} results per query but k={self.k}")

    @property
    def top_ids(self) -> np.ndarray:
        """[Q, k]: the evaluated top-k."""
        return self.ids[:, : self.k]

    @property
    def top_scores(self) -> np.ndarray:
        return self.scores[:, : self.k]

    # ------------------------------------------------------------------------------------------- persistence
    def save(self, run_dir: str | Path) -> Path:
        """Write the result under ``<run_dir>/result/`` (arrays as .npy, the rest as JSON), atomically."""
        out = Path(run_dir) / RESULT_DIR
        atomic.save_npy(out / "ids.npy", self.ids.astype(np.int64, copy=False))
        atomic.save_npy(out / "scores.npy", self.scores.astype(np.float32, copy=False))
        for role, catalog in (("queries", self.queries), ("database", self.database)):
            atomic.save_npy(out / f"{role}_row_ids.npy", catalog.row_ids)
        split = query_split(self.queries)
        if split is not None:  # product protocol: each query card's product group
            atomic.save_npy(out / _SPLIT_FILE, split.astype(str))
        else:
            (out / _SPLIT_FILE).unlink(missing_ok=True)
        meta = {
            "format": _FORMAT,
            "k": self.k,
            "description": self.description,
            "channels": self.channels,
            "uses_images": self.uses_images,
            "search": self.search,
            "data": self.data,
            "timings": self.timings,
            "fusion_weights": self.fusion_weights,
            "catalogs": {"queries": _provenance(self.queries), "database": _provenance(self.database)},
            "config": self.config,
        }
        atomic.write_json(out / RESULT_META_FILE, meta)
        return out

    @classmethod
    def load(cls, run_dir: str | Path, **catalog_paths: str | Path | None) -> RetrievalResult:
        """Read a saved result; ``queries_csv`` / ``database_csv`` / ``image_root`` point at moved files."""
        out = Path(run_dir) / RESULT_DIR
        meta_path = out / RESULT_META_FILE
        if not meta_path.is_file():
            raise ConfigError(
                f"{run_dir}: no saved retrieval result ({RESULT_DIR}/{RESULT_META_FILE}); pass a run dir that "
                "evaluate.py, match.py or train.py wrote"
            )
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        catalogs = {
            role: _reload(meta["catalogs"][role], np.load(out / f"{role}_row_ids.npy"), role, catalog_paths)
            for role in ("queries", "database")
        }
        if (out / _SPLIT_FILE).is_file():
            catalogs["queries"] = catalogs["queries"].with_column(SPLIT_COLUMN, np.load(out / _SPLIT_FILE))
        return cls(
            queries=catalogs["queries"],
            database=catalogs["database"],
            ids=np.load(out / "ids.npy"),
            scores=np.load(out / "scores.npy"),
            k=int(meta["k"]),
            description=meta["description"],
            channels=meta.get("channels", []),
            uses_images=bool(meta.get("uses_images")),
            search=meta.get("search", {}),
            data=meta.get("data", {}),
            timings=meta.get("timings", {}),
            config=meta.get("config"),
            fusion_weights=meta.get("fusion_weights", {}),
        )


def _provenance(catalog: Catalog) -> dict[str, Any]:
    """Where a catalog came from and what its CSV held."""
    csv = catalog.csv_path
    return {
        "name": catalog.name,
        "csv": None if csv is None else str(csv),
        "csv_sha256": catalog.csv_hash,  # of the bytes the rows were parsed from
        "image_root": None if catalog.image_root is None else str(catalog.image_root),
        "rows": len(catalog),
    }


def _reload(meta: dict[str, Any], row_ids: np.ndarray, role: str, paths: dict[str, Any]) -> Catalog:
    """The catalog rows a result was computed on, read again through the catalog layer."""
    csv = Path(paths.get(f"{role}_csv") or meta["csv"] or "")
    root = paths.get("image_root") or meta.get("image_root")
    if not csv.is_file():
        raise ConfigError(
            f"the {role} CSV of this result, {csv}, is not there; pass its new location "
            f"({role}_csv=...) or rerun the evaluation"
        )
    if meta.get("csv_sha256") and file_hash(csv) != meta["csv_sha256"]:
        raise ConfigError(
            f"{csv} changed since this result was computed; rerun the evaluation on the current file "
            "(the saved ranking refers to the old rows)"
        )
    catalog = load_catalog(csv, root, require_images=False, check_images="none")
    pos = np.searchsorted(catalog.row_ids, row_ids)
    if (pos >= len(catalog)).any() or not np.array_equal(
        catalog.row_ids[np.minimum(pos, len(catalog) - 1)], row_ids
    ):
        raise ConfigError(f"{csv}: rows of the saved result are missing from the file; rerun the evaluation")
    return catalog.subset(pos)
