"""Galleries as functions of a saved result: any k, same-product marks, escaping, placeholders, the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from prodmatch.data.catalog import load_catalog
from prodmatch.errors import ConfigError
from prodmatch.reporting import gallery, pages
from prodmatch.reporting.__main__ import main
from prodmatch.retrieval.result import RetrievalResult
from tests.unit.reporting.saved_runs import run_retrieval, save_run

QUERY_TITLE = "Дорожка <b>Pro</b> & co"
DB_SUFFIX = " <i>x</i>"


def _hit_cards(page: str) -> int:
    return page.count('<figure class="card same') + page.count('<figure class="card other')


@pytest.mark.parametrize("k", [1, 5, 20])
def test_run_page_shows_the_runs_top_k(k: int, tmp_path: Path, make_run) -> None:
    run = make_run(tmp_path / "run", "title_tfidf", k=k)
    g = gallery.load_gallery(run, [0, 3])
    assert g.k == k and g.run_k == k and g.experiment == "title_tfidf"
    assert [v.query_id for v in g.queries] == [0, 3]
    assert all(len(v.hits) == k and [h.rank for h, _ in v.hits] == list(range(1, k + 1)) for v in g.queries)
    page = pages.render_run_page(g)
    assert f"Top-{k} matches: title_tfidf (Acc@{k} " in page and _hit_cards(page) == 2 * k
    result = RetrievalResult.load(run)
    db = result.database.frame
    for hit, card in g.queries[0].hits:  # the page shows the saved ranking, card by card
        assert card.row == result.database.row_ids[hit.db_pos]
        assert card.title == db["title"].iat[hit.db_pos] and card.target == db["target"].iat[hit.db_pos]
        assert f"#{hit.rank} · score {hit.score:.3f} · row {card.row}" in page
    same_sku = sum(bool(h.same_sku) for v in g.queries for h, _ in v.hits)
    assert page.count("★ same SKU</span>") == same_sku
    same_target = sum(h.same_target for v in g.queries for h, _ in v.hits)
    assert page.count('<span class="b same">same target</span>') == same_target


def test_fewer_or_more_than_the_runs_k(tmp_path: Path, make_run) -> None:
    run = make_run(tmp_path / "run", "img", k=5)
    fewer = gallery.load_gallery(run, [1], k=2)
    assert fewer.k == 2 and len(fewer.queries[0].hits) == 2 and fewer.note is None
    more = gallery.load_gallery(run, [1], k=20)
    assert more.k == 5 and len(more.queries[0].hits) == 5
    assert "20 per query requested; the run saved its top-5" in pages.render_run_page(more)


def test_showcase_ids_are_clipped_to_the_catalog(tmp_path: Path, make_run) -> None:
    run = make_run(tmp_path / "run", "img")
    g = gallery.load_gallery(run)  # the study's rows 0, 500, 621, 626
    last = int(RetrievalResult.load(run).queries.row_ids.max())
    assert [v.query_id for v in g.queries] == [0, last]
    assert "clipped to the catalog" in pages.render_run_page(g)


@pytest.fixture
def odd_catalog_run(tiny_data_dir: Path, tmp_path: Path) -> tuple[Path, RetrievalResult]:
    """A run on a copy of the tiny catalog with HTML in titles, then one query image removed, one hit corrupt."""
    data = tmp_path / "data"
    shutil.copytree(tiny_data_dir / "synthetic", data)
    for name, edit in (("company_data.csv", "query"), ("comparable_data.csv", "db")):
        frame = pd.read_csv(data / name, dtype=str, keep_default_na=False)
        if edit == "query":
            frame.loc[0, "title"] = QUERY_TITLE
        else:
            frame["title"] = frame["title"] + DB_SUFFIX
        frame.to_csv(data / name, index=False)
    queries = load_catalog(data / "company_data.csv", data)
    database = load_catalog(data / "comparable_data.csv", data)
    result = run_retrieval(queries, database, 10)
    run = save_run(tmp_path / "run", result, "img")
    queries.image_paths()[0].unlink()
    database.image_paths()[int(result.ids[0, 0])].write_bytes(b"not an image")
    return run, result


def test_titles_are_escaped_and_missing_images_get_a_placeholder(odd_catalog_run) -> None:
    run, result = odd_catalog_run
    page = pages.render_run_page(gallery.load_gallery(run, [0]))
    assert QUERY_TITLE not in page and pages.esc(QUERY_TITLE) in page
    assert "<i>" not in page and page.count("&lt;i&gt;x&lt;/i&gt;") >= 10
    assert "no image: file not found" in page and "no image: unreadable" in page
    assert "2 of 11 images missing" in page and page.count('<img src="data:image/jpeg;base64,') == 9


def test_moved_catalogs_are_found_through_the_paths_given(odd_catalog_run, tmp_path: Path) -> None:
    run, _ = odd_catalog_run
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "data", moved)
    with pytest.raises(ConfigError, match="is not there; pass its new location") as err:
        gallery.load_gallery(run, [0])
    assert "\n" not in str(err.value)
    g = gallery.load_gallery(
        run, [0], queries_csv=moved / "company_data.csv", database_csv=moved / "comparable_data.csv",
        image_root=moved,
    )  # fmt: skip
    assert g.queries[0].query.image.is_relative_to(moved) and g.queries[0].hits[0][1].image.is_relative_to(
        moved
    )


def test_galleries_side_by_side_at_mixed_k(tmp_path: Path, make_run, monkeypatch) -> None:
    make_run(tmp_path / "runs" / "a", "img", k=5)
    make_run(tmp_path / "runs" / "b", "title", k=20)
    monkeypatch.chdir(tmp_path)
    assert main(["gallery", "--runs", "runs", "--queries", "3", "3", "1", "--out", "g"]) == 0
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["compare.html", "img.html", "title.html"]
    compare = (tmp_path / "g" / "compare.html").read_text(encoding="utf-8")
    assert compare.count("<h2>query row ") == 2 and compare.index("query row 3") < compare.index(
        "query row 1"
    )
    assert "img (Acc@5 " in compare and "title (Acc@20 " in compare and 'href="title.html"' in compare
    assert _hit_cards(compare) == 2 * (5 + 20)
    assert (
        main(["gallery", "--runs", "runs", "--queries", "0", "--out", "h", "-k", "1", "--experiments", "img"])
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "h").iterdir()) == ["compare.html", "img.html"]
    assert _hit_cards((tmp_path / "h" / "img.html").read_text(encoding="utf-8")) == 1
    assert main(["gallery", "--runs", "runs", "-k", "0"]) == 2
