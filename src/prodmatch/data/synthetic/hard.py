"""The hard profile: the default catalog of the same seed and scale with marketplace effects on top.

The spec (each effect, which shops, its rate) is docs/CATALOGS.md; :data:`HARD_DEALERS` is that table as data.
Every draw of the profile comes from its own streams, seeded ``[seed, stream, ...]`` with stream numbers the
default generator never uses, so the default catalogs are untouched and a hard card differs from its default
twin by its effects alone:

* ``[seed, NO_NAME_STREAM]``: which SKUs are no-name products (one draw per SKU, in SKU order);
* ``[seed, DECISION_STREAM, file, row]``: which effects a card gets (a fixed number of uniforms per card, one per
  effect, so one effect's rate never moves another's draws);
* ``[seed, TEXT_STREAM, file, row, effect]``: what a text effect writes (the mangled code, the generic title,
  ...), one stream per effect;
* ``[seed, IMAGE_STREAM, file, row, effect]``: what an image effect draws (gains, angles, stickers), one stream
  per effect (:mod:`prodmatch.data.synthetic.hard_images`).

``effects.csv`` beside the catalog's CSVs records each card's effects (0/1 columns).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from prodmatch.data.synthetic import hard_text
from prodmatch.data.synthetic.skus import Sku
from prodmatch.data.synthetic.tables import CATEGORY, QUERY_DEALER

HARD = "hard"
DEFAULT = "default"
PROFILES = (DEFAULT, HARD)
HARD_VERSION = 2  # bump when the hard profile's output changes: catalogs made before are regenerated
EFFECTS_CSV = "effects.csv"

NO_NAME_STREAM, DECISION_STREAM, TEXT_STREAM, IMAGE_STREAM = 101, 102, 103, 104
NO_NAME_SHARE = 0.20  # T1p: share of SKUs sold as no-name goods outside the company
NO_NAME_ANONYMOUS = 0.85  # T1p: chance that such a SKU's database card is anonymous
NEUTRAL = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class HardDealer:
    """One shop's rates of the hard profile's effects (docs/CATALOGS.md, T1-T6 and I1-I7)."""

    anonymous: float  # T1 (database shops; SKUs that are not no-name products)
    code_omitted: float  # T2
    code_mangled: float  # T3 (exclusive with T2)
    brand_variant: float  # T4: transliterated or abbreviated, half each
    reordered: float  # T5
    own_article: float  # T6: of the cards that show an article
    own_measurements: float  # T7
    studio: tuple[float, float, float]  # I1: R, G, B gains of every photo
    cast: float  # I2
    lighting: float  # I3
    mirrored: float  # I4
    turned: float  # I5
    stickers: float  # I6
    stock_photo: float  # I7


# fmt: off
_D = HardDealer
HARD_DEALERS: dict[str, HardDealer] = {
    # shop:         T1   T2   T3   T4   T5   T6 T7   I1 (R, G, B gains)  I2   I3   I4   I5   I6   I7
    QUERY_DEALER:    _D(0.0, .08, .04, 0.0, 0.0, 0, .5, (1.06, 1.0, .92), .30, .20, .10, .10, .10, .10),
    "sportbaza":     _D(.10, .20, .20, .25, .30, 0, .5, NEUTRAL,          .40, .30, .20, .20, .30, .15),
    "fitmarket":     _D(.05, .15, .25, .20, .20, 0, .5, (.94, 1.0, 1.08), .30, .30, .20, .20, .20, .20),
    "kardiomir":     _D(.25, .25, .25, .40, .40, 1, .7, (1.08, 1.02, .88), .60, .50, .30, .30, .50, .25),
    "atletplus":     _D(.05, .20, .20, .30, .30, 0, .5, NEUTRAL,          .30, .30, .20, .20, .30, .10),
    "trenazhershop": _D(.30, .25, .30, .40, .40, 0, .7, (.95, 1.05, .95), .60, .50, .30, .30, .50, .25),
    "olimpsport":    _D(.15, .20, .20, .35, .30, 0, .6, (1.04, .96, 1.0), .50, .40, .20, .30, .40, .15),
}
# fmt: on

TEXT_EFFECTS = (
    "no_name",
    "anonymous",
    "code_omitted",
    "code_mangled",
    "brand_transliterated",
    "brand_abbreviated",
    "reordered",
    "own_article",
    "own_measurements",
)
IMAGE_EFFECTS = ("studio", "cast", "lighting", "mirrored", "turned", "stickers", "stock_photo")
EFFECTS = TEXT_EFFECTS + IMAGE_EFFECTS
_N_UNIFORMS = 16  # decision draws per card, whatever its effects


def no_name_skus(seed: int, skus: list[Sku]) -> set[str]:
    """T1p: the SKUs sold as no-name goods outside the company."""
    draws = np.random.default_rng([seed, NO_NAME_STREAM]).random(len(skus))
    return {s.sku for s, u in zip(skus, draws, strict=True) if u < NO_NAME_SHARE}


def decide(seed: int, file_id: int, row: int, card: dict[str, Any], no_name: bool) -> dict[str, int]:
    """Which effects one card gets (0/1 per effect of :data:`EFFECTS`)."""
    rates = HARD_DEALERS[card["dealer"]]
    u = np.random.default_rng([seed, DECISION_STREAM, file_id, row]).random(_N_UNIFORMS)
    database = card["dealer"] != QUERY_DEALER
    out = dict.fromkeys(EFFECTS, 0)
    out["no_name"] = int(database and no_name)
    out["anonymous"] = int(database and u[0] < (NO_NAME_ANONYMOUS if no_name else rates.anonymous))
    if not out["anonymous"]:
        out["code_omitted"] = int(u[1] < rates.code_omitted)
        out["code_mangled"] = int(not out["code_omitted"] and u[1] < rates.code_omitted + rates.code_mangled)
        brand = u[2] < rates.brand_variant
        out["brand_transliterated"] = int(brand and u[3] < 0.5)
        out["brand_abbreviated"] = int(brand and u[3] >= 0.5)
        out["reordered"] = int(u[4] < rates.reordered)
        out["own_article"] = int(u[5] < rates.own_article)  # kept only where the card shows an article
        out["own_measurements"] = int(u[12] < rates.own_measurements)
    out["stock_photo"] = int(u[6] < rates.stock_photo)
    if not out["stock_photo"]:
        out["studio"] = int(rates.studio != NEUTRAL)
        out["cast"] = int(u[7] < rates.cast)
        out["lighting"] = int(u[8] < rates.lighting)
        out["mirrored"] = int(u[9] < rates.mirrored)
        out["turned"] = int(u[10] < rates.turned)
    out["stickers"] = int(u[11] < rates.stickers)
    return out


def apply_text(seed: int, file_id: int, row: int, card: dict[str, Any], effects: dict[str, int]) -> None:
    """Rewrite the card's text columns in place by its text effects (``own_article`` is cleared where the card
    shows no article)."""
    sku: Sku = card["_sku"]

    def rng(effect: str) -> np.random.Generator:
        return np.random.default_rng([seed, TEXT_STREAM, file_id, row, EFFECTS.index(effect)])

    if effects["anonymous"]:
        hard_text.anonymise(rng("anonymous"), card, card["_dealer"], sku)
        return
    if effects["code_omitted"]:
        hard_text.remove_code(card, sku)
    elif effects["code_mangled"]:
        hard_text.replace_code(card, sku, hard_text.mangle_code(rng("code_mangled"), sku.code))
    if effects["own_article"]:
        own = str(int(rng("own_article").integers(100_000, 1_000_000)))
        effects["own_article"] = int(hard_text.replace_article(card, sku, own))
    if effects["own_measurements"]:
        hard_text.remeasure(rng("own_measurements"), card, card["_dealer"], sku)
    if effects["brand_transliterated"] or effects["brand_abbreviated"]:
        translit, abbreviation = hard_text.BRAND_VARIANTS[sku.brand[0]]
        hard_text.replace_brand(card, sku, translit if effects["brand_transliterated"] else abbreviation)
    if effects["reordered"]:
        card["title"] = hard_text.reorder_words(rng("reordered"), card["title"])


def image_plan(
    seed: int, file_id: int, row: int, card: dict[str, Any], effects: dict[str, int]
) -> dict[str, Any]:
    """What :func:`prodmatch.data.synthetic.drawing.render` needs to draw the card's image effects."""
    sku: Sku = card["_sku"]
    return {
        "key": [seed, IMAGE_STREAM, file_id, row],
        **{name: bool(effects[name]) for name in IMAGE_EFFECTS},
        "gains": HARD_DEALERS[card["dealer"]].studio,
        "price": int(card["price"]),
        "stock_traits": sku.family_traits or sku.traits,
        "stock_aspect": CATEGORY[sku.target].aspect,
    }


def apply(
    seed: int, company: list[dict[str, Any]], database: list[dict[str, Any]], skus: list[Sku]
) -> pd.DataFrame:
    """Give every card its effects: text rewritten in place, the image plan under ``_hard``; the effects table."""
    no_name = no_name_skus(seed, skus)
    rows = []
    for file_id, (name, cards) in enumerate((("company", company), ("database", database))):
        for row, card in enumerate(cards):
            effects = decide(seed, file_id, row, card, card["sku"] in no_name)
            apply_text(seed, file_id, row, card, effects)
            card["_hard"] = image_plan(seed, file_id, row, card, effects)
            rows.append({"file": name, "row": row, "dealer": card["dealer"], "sku": card["sku"], **effects})
    return pd.DataFrame(rows, columns=["file", "row", "dealer", "sku", *EFFECTS])
