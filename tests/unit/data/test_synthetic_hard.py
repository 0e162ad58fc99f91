"""The hard profile of the synthetic catalog: each effect at the rate docs/CATALOGS.md gives, really visible on the
cards it marks, and the default catalogs untouched (a fingerprint of the tiny seed-0 catalog)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from prodmatch.data import synthetic
from prodmatch.data.synthetic import drawing, hard, hard_images, hard_text
from prodmatch.data.synthetic.tables import QUERY_DEALER
from prodmatch.errors import ConfigError

# The tiny seed-0 default catalog: sha256 of both CSVs, and of every image's pixels as handed to the encoder (mode,
# size, format, quality and the pixel bytes, by file name), so a codec upgrade does not move it but any change of
# what the generator draws does. Every committed figure is measured on default catalogs of this generator: if this
# fails, the default catalogs changed. Update these values only for a deliberate change of the default generator
# (with GENERATOR_VERSION bumped and the figures measured again), or after a numpy or Pillow upgrade that is shown
# to change the draws or the drawing.
DEFAULT_TINY = {
    "company_data.csv": "f5f335ee68bd08715147709e21c2eb2a81bb4099f9b93c4453b5cdc500aa8cb9",
    "comparable_data.csv": "7d68070db8deb7c41830617f1178b4c01d8669f0e277e3fe89eb8ac1478d0eea",
    "pixels": "2d42d7b00717e15f9a5fc47e59ee1ea5c2b76688146d6d68672ef3546e76b0e8",
}
CSVS = ("company_data.csv", "comparable_data.csv")
KW = {"keep_default_na": False, "dtype": {"sku": str}}


def _generate_recording_pixels(out: Path, profile: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Generate the tiny seed-0 catalog in this process, recording each image's pixels as they are saved."""
    pixels: dict[str, str] = {}
    save = drawing.save_image

    def spy(img: Image.Image, path: str, fmt: str, quality: int) -> None:
        head = f"{img.mode}{img.size}{fmt}{quality}".encode()
        pixels[Path(path).name] = hashlib.sha256(head + np.asarray(img).tobytes()).hexdigest()
        save(img, path, fmt, quality)

    with monkeypatch.context() as m:
        m.setattr(drawing, "save_image", spy)
        synthetic.generate(out, seed=0, scale="tiny", profile=profile)
    return pixels


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(the default tiny catalog, the hard tiny catalog, the default catalog's pixel digests)."""
    with pytest.MonkeyPatch.context() as mp:
        default = tmp_path_factory.mktemp("default") / "catalog"
        pixels = _generate_recording_pixels(default, "default", mp)
        hard_dir = tmp_path_factory.mktemp("hard") / "catalog"
        synthetic.generate(hard_dir, seed=0, scale="tiny", profile="hard")
    return default, hard_dir, pixels


@pytest.fixture(scope="module")
def cards(twins) -> pd.DataFrame:
    """Every card of both files: the default twin's columns, the hard card's (suffix _hard) and its effects."""
    default, hard_dir, _ = twins
    effects = pd.read_csv(hard_dir / hard.EFFECTS_CSV, dtype={"sku": str})
    frames = []
    for file_id, csv in enumerate(CSVS):
        d = pd.read_csv(default / csv, **KW)
        h = pd.read_csv(hard_dir / csv, **KW).add_suffix("_hard")
        e = effects[effects["file"] == ("company", "database")[file_id]].reset_index(drop=True)
        assert len(d) == len(h) == len(e)
        frames.append(pd.concat([d, h, e.drop(columns=["dealer", "sku"])], axis=1))
    out = pd.concat(frames, ignore_index=True)
    skus = {s.sku: s for s in synthetic.generation._plan(0, synthetic.SCALES["tiny"])[2]}
    out["_sku"] = out["sku"].map(skus)
    return out


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _words(text: str) -> list[str]:
    return sorted(hard_text._WORDS.findall(text))


def _has(text: str, forms) -> bool:  # noqa: ANN001
    return any(re.search(rf"(?<!\w){re.escape(f)}(?!\w)", text, re.IGNORECASE) for f in forms if f)


# --------------------------------------------------------------------------------------------- default untouched


def test_the_default_catalog_is_unchanged(twins) -> None:
    default, _, pixels = twins
    found = {name: hashlib.sha256((default / name).read_bytes()).hexdigest() for name in CSVS}
    h = hashlib.sha256()
    for name in sorted(pixels):
        h.update(name.encode())
        h.update(pixels[name].encode())
    found["pixels"] = h.hexdigest()
    assert len(pixels) == 360
    assert found == DEFAULT_TINY, "the default synthetic catalog changed (see DEFAULT_TINY)"
    marker = json.loads((default / synthetic.MARKER).read_text(encoding="utf-8"))
    assert marker == {"complete": True, "scale": "tiny", "seed": 0, "version": synthetic.GENERATOR_VERSION}
    assert not (default / hard.EFFECTS_CSV).exists()


# --------------------------------------------------------------------------------------------- the hard catalog


def test_the_hard_catalog_is_the_default_plan_with_effects(twins, cards: pd.DataFrame) -> None:
    _, hard_dir, _ = twins
    for col in ("price", "img_ref", "target", "dealer", "sku"):
        assert (cards[col] == cards[f"{col}_hard"]).all(), col
    assert list(pd.read_csv(hard_dir / CSVS[1], **KW).columns) == list(synthetic.COLUMNS)
    assert (cards["title_hard"] != "").all()
    marker = json.loads((hard_dir / synthetic.MARKER).read_text(encoding="utf-8"))
    assert marker["profile"] == "hard" and marker["profile_version"] == hard.HARD_VERSION
    assert synthetic.is_current(hard_dir, 0, "tiny", "hard") and not synthetic.is_current(hard_dir, 0, "tiny")
    # a card without text effects has its default twin's text, one without image effects its image bytes
    text = ["title", "cat_1", "cat_2", "cat_3", "caracteristics"]
    plain = cards[cards[list(hard.TEXT_EFFECTS)].sum(axis=1) == 0]
    assert len(plain) > 50
    assert (plain[text].to_numpy() == plain[[f"{c}_hard" for c in text]].to_numpy()).all()
    plain = cards[cards[list(hard.IMAGE_EFFECTS)].sum(axis=1) == 0]
    assert len(plain) > 10
    for ref in plain["img_ref"]:
        assert (twins[0] / ref).read_bytes() == (hard_dir / ref).read_bytes()


def test_the_same_seed_gives_the_same_hard_catalog_and_the_cli_writes_it(twins, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    cmd = [
        sys.executable,
        "-m",
        "prodmatch.data.synthetic",
        "--out",
        str(out),
        "--scale",
        "tiny",
        "--profile",
        "hard",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "profile=hard" in proc.stdout
    assert _digest(out) == _digest(twins[1])


def test_an_unknown_profile_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="profile 'harder'.*default, hard"):
        synthetic.generate(tmp_path / "x", seed=0, scale="tiny", profile="harder")


# --------------------------------------------------------------------------------------------- rates


def _expected(cards: pd.DataFrame, effect: str) -> tuple[pd.Series, pd.Series]:
    """(eligible cards, each one's chance of the effect) by the spec's table (docs/CATALOGS.md)."""
    rates = cards["dealer"].map(hard.HARD_DEALERS)
    database = cards["dealer"] != QUERY_DEALER
    named = cards["anonymous"] == 0
    stock = cards["stock_photo"] == 1
    rule = {
        "anonymous": (
            database,
            [
                hard.NO_NAME_ANONYMOUS if n else r.anonymous
                for n, r in zip(cards["no_name"], rates, strict=True)
            ],
        ),
        "code_omitted": (named, [r.code_omitted for r in rates]),
        "code_mangled": (
            named & (cards["code_omitted"] == 0),
            [r.code_mangled / (1 - r.code_omitted) for r in rates],
        ),
        "brand_transliterated": (named, [r.brand_variant / 2 for r in rates]),
        "brand_abbreviated": (named, [r.brand_variant / 2 for r in rates]),
        "reordered": (named, [r.reordered for r in rates]),
        "own_measurements": (named, [r.own_measurements for r in rates]),
        "stock_photo": (pd.Series(True, index=cards.index), [r.stock_photo for r in rates]),
        "studio": (~stock, [float(r.studio != hard.NEUTRAL) for r in rates]),
        "cast": (~stock, [r.cast for r in rates]),
        "lighting": (~stock, [r.lighting for r in rates]),
        "mirrored": (~stock, [r.mirrored for r in rates]),
        "turned": (~stock, [r.turned for r in rates]),
        "stickers": (pd.Series(True, index=cards.index), [r.stickers for r in rates]),
    }[effect]
    eligible, p = rule
    return eligible, pd.Series(p, index=cards.index)[eligible]


RATE_EFFECTS = [e for e in hard.EFFECTS if e not in ("no_name", "own_article")]


@pytest.mark.parametrize("effect", RATE_EFFECTS)
def test_each_effect_is_present_at_its_rate(cards: pd.DataFrame, effect: str) -> None:
    """The share of marked cards is the spec's rate for the cards' shops, within 4 binomial standard errors
    (+0.02): on the tiny catalog's ~360 cards that is about +-0.1 for a rate near 0.3."""
    eligible, p = _expected(cards, effect)
    n = int(eligible.sum())
    measured, expected = float(cards.loc[eligible, effect].mean()), float(p.mean())
    tolerance = 4 * np.sqrt(max(expected * (1 - expected), 1e-4) / n) + 0.02
    assert abs(measured - expected) <= tolerance, (
        f"{effect}: {measured:.3f} vs {expected:.3f} +- {tolerance:.3f}"
    )
    assert (cards.loc[~eligible, effect] == 0).all()  # never where the spec excludes it


def test_no_name_products_are_a_share_of_the_skus(cards: pd.DataFrame) -> None:
    db = cards[cards["dealer"] != QUERY_DEALER]
    per_sku = db.groupby("sku")["no_name"].agg(["min", "max"])
    assert (per_sku["min"] == per_sku["max"]).all()  # a property of the product, on all its cards
    share, n = float(per_sku["max"].mean()), len(per_sku)
    assert abs(share - hard.NO_NAME_SHARE) <= 4 * np.sqrt(0.16 / n) + 0.02
    assert (cards.loc[cards["dealer"] == QUERY_DEALER, ["no_name", "anonymous"]] == 0).all().all()


def test_the_shops_own_article_replaces_every_article_it_shows(cards: pd.DataFrame) -> None:
    shows = cards.apply(lambda c: c["_sku"].article in c["title"], axis=1)
    kardiomir = (cards["dealer"] == "kardiomir") & (cards["anonymous"] == 0) & (cards["code_omitted"] == 0)
    assert (cards.loc[kardiomir & shows, "own_article"] == 1).all() and (kardiomir & shows).sum() > 3
    assert (cards.loc[cards["dealer"] != "kardiomir", "own_article"] == 0).all()
    marked = cards[cards["own_article"] == 1]
    assert not marked.apply(lambda c: c["_sku"].article in c["title_hard"], axis=1).any()
    assert marked["title_hard"].str.contains(r"\(арт\. \d{6}\)").all()


# --------------------------------------------------------------------------------------------- effects visible


def _marked(cards: pd.DataFrame, effect: str) -> pd.DataFrame:
    out = cards[cards[effect] == 1]
    assert len(out) > 0, f"the tiny catalog has no card with {effect}"
    return out


def test_anonymous_cards_name_no_brand_series_code_or_article(cards: pd.DataFrame) -> None:
    for _, c in _marked(cards, "anonymous").iterrows():
        sku = c["_sku"]
        forms = [*sku.brand, *hard_text.BRAND_VARIANTS[sku.brand[0]], sku.series, sku.article]
        for col in ("title_hard", "cat_1_hard", "cat_2_hard", "cat_3_hard", "caracteristics_hard"):
            assert not _has(c[col], forms), (col, c[col])
            assert not _has(c[col], hard_text.code_spellings(sku.code)), (col, c[col])
        assert not re.search(r"\d", c["title_hard"]), c["title_hard"]


def test_omitted_and_mangled_codes_are_gone_from_the_title(cards: pd.DataFrame) -> None:
    for effect in ("code_omitted", "code_mangled"):
        for _, c in _marked(cards, effect).iterrows():
            spellings = hard_text.code_spellings(c["_sku"].code)
            assert _has(c["title"], spellings)  # the default twin shows it
            for col in ("title_hard", "cat_1_hard", "cat_2_hard", "cat_3_hard"):
                assert not _has(c[col], spellings), (effect, c[col])


def test_brands_are_transliterated_or_abbreviated_everywhere_on_the_card(cards: pd.DataFrame) -> None:
    for effect, which in (("brand_transliterated", 0), ("brand_abbreviated", 1)):
        for _, c in _marked(cards, effect).iterrows():
            sku = c["_sku"]
            variant = hard_text.BRAND_VARIANTS[sku.brand[0]][which]
            assert all(_has(c["title_hard"], [w]) for w in variant.split()), c[
                "title_hard"
            ]  # maybe reordered
            for col in ("title_hard", "cat_1_hard", "cat_2_hard", "cat_3_hard", "caracteristics_hard"):
                assert not _has(c[col], sku.brand), (effect, c[col])


def test_reordered_titles_hold_the_same_words_in_another_order(cards: pd.DataFrame) -> None:
    others = [e for e in hard.TEXT_EFFECTS if e not in ("reordered", "no_name", "own_measurements")]
    only = _marked(cards, "reordered")
    only = only[only[others].sum(axis=1) == 0]
    assert len(only) > 3
    for _, c in only.iterrows():
        assert _words(c["title_hard"]) == _words(c["title"]) and c["title_hard"] != c["title"]


def test_remeasured_cards_do_not_copy_the_spec_sheet(cards: pd.DataFrame) -> None:
    marked = _marked(cards, "own_measurements")
    # a shop may write no characteristics at all (spec_empty); every other remeasured card reads differently
    written = marked[(marked["caracteristics"] != "") & (marked["caracteristics_hard"] != "")]
    assert len(written) > 0.8 * len(marked)
    assert (written["caracteristics"] != written["caracteristics_hard"]).all()
    # the net weight, where the card gives one: verbatim on the default twins, rarely on the remeasured cards
    # (a value that is a multiple of 5 may round back to itself)
    copied = []
    for _, c in marked.iterrows():
        net = dict(c["_sku"].generic).get("Вес нетто")
        if net and re.search(rf"вес нетто\W+{net}", c["caracteristics"], re.IGNORECASE):
            copied.append(bool(re.search(rf"вес нетто\W+{net}", c["caracteristics_hard"], re.IGNORECASE)))
    assert len(copied) > 10 and np.mean(copied) < 0.35


def test_image_effects_change_the_photo(twins, cards: pd.DataFrame) -> None:
    default, hard_dir, _ = twins
    changed = cards[cards[list(hard.IMAGE_EFFECTS)].sum(axis=1) > 0]
    for ref in changed["img_ref"]:
        a = np.asarray(Image.open(default / ref).convert("RGB"), dtype=np.int16)
        b = np.asarray(Image.open(hard_dir / ref).convert("RGB"), dtype=np.int16)
        # (a greyscale file keeps little of a colour cast, but its pixels still change)
        assert a.shape != b.shape or (a != b).any(), ref


def test_a_stock_photo_card_shows_its_familys_stock_photo(twins, cards: pd.DataFrame) -> None:
    _, hard_dir, _ = twins
    stock = _marked(cards, "stock_photo")
    stock = stock[stock["stickers"] == 0]
    assert len(stock) > 3
    for _, c in stock.iterrows():
        sku = c["_sku"]
        img = Image.open(hard_dir / c["img_ref"])
        plan = {
            "stock_traits": sku.family_traits,
            "stock_aspect": synthetic.tables.CATEGORY[sku.target].aspect,
        }
        canvas = hard_images.stock_canvas(
            plan, sku.target, synthetic.SCALES["tiny"].size_cap, img.mode == "RGBA"
        )
        expected = drawing._finish_pixels(np.random.default_rng(0), canvas, img.mode, 0).convert("RGB")
        diff = np.abs(np.asarray(img.convert("RGB"), np.int16) - np.asarray(expected, np.int16))
        assert img.size == canvas.size and diff.mean() < 6, (c["img_ref"], diff.mean())


# --------------------------------------------------------------------------------------------- image operations


def _plan(**flags: object) -> dict[str, object]:
    base = dict.fromkeys(hard.IMAGE_EFFECTS, False)
    return {**base, "key": [0, hard.IMAGE_STREAM, 0, 0], "gains": (1.1, 1.0, 0.9), "price": 12990, **flags}


def test_studio_gains_and_casts_recolour_the_photo() -> None:
    grey = Image.new("RGBA", (8, 8), (100, 100, 100, 255))
    assert hard_images.colour(grey, _plan()) is grey  # no effect, no change
    studio = np.asarray(hard_images.colour(grey, _plan(studio=True)))
    assert studio[0, 0].tolist() == [110, 100, 90, 255]
    cast = np.asarray(hard_images.colour(grey, _plan(cast=True)))[0, 0, :3].astype(int)
    assert cast.tolist() != [100, 100, 100] and abs(cast[0] - 100) <= 18 and abs(cast[2] - 100) <= 18
    lit = np.asarray(hard_images.colour(grey, _plan(lighting=True)))[0, 0, :3]
    assert lit[0] == lit[1] == lit[2] != 100  # lighting keeps grey grey


def test_turned_views_foreshorten_and_rotate_the_product() -> None:
    obj = Image.new("RGBA", (100, 50), (200, 0, 0, 255))
    assert hard_images.turn(obj, _plan()) is obj
    turned = hard_images.turn(obj, _plan(turned=True))
    alpha = np.asarray(turned)[..., 3] > 0
    assert turned.height > 50 and alpha.sum() < 100 * 50 * 0.92  # rotated (taller box), narrower product


def test_stickers_are_pasted_and_stock_photos_depend_on_the_family_alone() -> None:
    canvas = Image.new("RGBA", (200, 200), (255, 255, 255, 255))
    hard_images.stickers(canvas, _plan(stickers=True), drawing._font)
    assert (np.asarray(canvas)[..., :3] != 255).any(axis=-1).mean() > 0.01
    sku = synthetic.generation._plan(0, synthetic.SCALES["tiny"])[2][0]
    plans = [
        {
            **_plan(),
            "key": [0, hard.IMAGE_STREAM, f, r],
            "stock_traits": sku.family_traits,
            "stock_aspect": 1.2,
        }
        for f, r in ((0, 1), (1, 7))
    ]
    a, b = (np.asarray(hard_images.stock_canvas(p, sku.target, 320, False)) for p in plans)
    assert np.array_equal(a, b)
