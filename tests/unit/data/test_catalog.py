"""Catalog CSV reading, validation report, strict mode, text views and fingerprints."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from prodmatch.data import catalog as catalog_module
from prodmatch.data.catalog import (
    IMAGE_VIEW,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    TEXT_VIEWS,
    Catalog,
    csv_identity,
    load_catalog,
    text_view,
)
from prodmatch.errors import CatalogError, ConfigError
from prodmatch.utils.hashing import file_hash
from tests.helpers.run import REPO_ROOT

SAMPLE = REPO_ROOT.parent / "shared" / "data" / "sportdoma_sample" / "company_data.csv"


def _row(i: int, **overrides) -> dict:
    row = {
        "title": f"Беговая дорожка {i}",
        "price": str(1000 + i),
        "cat_1": "Беговые дорожки",
        "cat_2": "Электрические",
        "cat_3": f"Brand{i}",
        "caracteristics": f"Скорость: {i} км/ч",
        "img_ref": f"images/t{i % 2}/{i}.jpg",
        "target": f"target_{i % 2}",
        "dealer": "shop",
    }
    row.update(overrides)
    return row


def _write(tmp_path: Path, rows: list[dict], name: str = "cards.csv", images: bool = True) -> Path:
    """Write rows as a catalog CSV in tmp_path and (optionally) a tiny JPEG for each relative img_ref."""
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    if images:
        for row in rows:
            ref = str(row.get("img_ref", ""))
            if ref and not ref.startswith(("/", "..")) and ".." not in ref:
                target = tmp_path / ref
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (8, 8), (i := len(ref) % 255, i, i)).save(target, format="JPEG")
    return path


def _assert_arithmetic(catalog: Catalog) -> None:
    report = catalog.report
    assert report.rows_in == report.rows_kept + sum(report.dropped.values())
    assert report.rows_kept == len(catalog)


# --------------------------------------------------------------------------- reading and schema


def test_clean_catalog_loads(tmp_path: Path, caplog) -> None:
    path = _write(tmp_path, [_row(i) for i in range(6)])
    with caplog.at_level(logging.INFO, logger="prodmatch.data"):
        cat = load_catalog(path)
    assert len(cat) == 6
    assert cat.name == "cards"
    assert cat.image_root == tmp_path.resolve()
    assert list(cat.frame.columns) == [*REQUIRED_COLUMNS, "row_id"]
    assert isinstance(cat.frame.index, pd.RangeIndex)
    assert cat.frame["price"].dtype == np.float64
    assert cat.row_ids.dtype == np.int64 and cat.row_ids.tolist() == list(range(6))
    assert cat.targets.dtype == object and cat.targets[:2].tolist() == ["target_0", "target_1"]
    assert cat.dealers.tolist() == ["shop"] * 6
    assert cat.skus is None
    assert cat.image_paths()[3] == tmp_path.resolve() / "images" / "t1" / "3.jpg"
    assert all(p.is_file() for p in cat.image_paths())
    assert cat.report.dropped == {}
    records = [r for r in caplog.records if r.name == "prodmatch.data"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.INFO, "cards.csv: 6 rows in, 6 kept, 0 dropped")
    ]


def test_sku_column_is_kept(tmp_path: Path) -> None:
    rows = [_row(0, sku="A-1"), _row(1, sku=""), _row(2, sku="NA")]
    cat = load_catalog(_write(tmp_path, rows))
    assert list(cat.frame.columns) == [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, "row_id"]
    assert cat.skus.tolist() == ["A-1", "", "NA"]  # "NA" is text, not missing


def test_bom_and_header_whitespace(tmp_path: Path) -> None:
    path = _write(tmp_path, [_row(0)])
    text = path.read_text(encoding="utf-8").replace("title,", " title ,", 1)
    path.write_bytes(text.encode("utf-8-sig"))
    assert load_catalog(path).texts("title") == ["Беговая дорожка 0"]


def test_missing_column_is_one_line_error(tmp_path: Path) -> None:
    rows = [{k: v for k, v in _row(0).items() if k != "title"}]
    path = _write(tmp_path, rows, name="comparable_data.csv")
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("comparable_data.csv: missing required column 'title'; a catalog CSV needs: ")
    assert ", ".join(REQUIRED_COLUMNS) in message


def test_missing_columns_plural(tmp_path: Path) -> None:
    rows = [{k: v for k, v in _row(0).items() if k not in ("title", "price")}]
    with pytest.raises(CatalogError, match=r"missing required columns 'title', 'price'") as info:
        load_catalog(_write(tmp_path, rows), require_images=False)
    assert "separated by" not in str(info.value)  # a comma CSV gets no delimiter hint


def _delimited(rows: list[dict], sep: str) -> str:
    header = sep.join(REQUIRED_COLUMNS)
    return "\n".join([header, *(sep.join(str(row[c]) for c in REQUIRED_COLUMNS) for row in rows)]) + "\n"


@pytest.mark.parametrize(
    ("sep", "commas_in_rows", "named"),
    [
        (";", 0, "semicolons (;)"),  # header and rows parse into one column
        (";", 1, "semicolons (;)"),  # one comma per row: pandas takes it as an index, one column left
        (";", 2, "semicolons (;)"),  # rows parse into more columns than the header: a parser error
        ("\t", 2, "tabs"),
        ("|", 0, "pipes (|)"),
    ],
)
def test_a_csv_with_another_delimiter_names_it_and_the_fix(
    tmp_path: Path, sep: str, commas_in_rows: int, named: str
) -> None:
    tail = ", ".join(["a"] * (commas_in_rows + 1))
    rows = [_row(i, caracteristics=f"Скорость: {tail}") for i in range(3)]
    path = tmp_path / "export.csv"
    path.write_text(_delimited(rows, sep), encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        load_catalog(path, require_images=False)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"export.csv: the file is separated by {named}, not commas; ")
    assert "comma-separated" in message and f"sep={sep!r}" in message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "catalog CSV not found"),
        (b"", "the file is empty"),
        (",".join(REQUIRED_COLUMNS).encode() + b"\n", "header but no data rows"),
        (",".join(REQUIRED_COLUMNS).encode() + b'\n"a,b\n', "cannot be parsed as CSV"),
        (",".join(REQUIRED_COLUMNS).encode() + b"\n\xff\xfe\xfa,1,a,b,c,d,e,f,g\n", "not UTF-8"),
    ],
)
def test_unreadable_csv_errors(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "broken.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CatalogError, match=message) as info:
        load_catalog(path, require_images=False)
    assert str(info.value).startswith("broken.csv: ")
    assert "\n" not in str(info.value)


def test_bad_check_images_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^data.check_images='full' is not valid; .*exists, decode, none"):
        load_catalog(_write(tmp_path, [_row(0)]), check_images="full")


def test_missing_image_root_names_the_config_key_and_the_fix(tmp_path: Path) -> None:
    path = _write(tmp_path, [_row(0)], images=False)
    (tmp_path / "a_file").write_text("x")
    for root, what in (
        (tmp_path / "nowhere", "does not exist"),
        (tmp_path / "a_file", "is a file, not a folder"),
    ):
        with pytest.raises(CatalogError) as info:
            load_catalog(path, image_root=root)
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith(f"cards.csv: the image root {root.resolve()} {what}; ")
        assert "set data.image_root=<folder the img_ref paths are relative to>" in message


def test_price_coerced_and_noted_not_dropped(tmp_path: Path) -> None:
    rows = [_row(0, price="1 299"), _row(1, price=""), _row(2, price="по запросу"), _row(3, price="15.5")]
    cat = load_catalog(_write(tmp_path, rows))
    assert len(cat) == 4
    price = cat.frame["price"].to_numpy()
    assert price[0] == 1299 and np.isnan(price[1]) and np.isnan(price[2]) and price[3] == 15.5
    assert cat.report.dropped == {}
    assert cat.report.notes == {"price_missing": 1, "price_not_numeric": 1}
    assert cat.report.summary().endswith("; notes: price_missing: 1, price_not_numeric: 1")


# --------------------------------------------------------------------------- validation drops


def _load_with_drops(tmp_path: Path, rows: list[dict], caplog, **kwargs) -> Catalog:
    path = _write(tmp_path, rows)
    with caplog.at_level(logging.INFO, logger="prodmatch.data"):
        cat = load_catalog(path, **kwargs)
    _assert_arithmetic(cat)
    warnings = [r for r in caplog.records if r.name == "prodmatch.data" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].getMessage() == cat.report.summary()
    return cat


def test_empty_title_and_target(tmp_path: Path, caplog) -> None:
    rows = [_row(0), _row(1, title=""), _row(2, title=" \u00a0\n "), _row(3, target=""), _row(4)]
    cat = _load_with_drops(tmp_path, rows, caplog)
    assert cat.row_ids.tolist() == [0, 4]
    assert cat.report.dropped == {"empty_title": 2, "empty_target": 1}
    assert cat.report.examples == {"empty_title": [1, 2], "empty_target": [3]}
    assert cat.report.summary() == (
        "cards.csv: 5 rows in, 2 kept, 3 dropped (empty_title: 2 [rows 1, 2]; empty_target: 1 [rows 3])"
    )


def test_duplicates_keep_first(tmp_path: Path, caplog) -> None:
    rows = [_row(0), _row(1), _row(0), _row(1, price="999"), _row(0)]
    cat = _load_with_drops(tmp_path, rows, caplog)
    assert cat.row_ids.tolist() == [0, 1, 3]  # a different price is a different row
    assert cat.report.dropped == {"duplicate": 2}
    assert cat.report.examples["duplicate"] == [2, 4]


def test_missing_image(tmp_path: Path, caplog) -> None:
    rows = [_row(i) for i in range(4)]
    path = _write(tmp_path, rows)
    (tmp_path / rows[2]["img_ref"]).unlink()
    with caplog.at_level(logging.INFO, logger="prodmatch.data"):
        cat = load_catalog(path)
    _assert_arithmetic(cat)
    assert cat.report.dropped == {"missing_image": 1}
    assert cat.row_ids.tolist() == [0, 1, 3]
    assert "missing_image: 1 [rows 2]" in caplog.text


def test_unreadable_image_needs_decode_check(tmp_path: Path, caplog) -> None:
    rows = [_row(i) for i in range(40)]  # enough rows for the threaded decode check
    path = _write(tmp_path, rows)
    for i in (1, 33):
        (tmp_path / rows[i]["img_ref"]).write_bytes(b"not a jpeg at all")
    assert len(load_catalog(path)) == 40  # "exists" only stats the file
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="prodmatch.data"):
        cat = load_catalog(path, check_images="decode")
    _assert_arithmetic(cat)
    assert caplog.records[-1].levelno == logging.WARNING
    assert caplog.records[-1].getMessage() == (
        "cards.csv: 40 rows in, 38 kept, 2 dropped (unreadable_image: 2 [rows 1, 33])"
    )
    assert cat.report.dropped == {"unreadable_image": 2}
    assert cat.report.examples == {"unreadable_image": [1, 33]}


def test_unsafe_and_empty_image_refs(tmp_path: Path, caplog) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}_outside.jpg"
    Image.new("RGB", (4, 4)).save(outside)  # exists, so only the path rule can drop it
    rows = [
        _row(0),
        _row(1, img_ref=f"../{outside.name}"),
        _row(2, img_ref=str(outside)),
        _row(3, img_ref=""),
        _row(4),
    ]
    cat = _load_with_drops(tmp_path, rows, caplog)
    assert cat.row_ids.tolist() == [0, 4]
    assert cat.report.dropped == {"empty_img_ref": 1, "unsafe_image_path": 2}
    assert cat.report.examples["unsafe_image_path"] == [1, 2]
    outside.unlink()


def test_an_image_symlinked_out_of_the_root_is_dropped_and_counted(tmp_path: Path, caplog) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}_outside.jpg"
    Image.new("RGB", (4, 4)).save(outside)
    rows = [_row(0), _row(1), _row(2)]
    _write(tmp_path, rows)
    link = tmp_path / rows[1]["img_ref"]
    link.unlink()
    link.symlink_to(outside)  # the path text stays inside the root, the file it names does not
    cat = _load_with_drops(tmp_path, rows, caplog)
    assert cat.row_ids.tolist() == [0, 2]
    assert cat.report.dropped == {"unsafe_image_path": 1}
    outside.unlink()


def test_strict_mode_raises_naming_reason_rows_and_fix(tmp_path: Path) -> None:
    rows = [_row(0), _row(1, title=""), _row(2), _row(3, img_ref="../x.jpg")]
    path = _write(tmp_path, rows)
    with pytest.raises(CatalogError) as info:
        load_catalog(path, strict=True)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("cards.csv: 2 of 4 rows fail validation")
    assert "empty_title: 1 [rows 1]" in message and "unsafe_image_path: 1 [rows 3]" in message
    assert "fill in the title" in message and "strict=false" in message
    assert len(load_catalog(path, strict=False)) == 2


def test_strict_mode_passes_clean_catalog(tmp_path: Path) -> None:
    assert len(load_catalog(_write(tmp_path, [_row(i) for i in range(3)]), strict=True)) == 3


def test_all_rows_dropped_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, [_row(i) for i in range(3)], images=False)
    with pytest.raises(CatalogError, match=r"all 3 rows were dropped \(missing_image: 3"):
        load_catalog(path)


def test_require_images_false_ignores_images(tmp_path: Path, caplog) -> None:
    rows = [_row(0), _row(1, img_ref=""), _row(2, img_ref="../escape.jpg"), _row(3, img_ref="/abs.jpg")]
    path = _write(tmp_path, rows, images=False)
    with caplog.at_level(logging.INFO, logger="prodmatch.data"):
        cat = load_catalog(path, image_root=tmp_path / "does_not_exist", require_images=False, strict=True)
    assert len(cat) == 4 and cat.report.dropped == {}
    assert cat.report.notes == {"img_ref_empty": 1}
    assert "cards.csv: 4 rows in, 4 kept, 0 dropped" in caplog.text
    with pytest.raises(CatalogError, match="empty or unsafe img_ref"):
        cat.image_paths()


def test_check_images_none_keeps_path_safety(tmp_path: Path) -> None:
    rows = [_row(0), _row(1, img_ref="../x.jpg")]
    cat = load_catalog(_write(tmp_path, rows, images=False), check_images="none")
    assert cat.row_ids.tolist() == [0]
    assert cat.report.dropped == {"unsafe_image_path": 1}


# --------------------------------------------------------------------------- text views


def test_text_views_exact_strings(tmp_path: Path) -> None:
    rows = [
        _row(0, title="Дорожка  X1", cat_1="Кардио", cat_2="", cat_3="Brand", caracteristics="a:1\nb:2"),
        _row(1, title="ＡＢＣ\u00a0１２３", cat_1="", cat_2="", cat_3="", caracteristics=""),
        _row(
            2,
            title="  T\t\u2009 z ",
            cat_1=" c1 ",
            cat_2="c2\u200b",
            cat_3="c3",
            caracteristics=" x\r\n\r\ny ",
        ),
    ]
    cat = load_catalog(_write(tmp_path, rows))
    assert cat.texts("title") == ["Дорожка X1", "ABC 123", "T z"]
    assert cat.texts("title_cat") == ["Дорожка X1 Кардио Brand", "ABC 123", "T z c1 c2 c3"]
    assert cat.texts("text_all") == ["Дорожка X1 Кардио Brand a:1 b:2", "ABC 123", "T z c1 c2 c3 x y"]


def test_text_view_is_nan_safe() -> None:
    frame = pd.DataFrame(
        {
            "title": ["t", None, np.nan],
            "cat_1": [np.nan, "c", None],
            "cat_2": [None, None, None],
            "cat_3": ["b", np.nan, "x"],
            "caracteristics": [np.nan, "d", None],
        },
        dtype=object,
    )
    assert text_view(frame, "title_cat").tolist() == ["t b", "c", "x"]
    assert text_view(frame, "text_all").tolist() == ["t b", "c d", "x"]
    assert not any("nan" in s or "None" in s for s in text_view(frame, "text_all"))


def test_unknown_view_lists_valid_views(tmp_path: Path) -> None:
    cat = load_catalog(_write(tmp_path, [_row(0)]))
    with pytest.raises(ConfigError, match="valid text views: title, title_cat, text_all"):
        cat.texts("titel")
    with pytest.raises(ConfigError, match="image_paths"):
        cat.texts(IMAGE_VIEW)
    assert set(TEXT_VIEWS) == {"title", "title_cat", "text_all"}


# --------------------------------------------------------------------------- fingerprint and subset


def test_fingerprint_is_stable_and_content_sensitive(tmp_path: Path) -> None:
    rows = [_row(i) for i in range(4)]
    a = load_catalog(_write(tmp_path, rows))
    b = load_catalog(_write(tmp_path, rows))
    assert a.fingerprint() == b.fingerprint()
    assert len(a.fingerprint()) == 64  # sha256, the project's one hashing scheme
    changed = load_catalog(_write(tmp_path, [*rows[:3], _row(3, caracteristics="other")]))
    assert changed.fingerprint() != a.fingerprint()
    other_root = load_catalog(tmp_path / "cards.csv", image_root=tmp_path / "images", require_images=False)
    assert other_root.fingerprint() != changed.fingerprint()
    assert a.subset(np.arange(3)).fingerprint() != a.fingerprint()


def test_fingerprint_is_cached(tmp_path: Path) -> None:
    cat = load_catalog(_write(tmp_path, [_row(0)]))
    first = cat.fingerprint()
    cat.frame.loc[0, "title"] = "mutated after the fact"
    assert cat.fingerprint() == first


def test_source_identity_is_the_csv_bytes_and_the_image_stats(tmp_path: Path) -> None:
    rows = [_row(i) for i in range(4)]
    path = _write(tmp_path, rows)
    first = load_catalog(path).source_identity
    assert first == {"csv": csv_identity(path), "images": first["images"]}
    assert first["csv"] == file_hash(path) and first["images"] is not None
    # a row the loader drops leaves the kept rows (and the fingerprint) alone, not the CSV's identity
    with_dup = load_catalog(_write(tmp_path, [*rows, rows[0]], images=False))
    assert with_dup.source_identity["csv"] != first["csv"]
    assert with_dup.source_identity["images"] == first["images"]
    assert with_dup.fingerprint() == load_catalog(_write(tmp_path, rows, images=False)).fingerprint()
    # an image replaced in place changes the images part only
    image = tmp_path / rows[0]["img_ref"]
    Image.new("RGB", (16, 16), (1, 2, 3)).save(image, format="JPEG")
    changed = load_catalog(_write(tmp_path, rows, images=False)).source_identity
    assert changed["csv"] == first["csv"] and changed["images"] != first["images"]


def test_source_identity_is_what_was_loaded_and_images_are_hashed_lazily_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [_row(i) for i in range(3)]
    path = _write(tmp_path, rows)
    calls: list[int] = []
    monkeypatch.setattr(catalog_module, "files_identity", lambda paths: calls.append(len(paths)) or "s")
    cat = load_catalog(path)
    loaded = file_hash(path)
    _write(tmp_path, [*rows, _row(9)])  # edited after loading: the identity stays the loaded bytes'
    assert calls == []  # loading does not stat the images a second time
    assert cat.source_identity == {"csv": loaded, "images": "s"}
    assert cat.source_identity == {"csv": loaded, "images": "s"} and calls == [3]
    sub = cat.subset(np.arange(2))
    assert (sub.csv_path, sub.csv_hash) == (cat.csv_path, cat.csv_hash)


def test_source_identity_of_a_text_only_catalog_has_no_images(tmp_path: Path) -> None:
    path = _write(tmp_path, [_row(0)], images=False)
    cat = load_catalog(path, image_root=tmp_path / "nowhere", require_images=False)
    assert cat.source_identity == {"csv": file_hash(path), "images": None}


def test_subset_keeps_row_ids_and_order(tmp_path: Path) -> None:
    cat = load_catalog(_write(tmp_path, [_row(0), _row(1, title=""), _row(2), _row(3)]))
    sub = cat.subset(np.array([2, 0]))
    assert sub.row_ids.tolist() == [3, 0]
    assert sub.texts("title") == ["Беговая дорожка 3", "Беговая дорожка 0"]
    assert isinstance(sub.frame.index, pd.RangeIndex)
    assert sub.image_root == cat.image_root and sub.name == cat.name
    assert cat.subset(np.array([True, False, True])).row_ids.tolist() == [0, 3]


# --------------------------------------------------------------------------- real sample


def test_real_sportdoma_sample_loads_text_only(caplog) -> None:
    if not SAMPLE.is_file():
        pytest.skip(f"real sample not present at {SAMPLE}")
    with caplog.at_level(logging.INFO, logger="prodmatch.data"):
        cat = load_catalog(SAMPLE, require_images=False)
    assert len(cat) == 70
    assert len(set(cat.targets)) == 7
    assert "company_data.csv: 70 rows in, 70 kept, 0 dropped" in caplog.text
    for view in TEXT_VIEWS:
        texts = cat.texts(view)
        assert all(t and t == t.strip() and "  " not in t and "nan" not in t.split() for t in texts)
    assert all(a.startswith(b) for a, b in zip(cat.texts("text_all"), cat.texts("title_cat"), strict=True))
