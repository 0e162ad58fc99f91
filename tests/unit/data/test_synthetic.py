"""The synthetic demo catalog: schema, study-like structure, image variety, determinism, caching and CLI."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from prodmatch.data import synthetic
from prodmatch.data.synthetic import generation
from prodmatch.errors import CatalogError, ConfigError

STUDY_TARGETS = {
    "begovye_dorozhki",
    "ellipticheskie_trenazhery",
    "velotrenazhery",
    "trenazhery_na_svobodnykh_vesakh",
    "multistantsii",
    "grebnye_trenazhery",
    "steppery",
}
SCHEMA = ["title", "price", "cat_1", "cat_2", "cat_3", "caracteristics", "img_ref", "target", "dealer", "sku"]
EXT_FORMAT = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG", "webp": "WEBP"}


def _digest(root: Path) -> dict[str, str]:
    """sha1 of every generated file (CSVs and images), by relative path."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != synthetic.MARKER
    }


def _read(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    kw = {"keep_default_na": False, "dtype": {"sku": str}}
    return pd.read_csv(root / "company_data.csv", **kw), pd.read_csv(root / "comparable_data.csv", **kw)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.generate(tmp_path_factory.mktemp("tiny_a"), seed=0, scale="tiny")


@pytest.fixture(scope="module")
def tiny_cli(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("tiny_cli") / "catalog"
    cmd = [
        sys.executable,
        "-m",
        "prodmatch.data.synthetic",
        "--out",
        str(out),
        "--scale",
        "tiny",
        "--seed",
        "0",
    ]
    return out, subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def frames(tiny: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return _read(tiny)


def test_cli_writes_the_same_catalog_as_generate(tiny: Path, tiny_cli) -> None:
    out, proc = tiny_cli
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and "queries" in lines[0] and "database cards" in lines[0]
    a, b = _digest(tiny), _digest(out)
    assert len(a) > 300
    assert a == b  # same seed: byte-identical CSVs and images
    assert json.loads((out / synthetic.MARKER).read_text())["seed"] == 0


def test_cli_rejects_an_unknown_scale(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "prodmatch.data.synthetic", "--out", str(tmp_path), "--scale", "huge"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "huge" in proc.stderr


def test_schema_and_sizes(frames) -> None:
    company, database = frames
    for df in (company, database):
        assert list(df.columns) == SCHEMA
        assert pd.api.types.is_integer_dtype(df["price"]) and (df["price"] > 0).all()
        assert (df["title"].str.strip() != "").all()
        assert not df.drop(columns="sku").duplicated().any()
        assert df["img_ref"].is_unique
    assert 40 <= len(company) <= 60
    assert 250 <= len(database) <= 400
    assert (company["dealer"] == "sportdoma").all()
    assert company["sku"].is_unique  # one query card per product model


def test_targets_and_dealers(frames) -> None:
    company, database = frames
    assert set(company["target"]) == STUDY_TARGETS
    db_targets = set(database["target"])
    assert db_targets > STUDY_TARGETS and len(db_targets - STUDY_TARGETS) >= 1
    assert set(synthetic.QUERY_TARGETS) == STUDY_TARGETS
    assert set(synthetic.DATABASE_ONLY_TARGETS) == db_targets - STUDY_TARGETS
    assert database["dealer"].nunique() >= 6 and "sportdoma" not in set(database["dealer"])
    # shops use the category columns loosely: one category under several cat_1 names, and generic cat_1
    # sections ("Кардиотренажеры", "Тренажеры") holding several categories
    treadmills = database[database["target"] == "begovye_dorozhki"]
    assert treadmills["cat_1"].nunique() >= 4
    assert database.groupby("cat_1")["target"].nunique().max() >= 4
    assert (database[["cat_2", "cat_3"]] == "").any().all()  # some shops leave category levels empty


def test_every_query_sku_is_listed_by_at_least_two_shops(frames) -> None:
    company, database = frames
    shops = database.groupby("sku")["dealer"].nunique()
    assert (shops.reindex(company["sku"]).fillna(0) >= 2).all()
    # the database also holds models the company does not sell, and a model keeps its target everywhere
    assert len(set(database["sku"]) - set(company["sku"])) > len(company)
    both = pd.concat([company, database])
    assert (both.groupby("sku")["target"].nunique() == 1).all()


def test_titles_of_one_model_differ_across_shops(frames) -> None:
    company, database = frames
    both = pd.concat([company, database])
    per_sku = both.groupby("sku")["title"].agg(["size", "nunique"])
    multi = per_sku[per_sku["size"] >= 2]
    assert (multi["nunique"] >= 2).all()
    assert (multi["nunique"] == multi["size"]).mean() > 0.95
    # model codes are spelled differently ("T-300" vs "T300" / "T 300") and some titles drop the category word
    assert database["title"].str.contains(r"[A-Za-z]+ \d", regex=True).any()
    nouns = ("дорожка", "тренажер", "степпер", "мультистанция", "батут", "скамья", "орбитрек", "велоэргометр")
    lowered = database["title"].str.lower()
    no_noun = ~lowered.str.contains("|".join(nouns))
    assert 0.25 < no_noun.mean() < 0.8
    # shops name categories with synonyms the company does not use
    assert lowered.str.contains("орбитрек|эллипсоид|тредмил").any()
    # brands make several categories, so a brand alone does not give the category
    brand = company["cat_3"].str.upper()
    assert (company.groupby(brand)["target"].nunique() >= 2).any()


def test_characteristics_are_russian_and_shop_formatted(frames) -> None:
    company, database = frames
    assert company["caracteristics"].str.contains("Гарантия:").mean() > 0.9
    seps = database.groupby("dealer")["caracteristics"].apply(lambda s: s.str.contains(";").mean())
    assert seps.min() < 0.1 < seps.max()  # some shops separate items with ';', some do not
    assert (database["caracteristics"] == "").any()


def test_prices_of_one_model_stay_close(frames) -> None:
    company, database = frames
    both = pd.concat([company, database])
    spread = both.groupby("sku")["price"].agg(lambda p: p.max() / p.min())
    assert spread.max() < 1.3 and spread.mean() > 1.005


def test_images_exist_match_their_extension_and_mix_formats_and_modes(tiny: Path, frames) -> None:
    company, database = frames
    both = pd.concat([company, database])
    pattern = re.compile(r"^images/([a-z_]+)/\d+_([a-z]+)_\d+\.(jpeg|jpg|png|webp)$")
    modes, formats = set(), set()
    for ref, target, dealer in zip(both["img_ref"], both["target"], both["dealer"], strict=True):
        m = pattern.match(ref)
        assert m and m.group(1) == target and m.group(2) == dealer, ref
        with Image.open(tiny / ref) as im:
            assert im.format == EXT_FORMAT[m.group(3)], ref
            assert min(im.size) >= 64 and max(im.size) <= 1200
            modes.add(im.mode)
            formats.add(im.format)
            if im.mode == "RGBA":
                assert im.getchannel("A").getextrema()[0] == 0  # a transparent background
    assert {"RGB", "L", "RGBA", "CMYK", "P"} <= modes
    assert {"JPEG", "PNG", "WEBP"} <= formats


def test_images_of_one_model_differ_between_shops(tiny: Path, frames) -> None:
    _, database = frames
    sku = database["sku"].value_counts().index[0]
    refs = database.loc[database["sku"] == sku, "img_ref"]
    assert len({hashlib.sha1((tiny / r).read_bytes()).hexdigest() for r in refs}) == len(refs)


def test_other_seed_gives_another_catalog_and_ensure_catalog_regenerates(tiny: Path, tmp_path: Path) -> None:
    work = tmp_path / "cat"
    shutil.copytree(tiny, work)
    stale = work / "images" / "steppery" / "stale.jpg"
    stale.write_bytes(b"x")
    assert synthetic.ensure_catalog(work, seed=1, scale="tiny") == work
    marker = json.loads((work / synthetic.MARKER).read_text())
    assert (marker["seed"], marker["scale"], marker["version"]) == (1, "tiny", synthetic.GENERATOR_VERSION)
    assert not stale.exists()  # the earlier catalog's images are removed
    old, new = _digest(tiny), _digest(work)
    assert old["company_data.csv"] != new["company_data.csv"]
    assert old["comparable_data.csv"] != new["comparable_data.csv"]
    company, database = _read(work)
    assert all((work / r).is_file() for r in pd.concat([company, database])["img_ref"])


def test_ensure_catalog_skips_a_current_catalog(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("a current catalog must not be generated again")

    monkeypatch.setattr(generation, "_generate_locked", fail)
    assert synthetic.is_current(tiny, seed=0, scale="tiny")
    assert synthetic.ensure_catalog(tiny, seed=0, scale="tiny") == tiny
    assert not synthetic.is_current(tiny, seed=0, scale="demo")
    with pytest.raises(AssertionError, match="must not be generated"):
        synthetic.ensure_catalog(tiny, seed=0, scale="demo")


def test_incomplete_marker_means_regenerate(tiny: Path, tmp_path: Path) -> None:
    work = tmp_path / "cat"
    shutil.copytree(tiny, work)
    marker = json.loads((work / synthetic.MARKER).read_text())
    (work / synthetic.MARKER).write_text(json.dumps(dict(marker, complete=False)))
    (work / "company_data.csv").write_text("half written", encoding="utf-8")
    assert not synthetic.is_current(work, seed=0, scale="tiny")
    synthetic.ensure_catalog(work, seed=0, scale="tiny")
    assert json.loads((work / synthetic.MARKER).read_text())["complete"] is True
    assert _digest(work) == _digest(tiny)


def test_refuses_to_overwrite_a_foreign_catalog(tmp_path: Path) -> None:
    (tmp_path / "company_data.csv").write_text("title\nmy product\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="did not write"):
        synthetic.ensure_catalog(tmp_path, seed=0, scale="tiny")
    assert (tmp_path / "company_data.csv").read_text(encoding="utf-8") == "title\nmy product\n"


@pytest.mark.parametrize(("seed", "scale"), [(0, "huge"), (-1, "tiny"), ("0", "tiny")])
def test_bad_arguments_raise_config_error(tmp_path: Path, seed, scale) -> None:
    with pytest.raises(ConfigError):
        synthetic.generate(tmp_path, seed=seed, scale=scale)
    assert not any(tmp_path.iterdir())


def test_scales_grow_towards_the_study() -> None:
    assert list(synthetic.SCALES) == ["tiny", "demo", "full"]
    sizes = [(s.n_queries, s.n_database) for s in synthetic.SCALES.values()]
    assert sizes == sorted(sizes)
    assert synthetic.SCALES["full"].n_queries >= 900 and synthetic.SCALES["full"].n_database >= 13000


def test_load_catalog_keeps_every_row(tiny: Path) -> None:
    catalog = pytest.importorskip("prodmatch.data.catalog")
    for name in ("company_data.csv", "comparable_data.csv"):
        cat = catalog.load_catalog(tiny / name, check_images="decode", strict=True)
        assert cat.report.rows_kept == cat.report.rows_in == len(pd.read_csv(tiny / name))
        assert not cat.report.dropped
        assert cat.skus is not None and len(cat.skus) == len(cat)


def test_text_matching_is_hard_but_informative(tiny: Path) -> None:
    """TF-IDF on title_cat finds mostly, but not only, the right category; categories beat titles alone."""
    catalog = pytest.importorskip("prodmatch.data.catalog")
    from prodmatch.encoders.tfidf import TfidfEncoder
    from prodmatch.retrieval.index import ExactIndex
    from prodmatch.retrieval.metrics import acc_at_k

    queries = catalog.load_catalog(tiny / "company_data.csv", require_images=False, check_images="none")
    database = catalog.load_catalog(tiny / "comparable_data.csv", require_images=False, check_images="none")
    chance = float(pd.Series(database.targets).value_counts(normalize=True).reindex(queries.targets).mean())
    acc = {}
    for view in ("title", "title_cat"):
        encoder = TfidfEncoder(dim=128, seed=0).fit(queries.texts(view) + database.texts(view))
        ids, _ = (
            ExactIndex()
            .build(encoder.encode(database.texts(view)).vectors)
            .search(encoder.encode(queries.texts(view)).vectors, 10)
        )
        acc[view] = acc_at_k(queries.targets, database.targets, ids, k=10)[0]
    assert 2 * chance < acc["title"] < acc["title_cat"] < 0.98, (chance, acc)
