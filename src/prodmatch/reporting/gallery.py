"""HTML galleries of a run's top-k for chosen queries, per run and side by side across experiments.

A gallery is a function of the run's saved result: ``RetrievalResult.load(run_dir)`` gives the ranked database
cards of every query (read again through the catalog layer), :func:`prodmatch.retrieval.examples.examples`
the hits with their same-target / same-SKU marks, and the catalog layer the image paths and decoding. Images
are embedded as small base64 JPEG thumbnails, so a page is one self-contained file.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from prodmatch.data.catalog import Catalog
from prodmatch.data.images import load_image
from prodmatch.errors import CatalogError, ImageError, one_line
from prodmatch.layout import METRICS_FILE, acc_key
from prodmatch.reporting.study import STUDY_QUERY_IDS
from prodmatch.retrieval.examples import Hit, examples, positions_of_rows
from prodmatch.retrieval.result import RetrievalResult

log = logging.getLogger("prodmatch.reporting")

THUMB_PX = 160


@dataclass(frozen=True)
class Card:
    """One product card as shown in a gallery."""

    row: int  # row position in its CSV
    title: str
    price: str
    target: str
    dealer: str
    sku: str | None
    image: Path | None  # None when there is no usable path; image_problem says why
    image_problem: str | None = None


@dataclass
class QueryView:
    """A query card and its ranked hits, each with the hit's card."""

    query_id: int  # row position in the query CSV
    query: Card
    hits: list[tuple[Hit, Card]]


@dataclass
class RunGallery:
    """Everything a page needs about one run."""

    experiment: str
    run_dir: Path
    description: str
    k: int  # hits shown per query
    run_k: int  # the run's evaluation cut
    acc: float | None  # the run's Acc@run_k (0..1)
    requested_ids: list[int]
    queries: list[QueryView] = field(default_factory=list)
    note: str | None = None


# --------------------------------------------------------------------------------------------- cards
def _image_paths(catalog: Catalog, positions: Sequence[int]) -> list[tuple[Path | None, str | None]]:
    """(path, None) or (None, reason) per position, by the catalog's own image-path rule."""
    if catalog.image_root is None:
        return [(None, "no image root")] * len(positions)
    try:
        return [(p, None) for p in catalog.subset(positions).image_paths()]
    except CatalogError:  # a bad img_ref among them: one at a time, so only that card gets a placeholder
        out: list[tuple[Path | None, str | None]] = []
        for pos in positions:
            try:
                out.append((catalog.subset([pos]).image_paths()[0], None))
            except CatalogError:
                out.append((None, "empty or unsafe img_ref"))
        return out


def _price(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:g}"
    return str(value)


def cards(catalog: Catalog, positions: Sequence[int]) -> list[Card]:
    """Cards of the catalog rows at ``positions`` (positions in the catalog, not CSV rows)."""
    pos = np.asarray(positions, dtype=np.int64)
    frame = catalog.frame
    cols = {c: frame[c].to_numpy(dtype=object)[pos] for c in ("title", "price", "target", "dealer")}
    skus = catalog.skus[pos] if catalog.skus is not None else np.full(len(pos), "", dtype=object)
    rows = catalog.row_ids[pos]
    images = _image_paths(catalog, pos.tolist())
    return [
        Card(
            int(rows[i]),
            str(cols["title"][i]),
            _price(cols["price"][i]),
            str(cols["target"][i]),
            str(cols["dealer"][i]),
            str(skus[i]) or None,
            *images[i],
        )
        for i in range(len(pos))
    ]


# --------------------------------------------------------------------------------------------- galleries
def _acc(run_dir: Path, k: int) -> float | None:
    """The run's Acc@k from its metrics.json, None when it is not there."""
    try:
        value = json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8")).get(acc_key(k))
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def gallery_of(
    result: RetrievalResult,
    query_ids: Sequence[int] = STUDY_QUERY_IDS,
    k: int | None = None,
    *,
    experiment: str,
    run_dir: Path,
) -> RunGallery:
    """The chosen queries (query-CSV row positions) of a result with their top-``k`` (default: its k)."""
    depth = result.ids.shape[1]
    shown = min(k or result.k, depth)
    note = None if (k or result.k) <= depth else f"{k} per query requested; the run saved its top-{depth}"
    gallery = RunGallery(
        experiment, Path(run_dir), result.description, shown, result.k, _acc(Path(run_dir), result.k),
        [int(i) for i in query_ids], note=note,
    )  # fmt: skip
    chosen = examples(result, positions_of_rows(result, query_ids), shown)
    q_cards = cards(result.queries, [ex.query_pos for ex in chosen])
    d_cards = cards(result.database, [h.db_pos for ex in chosen for h in ex.hits])
    start = 0
    for ex, q_card in zip(chosen, q_cards, strict=True):
        hits = list(zip(ex.hits, d_cards[start : start + len(ex.hits)], strict=True))
        start += len(ex.hits)
        gallery.queries.append(QueryView(q_card.row, q_card, hits))
    return gallery


def load_gallery(
    run_dir: Path,
    query_ids: Sequence[int] = STUDY_QUERY_IDS,
    k: int | None = None,
    *,
    experiment: str | None = None,
    queries_csv: Path | None = None,
    database_csv: Path | None = None,
    image_root: Path | None = None,
) -> RunGallery:
    """The gallery of one run dir's saved result; the paths point at catalogs that moved since the run."""
    result = RetrievalResult.load(
        run_dir, queries_csv=queries_csv, database_csv=database_csv, image_root=image_root
    )
    if experiment is None:
        experiment = str((result.config or {}).get("experiment_name") or Path(run_dir).name)
    return gallery_of(result, query_ids, k, experiment=experiment, run_dir=Path(run_dir))


# --------------------------------------------------------------------------------------------- thumbnails
class Thumbnails:
    """JPEG data URIs of thumbnails by path, made once (the same card shows up under many experiments)."""

    def __init__(self, max_px: int = THUMB_PX) -> None:
        self.max_px = max_px
        self._uris: dict[Path, tuple[str | None, str | None]] = {}

    def data_uri(self, card: Card) -> tuple[str | None, str | None]:
        """(data URI, None), or (None, the reason there is no image)."""
        if card.image is None:
            return None, card.image_problem or "no image"
        if card.image not in self._uris:
            self._uris[card.image] = self._make(card.image)
        return self._uris[card.image]

    def _make(self, path: Path) -> tuple[str | None, str | None]:
        if not path.is_file():
            return None, "file not found"
        try:
            img = load_image(path, size_hint=self.max_px)
        except ImageError as err:  # a placeholder, never a failed page
            reason = one_line(err, 120).removeprefix(f"{path}: ")
            return None, f"unreadable: {reason}"
        img.thumbnail((self.max_px, self.max_px), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=80)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), None
