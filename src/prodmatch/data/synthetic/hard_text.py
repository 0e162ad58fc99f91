"""Text effects of the hard profile: how marketplace cards garble what identifies a product (docs/CATALOGS.md).

Each function takes a finished card's text and returns it changed; what it draws comes from the generator it is
given (a per-card stream of the hard profile, never the default generator's).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

import numpy as np

from prodmatch.data.synthetic.sampling import pick
from prodmatch.data.synthetic.skus import Sku, _num
from prodmatch.data.synthetic.tables import CATEGORY, GENERIC_NOUN, Dealer
from prodmatch.data.synthetic.text import _code_variant, card_caracteristics, card_categories

# (Cyrillic transliteration, abbreviation) of every brand, by its canonical spelling
BRAND_VARIANTS: dict[str, tuple[str, str]] = {
    "NordFit": ("НордФит", "NF"),
    "Iron Atlas": ("Айрон Атлас", "IA"),
    "KardioPro": ("КардиоПро", "K-Pro"),
    "VeloMax": ("ВелоМакс", "VMax"),
    "FERRUM": ("ФЕРРУМ", "FRM"),
    "AeroLine": ("АэроЛайн", "A-Line"),
    "TITANOV": ("ТИТАНОВ", "TTN"),
    "Helix": ("Хеликс", "HLX"),
    "ZenFit": ("ЗенФит", "ZF"),
    "BARS": ("БАРС", "BRS"),
    "Irbis Sport": ("Ирбис Спорт", "I.Sport"),
    "VOLNA": ("ВОЛНА", "VLN"),
    "ProStep": ("ПроСтеп", "PS"),
    "SkyJump": ("СкайДжамп", "SJ"),
    "Body-Form": ("Боди-Форм", "BF"),
    "Atlet-Pro": ("Атлет-Про", "AP"),
    "Grand Fitness": ("Гранд Фитнес", "GF"),
    "Kinetix": ("Кинетикс", "KNX"),
    "Magnus": ("Магнус", "MGS"),
    "Sfera": ("Сфера", "SF"),
}
# Latin capitals and their Cyrillic look-alikes: "Т-300" reads as "T-300" and is another string
LOOKALIKES = str.maketrans("ABCEHKMOPTX", "АВСЕНКМОРТХ")
# what a generic title adds after the category word (no gendered adjectives: the nouns differ in gender)
GENERIC_TAILS = (
    "для дома",
    "для дома и дачи",
    "для квартиры",
    "в наличии",
    "новинка",
    "хит продаж",
    "с доставкой",
)
CODE_STYLES = ("keep", "nohyphen", "space", "lower", "hyphenate")
TEXT_FIELDS = ("title", "cat_1", "cat_2", "cat_3", "caracteristics")
_ARTICLE = r"[,\s]*\(?\s*арт\.\s*{}\s*\)?"
_NUMBER = re.compile(r"\d+(?:,\d+)?")
OWN_MEASUREMENTS_DROP = 1 / 3  # T7: share of remeasured cards that leave the general fields out
_WORDS = re.compile(r"\([^)]*\)|[^\s,]+")


def _sub_any(text: str, forms: Iterable[str], replace) -> str:  # noqa: ANN001 - str | callable, as re.sub takes
    """Replace every whole-word occurrence of any of ``forms`` (case-insensitive, longest first)."""
    forms = sorted({f for f in forms if f}, key=len, reverse=True)
    if not forms:
        return text
    pattern = r"(?<!\w)(?:" + "|".join(re.escape(f) for f in forms) + r")(?!\w)"
    return re.sub(pattern, replace, text, flags=re.IGNORECASE)


def _tidy(text: str) -> str:
    """Whitespace and punctuation left behind by a removed word: no doubled spaces, no space before a comma."""
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r" +([,.;)])", r"\1", text).replace("()", "")
    return re.sub(r"[ \t]{2,}", " ", text).strip(" ,")


def code_spellings(code: str) -> set[str]:
    """Every way a shop of the default generator writes ``code`` (upper-case titles included: matching ignores
    case)."""
    return {_code_variant(code, style) for style in CODE_STYLES}


def mangle_code(rng: np.random.Generator, code: str) -> str:
    """The code as a careless marketplace writes it: Cyrillic look-alikes, letters dropped, a typo, or another
    separator; always a different string from every spelling the default generator uses."""
    spellings = {s.lower() for s in code_spellings(code)}
    ways = ["cyrillic", "digits", "typo", "separator"]
    for _ in range(8):
        way = ways[int(rng.integers(len(ways)))]
        if way == "cyrillic":
            out = code.translate(LOOKALIKES)
        elif way == "digits":
            first = next((i for i, ch in enumerate(code) if ch.isdigit()), 0)
            out = code[first:]
        elif way == "typo":
            out = _typo(rng, code)
        else:
            letters = re.match(r"[^\W\d_]*", code).group(0)
            rest = code[len(letters) :].lstrip("- ")
            out = f"{letters}{pick(rng, ('_', '/'))}{rest}" if letters and rest else _typo(rng, code)
        if out.lower() not in spellings:
            return out
    return f"{code}{int(rng.integers(2, 10))}"  # a stray digit: unmistakably another string


def _typo(rng: np.random.Generator, code: str) -> str:
    digits = [i for i, ch in enumerate(code) if ch.isdigit()]
    if not digits:
        return code
    chars = list(code)
    pairs = [i for i in digits if i + 1 in digits and chars[i] != chars[i + 1]]
    if pairs and rng.random() < 0.5:
        i = pairs[int(rng.integers(len(pairs)))]
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
    else:
        i = digits[int(rng.integers(len(digits)))]
        chars[i] = str((int(chars[i]) + int(rng.integers(1, 10))) % 10)
    return "".join(chars)


def _styled(variant: str):  # noqa: ANN202 - a re.sub replacement function
    """A replacement that keeps the replaced word's case: upper-case words get the variant in upper case."""

    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        if found.isupper() and any(ch.isalpha() for ch in found):
            return variant.upper()
        return variant.lower() if found.islower() else variant

    return replace


