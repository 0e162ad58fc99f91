"""HTML galleries of a run's top-10 for chosen queries, per run and side by side across experiments.

Each run dir's ``matches.csv`` gives the ranked database rows per query; the two catalog CSVs named in the
run's Hydra config give the cards (title, price, target, dealer, sku, image). Images are embedded as small
base64 JPEG thumbnails, so a page is one self-contained file.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageOps

from prodmatch.errors import CatalogError, ConfigError, ProdmatchError
from prodmatch.reporting.results import config_value, load_run_config, runtime_cwd
from prodmatch.reporting.study import STUDY_QUERY_IDS
from prodmatch.retrieval.pipeline import MATCH_COLUMNS

log = logging.getLogger("prodmatch.reporting")

MATCHES_FILE = "matches.csv"
CARD_COLUMNS = ("title", "price", "target", "dealer", "img_ref", "sku")
THUMB_PX = 160
GALLERY_TABLE_COLUMNS = (
    "query_id", "rank", "title", "target", "score", "same_target", "same_sku", "image_path", "image",
)  # fmt: skip


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


@dataclass(frozen=True)
class Hit:
    """One retrieved database card at a rank."""

    rank: int
    score: float
    card: Card
    same_target: bool
    same_sku: bool | None  # None when the query or the hit has no sku


@dataclass
class QueryView:
    query_id: int
    query: Card
    hits: list[Hit]


@dataclass
class RunGallery:
    """Everything a page needs about one run."""

    experiment: str
    run_dir: Path
    acc10: float | None
    requested_ids: list[int]
    queries: list[QueryView] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- query ids
def clip_query_ids(ids: Sequence[int], n_queries: int) -> list[int]:
    """Clip ids into 0..n_queries-1 and drop repeats, keeping the first-seen order."""
    if n_queries <= 0:
        return []
    clipped = np.clip(np.asarray(list(ids), dtype=np.int64), 0, n_queries - 1)
    _, first = np.unique(clipped, return_index=True)
    return clipped[np.sort(first)].tolist()


# --------------------------------------------------------------------------------------------- data paths
def _locate(value: str, bases: Sequence[Path]) -> Path:
    """A config path: absolute as is, relative to the first base where it exists (else the last base)."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    for base in bases:
        if (base / path).exists():
            return base / path
    return bases[-1] / path


def _data_paths(
    run_dir: Path, queries_csv: Path | None, database_csv: Path | None, image_root: Path | None
) -> tuple[Path, Path, Path]:
    """The run's queries CSV, database CSV and image root; explicit arguments win over its config."""
    cfg = load_run_config(run_dir)
    # Hydra keeps the launch directory as cwd, so relative config paths are relative to it.
    bases = [b for b in (runtime_cwd(run_dir), Path.cwd()) if b is not None]

    def pick(given: Path | None, key: str, required: bool) -> Path | None:
        if given is not None:
            return Path(given)
        value = config_value(cfg, key, run_dir)
        if value in (None, ""):
            if required:
                raise ConfigError(f"{run_dir}: the run's config has no {key}; pass --{key.split('.')[-1]}")
            return None
        return _locate(str(value), bases)

    queries = pick(queries_csv, "data.queries_csv", True)
    database = pick(database_csv, "data.database_csv", True)
    root = pick(image_root, "data.image_root", False)
    assert queries is not None and database is not None  # required=True above
    # img_ref paths ("images/<target>/<file>") are relative to the data folder when no root is configured
    return queries, database, root if root is not None else queries.parent


def _read_catalog_csv(path: Path) -> dict[str, np.ndarray]:
    """The card columns of a catalog CSV as object arrays of str ("" where absent)."""
    if not path.is_file():
        raise CatalogError(
            f"{path}: not found; restore the data the run used or pass --queries-csv/--database-csv/--image-root"
        )
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise CatalogError(f"{path}: cannot be read as CSV ({exc}); fix the file") from exc
    n = len(frame)
    return {
        c: frame[c].to_numpy(dtype=object) if c in frame.columns else np.full(n, "", dtype=object)
        for c in CARD_COLUMNS
    }


