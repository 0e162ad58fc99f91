"""Gallery HTML: one page per run and one side-by-side page, self-contained (thumbnails inlined), written out."""

from __future__ import annotations

import html
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from prodmatch.errors import ProdmatchError
from prodmatch.reporting.gallery import Card, QueryView, RunGallery, Thumbnails, load_gallery
from prodmatch.reporting.study import STUDY_QUERY_IDS
from prodmatch.retrieval.examples import Hit
from prodmatch.utils import atomic

log = logging.getLogger("prodmatch.reporting")

_CSS = """
body{font-family:system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin:28px 0 6px}
.note{color:#555;font-size:13px;margin:4px 0}
.row{display:flex;gap:8px;overflow-x:auto;padding-bottom:6px;align-items:stretch}
.card{width:170px;flex:0 0 170px;border:2px solid #ccc;border-radius:6px;padding:4px;margin:0;font-size:11px;
box-sizing:border-box}
.card.query{border-color:#1f77b4;background:#eef5fb}.card.same{border-color:#2ca02c}
.card.other{border-color:#d62728;background:#fff7f7}.card.sku{box-shadow:0 0 0 2px #9467bd}
.card img{width:100%;height:150px;object-fit:contain;display:block;background:#fafafa}
.ph{width:100%;height:150px;background:#ddd;color:#444;display:flex;align-items:center;justify-content:center;
text-align:center;font-size:11px;padding:4px;box-sizing:border-box;word-break:break-word}
.t{font-weight:600;margin:3px 0;word-break:break-word}.m{color:#555}
.b{display:inline-block;border-radius:3px;padding:0 3px;margin:1px 2px 0 0;color:#fff;font-size:10px}
.b.sku{background:#9467bd}.b.same{background:#2ca02c}.b.other{background:#d62728}
.row.wrap{flex-wrap:wrap;overflow-x:visible}
.label{width:150px;flex:0 0 150px;font-size:12px;font-weight:600;word-break:break-word;align-self:center}
.qblock{display:flex;gap:8px;align-items:flex-start}.runs{flex:1;min-width:0;display:flex;flex-direction:column;gap:6px}
"""


def esc(text: object) -> str:
    """HTML-escaped text (quotes too: titles end up in attributes)."""
    return html.escape(str(text), quote=True)


def page_name(experiment: str) -> str:
    """A safe file name for an experiment's page."""
    return re.sub(r"[^\w.-]+", "_", experiment) + ".html"


class _Page:
    """Accumulates one page's HTML and counts the placeholders it shows."""

    def __init__(self, thumbs: Thumbnails) -> None:
        self.thumbs = thumbs
        self.cards = 0
        self.missing = 0

    def card(self, card: Card, hit: Hit | None = None) -> str:
        self.cards += 1
        uri, reason = self.thumbs.data_uri(card)
        if uri is None:
            self.missing += 1
            picture = f'<div class="ph">no image: {esc(reason)}</div>'
        else:
            picture = f'<img src="{uri}" alt="{esc(card.title)}">'
        meta = f"price {esc(card.price or '—')}<br>target {esc(card.target or '—')}<br>dealer {esc(card.dealer or '—')}"
        if hit is None:
            css, head, badges = "card query", f"query · row {card.row}", ""
        else:
            css = "card same" if hit.same_target else "card other"
            css += " sku" if hit.same_sku else ""
            head = f"#{hit.rank} · score {hit.score:.3f} · row {card.row}"
            badges = '<span class="b same">same target</span>' if hit.same_target else ""
            badges += '<span class="b other">other target</span>' if not hit.same_target else ""
            badges += '<span class="b sku">★ same SKU</span>' if hit.same_sku else ""
        sku = f'<div class="m">sku {esc(card.sku)}</div>' if card.sku else ""
        return (
            f'<figure class="{css}">{picture}<figcaption><div class="m">{esc(head)}</div>'
            f'<div class="t">{esc(card.title)}</div><div class="m">{meta}</div>{sku}'
            f"<div>{badges}</div></figcaption></figure>"
        )

    def hits(self, view: QueryView) -> str:
        if not view.hits:
            return '<div class="note">no matches recorded for this query</div>'
        return "".join(self.card(card, hit) for hit, card in view.hits)

    def document(self, title: str, intro: str, body: list[str]) -> str:
        count = (
            f"{self.missing} of {self.cards} images missing (grey placeholders, reason shown)"
            if self.missing
            else f"all {self.cards} images shown"
        )
        return (
            f'<!doctype html><html><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>{intro}"
            f'<p class="note" id="missing-count">{esc(count)}</p>{"".join(body)}</body></html>'
        )