def remove_code(card: dict, sku: Sku) -> None:
    """T2: the model code (any spelling) and the article taken out of the title and category levels."""
    for key in ("title", "cat_1", "cat_2", "cat_3"):
        text = _sub_any(card[key], code_spellings(sku.code), "")
        if key == "title":
            text = re.sub(_ARTICLE.format(re.escape(sku.article)), "", text, flags=re.IGNORECASE)
        card[key] = _tidy(text)


def replace_code(card: dict, sku: Sku, new: str) -> None:
    """T3: every spelling of the model code in the title and category levels replaced by ``new``."""
    for key in ("title", "cat_1", "cat_2", "cat_3"):
        card[key] = _sub_any(card[key], code_spellings(sku.code), _styled(new))


def replace_brand(card: dict, sku: Sku, variant: str) -> None:
    """T4: the brand, however the shop spells it, replaced by ``variant`` on the whole card."""
    canonical, alt = sku.brand
    forms = {canonical, alt, canonical.title()}
    for key in TEXT_FIELDS:
        card[key] = _sub_any(card[key], forms, _styled(variant))


def replace_article(card: dict, sku: Sku, own: str) -> bool:
    """T6: the manufacturer's article replaced by the shop's own number; False when the card shows none."""
    changed = False
    for key in TEXT_FIELDS:
        text = _sub_any(card[key], [sku.article], own)
        changed |= text != card[key]
        card[key] = text
    return changed


def reorder_words(rng: np.random.Generator, title: str) -> str:
    """T5: the title's words in another order (a title of one word stays as it is)."""
    words = _WORDS.findall(title)  # a bracketed group ("(арт. 123)") moves as one
    if len(words) < 2:
        return title
    order = rng.permutation(len(words))
    if (order == np.arange(len(words))).all():
        order = np.roll(order, 1)
    return " ".join(words[i] for i in order)


def generic_title(rng: np.random.Generator, sku: Sku) -> str:
    """T1: a title that names the category and nothing of the product ("Орбитрек магнитный, черный")."""
    cat = CATEGORY[sku.target]
    noun = pick(rng, (cat.noun, *cat.alt, GENERIC_NOUN[cat.group]))
    # the variant's word agrees with the category's own noun only (the other names differ in gender)
    detail = cat.extras[sku.variant] if noun == cat.noun and rng.random() < 0.7 else ""
    tail = pick(rng, GENERIC_TAILS) if rng.random() < 0.6 else ""
    title = " ".join(f"{noun} {detail} {tail}".split())
    return f"{title}, {sku.color}" if rng.random() < 0.3 else title


def anonymous_sku(sku: Sku) -> Sku:
    """The SKU as a no-name listing describes it: no brand, series, code, article, blurb or general fields, and only
    the characteristics whose values hold no number."""
    plain = [(k, v) for k, v in sku.specs if not any(ch.isdigit() for ch in v)]
    # a shop keeps at least two fields (it picks among them); every category has two number-free ones, this is a guard
    fallback = [("Тип", CATEGORY[sku.target].plural.lower()), ("Назначение", "для дома")]
    plain += fallback[: max(0, 2 - len(plain))]
    return dataclasses.replace(
        sku, brand=("", ""), series="", code="", suffix="", article="", specs=plain, generic=[], about=""
    )


def anonymise(rng: np.random.Generator, card: dict, dealer: Dealer, sku: Sku) -> None:
    """T1: the card rewritten as an anonymous listing (title, category levels and characteristics)."""
    anon = anonymous_sku(sku)
    card["title"] = generic_title(rng, sku)
    card["cat_1"], card["cat_2"], card["cat_3"] = (_tidy(c) for c in card_categories(rng, dealer, anon))
    card["caracteristics"] = card_caracteristics(rng, dealer, anon)


def _remeasured(rng: np.random.Generator, value: str) -> str:
    """A value as the shop measured it: every number off by up to 10% and rounded (to 5 from 20 up, else to 1)."""

    def one(match: re.Match[str]) -> str:
        x = float(match.group(0).replace(",", "."))
        y = x * rng.uniform(0.9, 1.1)
        y = 5 * round(y / 5) if x >= 20 else round(y) if x >= 2 else round(y, 1)
        return _num(y)

    return _NUMBER.sub(one, value)


def remeasure(rng: np.random.Generator, card: dict, dealer: Dealer, sku: Sku) -> None:
    """T7: the characteristics written from the shop's own measurements (or without the general fields)."""
    specs = [(k, _remeasured(rng, v)) for k, v in sku.specs]
    generic = (
        [] if rng.random() < OWN_MEASUREMENTS_DROP else [(k, _remeasured(rng, v)) for k, v in sku.generic]
    )
    card["caracteristics"] = card_caracteristics(
        rng, dealer, dataclasses.replace(sku, specs=specs, generic=generic)
    )