def _read_matches(run_dir: Path) -> pd.DataFrame:
    path = run_dir / MATCHES_FILE
    if not path.is_file():
        raise ProdmatchError(f"{path}: not found; the run did not finish writing its artifacts (rerun it)")
    frame = pd.read_csv(path, keep_default_na=False)
    missing = [c for c in ("query_idx", "rank", "db_idx", "score") if c not in frame.columns]
    if missing:
        raise ProdmatchError(
            f"{path}: missing columns {missing}; matches.csv needs {', '.join(MATCH_COLUMNS)}"
        )
    return frame


# --------------------------------------------------------------------------------------------- cards
def _image_path(root: Path, ref: str) -> tuple[Path | None, str | None]:
    """A path inside ``root`` for an img_ref, or (None, reason); refs that leave the root are refused."""
    if not ref:
        return None, "no img_ref"
    path = Path(ref)
    # the same rule the catalog applies: a CSV must not make the page embed files from elsewhere
    if path.is_absolute() or not (root / path).resolve().is_relative_to(root.resolve()):
        return None, "unsafe image path"
    return root / path, None


def _cards(cat: dict[str, np.ndarray], rows: np.ndarray, root: Path, source: str) -> list[Card]:
    """Cards for CSV row positions ``rows`` (vectorised gather; rows outside the CSV get a stub card)."""
    n = len(cat["title"])
    valid = (rows >= 0) & (rows < n)
    safe = np.where(valid, rows, 0)
    cols = {c: np.where(valid, cat[c][safe] if n else "", "") for c in CARD_COLUMNS}
    cards = []
    for i, row in enumerate(rows.tolist()):
        if not valid[i]:
            stub = f"(row {row} is not in {source})"
            cards.append(Card(row, stub, "", "", "", None, None, f"row {row} not in {source}"))
            continue
        image, problem = _image_path(root, str(cols["img_ref"][i]))
        sku = str(cols["sku"][i]) or None
        cards.append(
            Card(row, *(str(cols[c][i]) for c in ("title", "price", "target", "dealer")), sku, image, problem)
        )
    return cards


def _acc10(run_dir: Path) -> float | None:
    try:
        value = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")).get("retrieval/acc@10")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def load_gallery(
    run_dir: Path,
    query_ids: Sequence[int] = STUDY_QUERY_IDS,
    k: int = 10,
    *,
    experiment: str | None = None,
    queries_csv: Path | None = None,
    database_csv: Path | None = None,
    image_root: Path | None = None,
) -> RunGallery:
    """The chosen queries of one run with their top-``k`` cards (ids are query-CSV row positions)."""
    run_dir = Path(run_dir)
    matches = _read_matches(run_dir)
    q_csv, db_csv, root = _data_paths(run_dir, queries_csv, database_csv, image_root)
    queries, database = _read_catalog_csv(q_csv), _read_catalog_csv(db_csv)
    if experiment is None:
        experiment = str(
            config_value(load_run_config(run_dir), "experiment_name", run_dir, default=run_dir.name)
        )
    ids = clip_query_ids(query_ids, len(queries["title"]))
    gallery = RunGallery(experiment, run_dir, _acc10(run_dir), [int(i) for i in query_ids])

    q_idx = matches["query_idx"].to_numpy(dtype=np.int64)
    rank = matches["rank"].to_numpy(dtype=np.int64)
    chosen = matches.loc[np.isin(q_idx, ids) & (rank <= k)].sort_values(["query_idx", "rank"], kind="stable")
    db_rows = chosen["db_idx"].to_numpy(dtype=np.int64)
    db_cards = _cards(database, db_rows, root, db_csv.name)
    q_cards = _cards(queries, np.asarray(ids, dtype=np.int64), root, q_csv.name)
    owners = chosen["query_idx"].to_numpy(dtype=np.int64)
    ranks = chosen["rank"].to_numpy(dtype=np.int64)
    scores = chosen["score"].to_numpy(dtype=np.float64)
    for qid, q_card in zip(ids, q_cards, strict=True):
        sel = np.flatnonzero(owners == qid)
        hits = [_hit(q_card, db_cards[j], int(ranks[j]), float(scores[j])) for j in sel]
        gallery.queries.append(QueryView(qid, q_card, hits))
    return gallery


