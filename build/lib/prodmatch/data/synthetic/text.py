"""Shop-specific card text: titles, category levels, characteristics and prices."""

from __future__ import annotations

import numpy as np

from prodmatch.data.synthetic.sampling import normalized, pick
from prodmatch.data.synthetic.skus import Sku
from prodmatch.data.synthetic.tables import (
    BOILERPLATE,
    CATEGORY,
    CONFUSABLE,
    GENERIC_CAT1,
    GENERIC_NOUN,
    QUERY_DEALER,
    Dealer,
)


def _code_variant(code: str, style: str) -> str:
    if style == "nohyphen":
        return code.replace("-", "")
    if style == "space":
        return code.replace("-", " ")
    if style == "lower":
        return code.lower()
    if style == "hyphenate" and "-" not in code:
        i = next((k for k, ch in enumerate(code) if ch.isdigit()), len(code))
        return f"{code[:i]}-{code[i:]}" if 0 < i < len(code) else code
    return code


def _brand_text(sku: Sku, style: str) -> str:
    canonical, alt = sku.brand
    return {"canonical": canonical, "alt": alt, "upper": canonical.upper(), "title": canonical.title()}[style]


_CATEGORY_FIELDS = ("{noun}", "{sd_noun}", "{alt}", "{descr}", "{extra}", "{generic}")


def card_title(rng: np.random.Generator, dealer: Dealer, sku: Sku, vague: bool = False) -> str:
    """A shop's title; a `vague` card names no category (brand, series and model only) where the shop can."""
    cat = CATEGORY[sku.target]
    templates = dealer.templates
    if vague:
        plain = tuple(t for t in templates if not any(f in t[0] for f in _CATEGORY_FIELDS))
        templates = plain or templates
    template = templates[int(rng.choice(len(templates), p=normalized([w for _, w in templates])))][0]
    fields = {
        "noun": cat.noun,
        "sd_noun": cat.sd_noun,
        "brand": _brand_text(sku, dealer.brand_style),
        "BRAND": sku.brand[0].upper(),
        "series": sku.series,
        "code": _code_variant(sku.code, pick(rng, dealer.code_style)),
        "suffix": sku.suffix,
        "extra": cat.extras[sku.variant],
        "extra_sd": cat.extras[sku.variant] if rng.random() < 0.5 else "",
        "descr": cat.descr[sku.variant],
        "generic": pick(rng, (GENERIC_NOUN[cat.group], "Тренажер")),
        "alt": pick(rng, cat.alt),
        "art": sku.article,
        "color": sku.color,
    }
    text = " ".join(template.format(**fields).split()).replace(" ,", ",").strip(" ,")
    return text.upper() if dealer.name == "atletplus" else text


def card_categories(
    rng: np.random.Generator, dealer: Dealer, sku: Sku, vague: bool = False
) -> tuple[str, str, str]:
    cat, variant = CATEGORY[sku.target], sku.variant
    if vague:  # filed under a catch-all section, by brand and series
        section = pick(rng, (GENERIC_CAT1[cat.group], "Тренажеры", ""))
        return section, _brand_text(sku, dealer.brand_style), sku.series
    if rng.random() < dealer.misfile:  # filed under a look-alike category by the shop
        cat, variant = CATEGORY[CONFUSABLE[sku.target]], 0
    sub, brand = cat.subcats[variant], _brand_text(sku, dealer.brand_style)
    layout = dealer.cats
    if layout == "sportdoma":
        return cat.sd_cat1, sub, sku.brand[0].upper()
    # shops use their levels loosely: a generic group for several categories, brand or series in place of a
    # sub-category, empty levels; only some cards name the category itself
    u = rng.random()
    if layout == "group_plural_brand":
        return cat.group, cat.plural if u < 0.5 else brand, brand if u < 0.5 else sku.series
    if layout == "plural_brand_model":
        return cat.plural if u < 0.5 else "Тренажеры", brand, f"{sku.series} {sku.code}".strip()
    if layout == "generic_subcat":
        return GENERIC_CAT1[cat.group], sub if u < 0.3 else brand, ""
    if layout == "plural_only":
        return cat.plural if u < 0.5 else cat.group, "", ""
    if layout == "site_group_lower":
        return "Спорт и отдых", cat.group, cat.plural.lower() if u < 0.5 else ""
    return brand, cat.plural if u < 0.5 else cat.group, sub if u < 0.25 else ""  # brand_plural_subcat


def card_caracteristics(rng: np.random.Generator, dealer: Dealer, sku: Sku) -> str:
    if rng.random() < dealer.spec_empty:
        return ""
    kv, sep, lower = dealer.spec_format
    specs = sku.specs
    if dealer.name != QUERY_DEALER and rng.random() < 0.55:
        specs = [specs[int(rng.integers(len(specs)))]]  # a short card: general fields and one specific
    elif dealer.spec_share < 1.0:
        keep = max(2, int(round(len(specs) * dealer.spec_share)))
        specs = [specs[i] for i in sorted(rng.choice(len(specs), size=keep, replace=False))]
    generic = [kv_ for kv_ in sku.generic if rng.random() < 0.85]
    # most shops put the general fields first; the category-specific ones follow or are mixed in
    items = generic + specs if rng.random() < 0.7 else specs + generic
    lo, hi = dealer.boiler
    picks = rng.choice(len(BOILERPLATE), size=int(rng.integers(lo, hi + 1)), replace=False)
    service = " ".join(BOILERPLATE[int(i)][0].format(pick(rng, BOILERPLATE[int(i)][1])) for i in picks)
    if rng.random() < dealer.about:
        service = f"{sku.about} {service}"
    if dealer.name == QUERY_DEALER:
        # sportdoma glues some items together without a space, as in the real cards
        text = "".join(f"{k}{kv}{v}" + ("" if rng.random() < 0.3 else " ") for k, v in items).strip()
        return f"{text} {service}".strip()
    tail = "." if sep.startswith(".") else ""
    text = sep.join(f"{k.lower() if lower else k}{kv}{v.rstrip(tail) if tail else v}" for k, v in items)
    return f"{service} {text}".strip() if dealer.boiler_first else f"{text}{sep}{service}".strip()


def card_price(rng: np.random.Generator, dealer: Dealer, sku: Sku) -> int:
    p = sku.price * (1.0 + dealer.price_bias + rng.normal(0.0, 0.02))
    if dealer.price_round == "90":
        return max(990, int(round(p / 100.0)) * 100 - 10)
    if dealer.price_round == "00":
        return max(1000, int(round(p / 100.0)) * 100)
    return max(999, int(round(p)))