def _ids_note(requested: list[int], shown: list[int]) -> str:
    text = f"queries (query-CSV row positions): {', '.join(map(str, shown)) or 'none'}"
    if requested != shown:
        text += (
            f" (requested {', '.join(map(str, requested))}; clipped to the catalog, de-duplicated, "
            "rows the run did not keep skipped)"
        )
    legend = "green border = same target, red = other target, ★ and purple ring = same SKU"
    return f'<p class="note">{esc(text)}.</p><p class="note">{legend}.</p>'


def summary(g: RunGallery) -> str:
    """``experiment (Acc@k 81.25%)`` at the run's own k."""
    acc = "—" if g.acc is None else f"{100 * g.acc:.2f}%"
    return f"{g.experiment} (Acc@{g.run_k} {acc})"


def render_run_page(gallery: RunGallery, thumbs: Thumbnails | None = None, base: Path | None = None) -> str:
    """One run's page: per query, the query card and its top-k; ``base``: show the run dir relative to it."""
    page = _Page(thumbs or Thumbnails())
    shown = [v.query_id for v in gallery.queries]
    run_dir = os.path.relpath(gallery.run_dir, base) if base is not None else str(gallery.run_dir)
    intro = f'<p class="note">{esc(gallery.description)} · top-{gallery.k} · run {esc(run_dir)}</p>'
    intro += f'<p class="note">{esc(gallery.note)}</p>' if gallery.note else ""
    intro += _ids_note(gallery.requested_ids, shown)
    body = [
        f'<h2>query row {v.query_id}</h2><div class="row wrap">{page.card(v.query)}{page.hits(v)}</div>'
        for v in gallery.queries
    ]
    return page.document(f"Top-{gallery.k} matches: {summary(gallery)}", intro, body)


def render_comparison_page(galleries: Sequence[RunGallery], thumbs: Thumbnails | None = None) -> str:
    """All runs side by side: per query, its card, then one row of top-k per experiment."""
    page = _Page(thumbs or Thumbnails())
    if not galleries:
        return page.document("Top matches across experiments", "<p>no runs</p>", [])
    first = galleries[0]
    links = " · ".join(f'<a href="{esc(page_name(g.experiment))}">{esc(g.experiment)}</a>' for g in galleries)
    intro = _ids_note(first.requested_ids, [v.query_id for v in first.queries])
    intro += f'<p class="note">per-run pages: {links}</p>'
    body = []
    for view in first.queries:
        rows = []
        for g in galleries:
            other = next((v for v in g.queries if v.query_id == view.query_id), None)
            hits = page.hits(other) if other is not None else '<div class="note">query not in this run</div>'
            label = f"{summary(g)} · top-{g.k}"
            rows.append(f'<div class="row"><div class="label">{esc(label)}</div>{hits}</div>')
        body.append(
            f'<h2>query row {view.query_id}</h2><div class="qblock">{page.card(view.query)}'
            f'<div class="runs">{"".join(rows)}</div></div>'
        )
    return page.document("Top matches across experiments", intro, body)


def write_galleries(
    runs: pd.DataFrame,
    out_dir: Path,
    query_ids: Sequence[int] = STUDY_QUERY_IDS,
    k: int | None = None,
    **paths: Path | None,
) -> list[Path]:
    """One page per run of ``runs`` (experiment, run_dir columns) plus ``compare.html``; returns the pages.

    ``k`` None shows each run's own top-k. ``paths`` may override the runs' ``queries_csv``,
    ``database_csv`` and ``image_root``. A run whose gallery cannot be built is skipped with a warning; if
    none can, its error is raised.
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
    thumbs = Thumbnails()
    written = [
        atomic.write_text(out_dir / page_name(g.experiment), render_run_page(g, thumbs, out_dir))
        for g in galleries
    ]
    written.append(atomic.write_text(out_dir / "compare.html", render_comparison_page(galleries, thumbs)))
    log.info("wrote %d gallery pages to %s (%d runs skipped)", len(written), out_dir, len(errors))
    return written