def _hit(query: Card, card: Card, rank: int, score: float) -> Hit:
    same_sku = None if query.sku is None or card.sku is None else query.sku == card.sku
    return Hit(rank, score, card, bool(query.target) and query.target == card.target, same_sku)


# --------------------------------------------------------------------------------------------- thumbnails
def _open_image(path: Path, size_hint: int) -> Image.Image:
    """RGB image via the package's robust loader when available, else PIL with the usual conversions."""
    try:
        from prodmatch.data.images import load_image
    except ImportError:
        load_image = None
    if load_image is not None:
        return load_image(path, size_hint=size_hint)
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            canvas = Image.new("RGB", rgba.size, "white")  # transparent pixels -> white, not black
            canvas.paste(rgba, mask=rgba.getchannel("A"))
            return canvas
        return im.convert("RGB")


class Thumbnails:
    """Thumbnails by path, loaded once (the same database card shows up under many experiments)."""

    def __init__(self, max_px: int = THUMB_PX) -> None:
        self.max_px = max_px
        self._cache: dict[Path, tuple[Image.Image | None, str | None]] = {}
        self._uris: dict[Path, str] = {}

    def get(self, card: Card) -> tuple[Image.Image | None, str | None]:
        """(thumbnail, None) or (None, reason the image is missing)."""
        if card.image is None:
            return None, card.image_problem or "no image"
        if card.image not in self._cache:
            self._cache[card.image] = self._load(card.image)
        return self._cache[card.image]

    def _load(self, path: Path) -> tuple[Image.Image | None, str | None]:
        if not path.is_file():
            return None, "file not found"
        try:
            img = _open_image(path, self.max_px)
            img.thumbnail((self.max_px, self.max_px))
            return img.convert("RGB"), None
        except Exception as exc:  # any decoder failure makes a placeholder, never a failed page
            return None, f"unreadable: {str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__}"

    def data_uri(self, card: Card) -> str | None:
        img, _ = self.get(card)
        if img is None or card.image is None:
            return None
        if card.image not in self._uris:
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=80)
            self._uris[card.image] = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode(
                "ascii"
            )
        return self._uris[card.image]

    def image_or_placeholder(self, card: Card) -> Image.Image:
        """The thumbnail, or a grey tile with the reason written on it."""
        img, reason = self.get(card)
        if img is not None:
            return img
        tile = Image.new("RGB", (self.max_px, self.max_px), (200, 200, 200))
        draw = ImageDraw.Draw(tile)
        draw.text((6, 6), "no image", fill=(60, 60, 60))
        for i, chunk in enumerate(_wrap(reason or "", 24)[:6]):
            draw.text((6, 24 + 14 * i), chunk, fill=(60, 60, 60))
        return tile


def _wrap(text: str, width: int) -> list[str]:
    return [text[i : i + width] for i in range(0, len(text), width)]


# --------------------------------------------------------------------------------------------- HTML
_CSS = """
body{font-family:system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}h3{font-size:14px;margin:12px 0 4px}
.note{color:#555;font-size:13px}
.row{display:flex;gap:8px;overflow-x:auto;padding-bottom:6px;align-items:flex-start}
.card{width:170px;flex:0 0 170px;border:2px solid #ccc;border-radius:6px;padding:4px;margin:0;font-size:11px}
.card.query{border-color:#1f77b4;background:#eef5fb}.card.same{border-color:#2ca02c}.card.other{border-color:#d62728}
.card img{width:160px;height:160px;object-fit:contain;display:block;background:#fafafa}
.ph{width:160px;height:160px;background:#ccc;color:#444;display:flex;align-items:center;justify-content:center;
text-align:center;font-size:11px;padding:4px;box-sizing:border-box;word-break:break-word}
.t{font-weight:600;margin:3px 0;word-break:break-word}.m{color:#555}
.b{display:inline-block;border-radius:3px;padding:0 3px;margin:1px 2px 0 0;color:#fff;font-size:10px}
.b.sku{background:#9467bd}.b.same{background:#2ca02c}.b.other{background:#d62728}
.label{width:150px;flex:0 0 150px;font-size:12px;font-weight:600;word-break:break-word}
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


class _Page:
    """Accumulates one page's HTML and counts the placeholders it shows."""

    def __init__(self, thumbs: Thumbnails) -> None:
        self.thumbs = thumbs
        self.cards = 0
        self.missing = 0

    def card(self, card: Card, hit: Hit | None = None) -> str:
        self.cards += 1
        uri = self.thumbs.data_uri(card)
        if uri is None:
            self.missing += 1
            _, reason = self.thumbs.get(card)
            picture = f'<div class="ph">no image: {_esc(reason)}</div>'
        else:
            picture = f'<img src="{uri}" alt="{_esc(card.title)}">'
        meta = [f"price {_esc(card.price or '—')}", f"target {_esc(card.target or '—')}"]
        meta.append(f"dealer {_esc(card.dealer or '—')}")
        if hit is None:
            css, head = "card query", f"query #{card.row}"
        else:
            css = "card same" if hit.same_target else "card other"
            head = f"#{hit.rank} · score {hit.score:.3f} · row {card.row}"
        badges = ""
        if hit is not None:
            badges += '<span class="b same">same target</span>' if hit.same_target else ""
            badges += '<span class="b other">other target</span>' if not hit.same_target else ""
            badges += '<span class="b sku">★ same SKU</span>' if hit.same_sku else ""
        sku = f'<div class="m">sku {_esc(card.sku)}</div>' if card.sku else ""
        return (
            f'<figure class="{css}">{picture}<figcaption><div class="m">{_esc(head)}</div>'
            f'<div class="t">{_esc(card.title)}</div><div class="m">{"<br>".join(meta)}</div>{sku}'
            f"<div>{badges}</div></figcaption></figure>"
        )

    def hits(self, view: QueryView) -> str:
        if not view.hits:
            return (
                '<div class="note">no matches recorded for this query (its row may have been dropped)</div>'
            )
        return "".join(self.card(h.card, h) for h in view.hits)

    def document(self, title: str, intro: str, body: list[str]) -> str:
        count = (
            f"{self.missing} of {self.cards} images missing (grey placeholders, reason shown)"
            if self.missing
            else f"all {self.cards} images shown"
        )
        return (
            f'<!doctype html><html><head><meta charset="utf-8"><title>{_esc(title)}</title>'
            f"<style>{_CSS}</style></head><body><h1>{_esc(title)}</h1>{intro}"
            f'<p class="note" id="missing-count">{_esc(count)}</p>{"".join(body)}</body></html>'
        )


def _ids_note(requested: list[int], shown: list[int]) -> str:
    text = f"queries (query-CSV row positions): {', '.join(map(str, shown)) or 'none'}"
    if requested != shown:
        text += f" (requested {', '.join(map(str, requested))}; clipped to the catalog and de-duplicated)"
    return f'<p class="note">{_esc(text)}; green = same target, red = other target, ★ = same SKU.</p>'


def _summary(g: RunGallery) -> str:
    acc = "—" if g.acc10 is None else f"{100 * g.acc10:.2f}%"
    return f"{g.experiment} (Acc@10 {acc})"


def render_run_page(gallery: RunGallery, thumbs: Thumbnails | None = None) -> str:
    """One run's page: per query, the query card and its top-k."""
    page = _Page(thumbs or Thumbnails())
    shown = [v.query_id for v in gallery.queries]
    intro = f'<p class="note">run {_esc(gallery.run_dir)}</p>' + _ids_note(gallery.requested_ids, shown)
    body = [
        f'<h2>query {v.query_id}</h2><div class="row">{page.card(v.query)}{page.hits(v)}</div>'
        for v in gallery.queries
    ]
    return page.document(f"Top matches: {_summary(gallery)}", intro, body)


def render_comparison_page(galleries: Sequence[RunGallery], thumbs: Thumbnails | None = None) -> str:
    """All runs side by side: per query, its card, then one row of top-k per experiment."""
    page = _Page(thumbs or Thumbnails())
    if not galleries:
        return page.document("Top matches across experiments", "<p>no runs</p>", [])
    first = galleries[0]
    shown = [v.query_id for v in first.queries]
    links = " · ".join(
        f'<a href="{_esc(_page_name(g.experiment))}">{_esc(g.experiment)}</a>' for g in galleries
    )
    intro = _ids_note(first.requested_ids, shown) + f'<p class="note">per-run pages: {links}</p>'
    body = []
    for pos, qid in enumerate(shown):
        rows = [f'<h2>query {qid}</h2><div class="row">{page.card(first.queries[pos].query)}</div>']
        for g in galleries:
            view = next((v for v in g.queries if v.query_id == qid), None)
            hits = page.hits(view) if view is not None else '<div class="note">query not in this run</div>'
            rows.append(f'<div class="row"><div class="label">{_esc(_summary(g))}</div>{hits}</div>')
        body.append("".join(rows))
    return page.document("Top matches across experiments", intro, body)


def _page_name(experiment: str) -> str:
    return re.sub(r"[^\w.-]+", "_", experiment) + ".html"


# --------------------------------------------------------------------------------------------- outputs
def write_galleries(
    runs: pd.DataFrame,
    out_dir: Path,
    query_ids: Sequence[int] = STUDY_QUERY_IDS,
    k: int = 10,
    **paths: Path | None,
) -> list[Path]:
    """One page per run of ``runs`` (a collect_runs() frame) plus ``compare.html``; returns the pages.

    ``paths`` may override the runs' ``queries_csv``, ``database_csv`` and ``image_root``. A run whose
    gallery cannot be built is skipped with a warning; if none can, its error is raised.
    """
    out_dir = Path(out_dir)
    galleries: list[RunGallery] = []
    errors: list[ProdmatchError] = []
    for name, run_dir in zip(runs["experiment"].tolist(), runs["run_dir"].tolist(), strict=True):
        try:
            galleries.append(load_gallery(Path(run_dir), query_ids, k, experiment=str(name), **paths))
        except ProdmatchError as exc:
            errors.append(exc)
            log.warning("no gallery for %s (%s): %s", name, run_dir, exc)
    if not galleries:
        raise errors[0] if errors else ProdmatchError("no runs to build galleries from; pass --runs")
    out_dir.mkdir(parents=True, exist_ok=True)
    thumbs = Thumbnails()
    written = []
    for g in galleries:
        path = out_dir / _page_name(g.experiment)
        path.write_text(render_run_page(g, thumbs), encoding="utf-8")
        written.append(path)
    compare = out_dir / "compare.html"
    compare.write_text(render_comparison_page(galleries, thumbs), encoding="utf-8")
    written.append(compare)
    log.info("wrote %d gallery pages to %s (%d runs skipped)", len(written), out_dir, len(errors))
    return written


def gallery_table_rows(
    run_dir: Path,
    query_ids: Sequence[int] = STUDY_QUERY_IDS,
    k: int = 10,
    max_px: int = THUMB_PX,
    **paths: Any,
) -> list[list[Any]]:
    """Rows in GALLERY_TABLE_COLUMNS order (rank 0 = the query itself), e.g. for a wandb.Table.

    ``image`` is a PIL thumbnail (a grey tile with the reason when the image is missing); ``score`` and
    ``same_*`` are None on the query's own row and ``same_sku`` where either card lacks a sku.
    """
    gallery = load_gallery(Path(run_dir), query_ids, k, **paths)
    thumbs = Thumbnails(max_px)
    rows: list[list[Any]] = []
    for view in gallery.queries:
        rows.append(_table_row(view.query_id, view.query, None, thumbs))
        rows += [_table_row(view.query_id, h.card, h, thumbs) for h in view.hits]
    return rows


def _table_row(query_id: int, card: Card, hit: Hit | None, thumbs: Thumbnails) -> list[Any]:
    """One gallery_table_rows() row; ``hit`` None for the query card itself."""
    path = "" if card.image is None else str(card.image)
    image = thumbs.image_or_placeholder(card)
    if hit is None:
        return [query_id, 0, card.title, card.target, None, None, None, path, image]
    return [
        query_id,
        hit.rank,
        card.title,
        card.target,
        hit.score,
        hit.same_target,
        hit.same_sku,
        path,
        image,
    ]
