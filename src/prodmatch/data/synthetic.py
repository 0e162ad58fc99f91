"""Synthetic demo catalog in the study's schema: Russian product cards of sports equipment plus drawn photos.

The generator makes a world of product models (SKUs), lists each model at several shops and writes the
shop ``sportdoma`` as the queries (``company_data.csv``) and six other shops as the database
(``comparable_data.csv``). Every shop has its own habits, so matching is not trivial for either modality:

* text: per-shop title templates (category word first or last, upper case, generic "Тренажер", titles
  without any category word, model-code spellings such as ``T-300`` / ``T300`` / ``T 300``), per-shop use of
  ``cat_1..cat_3`` (generic sections holding several categories, brand or series levels, empty levels,
  mis-filed cards), "vague" cards that name no category at all, brands that make many categories with model
  numbers reused across them, and long characteristics dominated by fields every category has, the brand's
  blurb and shop service text;
* images: per-category silhouettes whose shape is the category's and whose proportions and colours (one
  palette for all categories) are traits of the SKU, photographed differently by every shop (size, aspect,
  plain / gradient / room / cluttered / textured background, scale from small to tightly cropped, offset,
  rotation, mirroring, watermark, noise) and saved as JPEG / PNG / WEBP in RGB, L, P, RGBA (transparent
  background) and CMYK modes. Colour, background and layout therefore say little about the category.

The ``sku`` column is the ground truth: one value per product model, equal across shops.
Output is a pure function of ``(seed, scale)``: every random draw comes from numpy Generators seeded from
the seed (per image: from ``(seed, file, row)``), so CSVs and images are byte-identical between runs.

CLI: ``python -m prodmatch.data.synthetic --out DIR [--seed N] [--scale tiny|demo|full]``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageChops, ImageDraw, ImageFont

from prodmatch.data.catalog import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from prodmatch.errors import CatalogError, ConfigError, ProdmatchError

GENERATOR_VERSION = 2
MARKER = ".synthetic.json"
QUERY_DEALER = "sportdoma"
COLUMNS: tuple[str, ...] = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)  # the study's schema + sku


@dataclass(frozen=True)
class Scale:
    """Size of a generated catalog."""

    n_queries: int  # company cards (one per query SKU)
    n_database: int  # approximate number of database cards
    size_cap: int  # cap on the long side of ordinary images
    large_share: float  # share of images drawn large (up to 1200 px)
    processes: int  # image worker processes (1: in-process)


SCALES: dict[str, Scale] = {
    "tiny": Scale(n_queries=49, n_database=300, size_cap=320, large_share=0.0, processes=1),
    "demo": Scale(n_queries=400, n_database=3000, size_cap=500, large_share=0.01, processes=2),
    "full": Scale(n_queries=1000, n_database=13700, size_cap=500, large_share=0.02, processes=2),
}

# ---------------------------------------------------------------------------------------------- categories


@dataclass(frozen=True)
class _Category:
    target: str
    noun: str  # singular title word
    plural: str  # category name as shops write it
    sd_noun: str  # sportdoma's title word
    sd_cat1: str  # sportdoma's cat_1 (its quirks kept)
    group: str  # super-category
    subcats: tuple[str, ...]  # sub-category per drawing variant
    descr: tuple[str, ...]  # lower-case descriptor per variant, used after the model name
    extras: tuple[str, ...]  # optional title tail per variant ("" = none)
    alt: tuple[str, ...]  # other names shops use
    prefixes: tuple[str, ...]  # model-code letters
    price: tuple[float, float]  # median RUB, log-sigma
    aspect: float  # width / height of the drawn object
    db_weight: float
    query_weight: float


_CARDIO, _STRENGTH, _OUTDOOR = "Кардиотренажеры", "Силовые тренажеры", "Активный отдых"

CATEGORIES: tuple[_Category, ...] = (
    _Category(
        target="begovye_dorozhki",
        noun="Беговая дорожка",
        plural="Беговые дорожки",
        sd_noun="Беговая дорожка",
        sd_cat1="Беговые дорожки",
        group=_CARDIO,
        subcats=("Электрические беговые дорожки", "Механические беговые дорожки", "Складные беговые дорожки"),
        descr=("беговая дорожка электрическая", "беговая дорожка механическая", "беговая дорожка складная"),
        extras=("(с углом наклона)", "механическая", "складная"),
        alt=("Тредмил", "Дорожка беговая", "Беговой тренажер", "Дорожка"),
        prefixes=("T", "TR", "R", "F", "ST"),
        price=(75000, 0.55),
        aspect=1.35,
        db_weight=0.19,
        query_weight=0.17,
    ),
    _Category(
        target="ellipticheskie_trenazhery",
        noun="Эллиптический тренажер",
        plural="Эллиптические тренажеры",
        sd_noun="Эллиптический тренажер",
        sd_cat1="Эллиптические тренажеры",
        group=_CARDIO,
        subcats=("Магнитные эллиптические тренажеры", "Электромагнитные эллиптические тренажеры"),
        descr=("эллиптический тренажер магнитный", "эллиптический тренажер электромагнитный"),
        extras=("", "с автонаклоном"),
        alt=("Орбитрек", "Эллипсоид", "Кросстренер", "Эллипс"),
        prefixes=("E", "X", "EL", "CE", "V"),
        price=(55000, 0.55),
        aspect=1.25,
        db_weight=0.14,
        query_weight=0.15,
    ),
    _Category(
        target="velotrenazhery",
        noun="Велотренажер",
        plural="Велотренажеры",
        sd_noun="Велотренажер",
        sd_cat1="Велотренажеры",
        group=_CARDIO,
        subcats=("Велоэргометры", "Колодочные велотренажеры", "Горизонтальные велотренажеры"),
        descr=("велотренажер вертикальный", "спин-байк", "велотренажер горизонтальный"),
        extras=("Велоэргометр", "Спин-байк", "горизонтальный"),
        alt=("Велоэргометр", "Спин-байк", "Велотренажёр", "Спинбайк"),
        prefixes=("B", "U", "SB", "BK", "V", "X"),
        price=(35000, 0.6),
        aspect=0.95,
        db_weight=0.16,
        query_weight=0.16,
    ),
    _Category(
        target="trenazhery_na_svobodnykh_vesakh",
        noun="Силовой тренажер",
        plural="Тренажеры на свободных весах",
        sd_noun="Тренажер",
        sd_cat1="Силовые тренажеры",
        group=_STRENGTH,
        subcats=(
            "Со свободными весами",
            "Со свободными весами",
            "Со свободными весами",
            "Со встроенными весами",
        ),
        descr=("скамья для жима", "скамья Скотта", "стойка для приседаний", "тренажер для ног"),
        extras=("Скамья для жима", "Скамья Скотта", "Стойка для приседаний", "Жим ногами"),
        alt=("Скамья", "Силовой тренажер", "Стойка", "Тренажер"),
        prefixes=("PL", "GB", "BW", "PB", "SC", "G", "M"),
        price=(45000, 0.8),
        aspect=1.2,
        db_weight=0.17,
        query_weight=0.15,
    ),
    _Category(
        target="multistantsii",
        noun="Мультистанция",
        plural="Мультистанции",
        sd_noun="Тренажер",
        sd_cat1="Мультистанции и",
        group=_STRENGTH,
        subcats=("Силовые комплексы", "Мультистанции"),
        descr=("силовой комплекс", "мультистанция"),
        extras=("Силовой комплекс", ""),
        alt=("Силовой комплекс", "Многофункциональный тренажер", "Кроссовер", "Силовая станция"),
        prefixes=("G", "M", "MS", "D"),
        price=(110000, 0.7),
        aspect=1.0,
        db_weight=0.09,
        query_weight=0.12,
    ),
    _Category(
        target="grebnye_trenazhery",
        noun="Гребной тренажер",
        plural="Гребные тренажеры",
        sd_noun="Гребной тренажер",
        sd_cat1="Гребные тренажеры",
        group=_CARDIO,
        subcats=("Магнитные гребные тренажеры", "Механические гребные тренажеры", "Водные гребные тренажеры"),
        descr=("гребной тренажер магнитный", "гребной тренажер воздушный", "гребной тренажер водный"),
        extras=("", "воздушный", "с водным сопротивлением"),
        alt=("Гребной тренажёр", "Тренажер для гребли", "Гребля"),
        prefixes=("R", "RW", "WR"),
        price=(70000, 0.6),
        aspect=2.4,
        db_weight=0.08,
        query_weight=0.12,
    ),
    _Category(
        target="steppery",
        noun="Степпер",
        plural="Степперы",
        sd_noun="Степпер",
        sd_cat1="Степперы",
        group=_CARDIO,
        subcats=("Гидравлические степперы", "Министепперы", "Лестницы"),
        descr=("степпер с поручнем", "министеппер", "степпер лестница"),
        extras=("с поручнем", "Министеппер", "лестница"),
        alt=("Степ-тренажер", "Кардиостеппер", "Степ-машина"),
        prefixes=("S", "SC", "ST", "E"),
        price=(30000, 0.9),
        aspect=0.75,
        db_weight=0.07,
        query_weight=0.13,
    ),
    _Category(
        target="batuty",
        noun="Батут",
        plural="Батуты",
        sd_noun="Батут",
        sd_cat1="Батуты",
        group=_OUTDOOR,
        subcats=("Батуты с сеткой", "Батуты без сетки", "Детские батуты"),
        descr=("батут с защитной сеткой", "батут без сетки", "батут детский"),
        extras=("с защитной сеткой", "без сетки", "детский"),
        alt=("Батут каркасный", "Батут для дачи"),
        prefixes=("J", "FT", "TR"),
        price=(18000, 0.5),
        aspect=1.1,
        db_weight=0.10,
        query_weight=0.0,
    ),
)
_CAT = {c.target: c for c in CATEGORIES}
QUERY_TARGETS: tuple[str, ...] = tuple(c.target for c in CATEGORIES if c.query_weight > 0)
DATABASE_ONLY_TARGETS: tuple[str, ...] = tuple(c.target for c in CATEGORIES if c.query_weight == 0)

# Invented brands; most make several categories so the brand alone does not give the category.
_T = {c.target[:4]: c.target for c in CATEGORIES}
_BRANDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # (canonical spelling, alternative spelling, categories by 4-letter prefix)
    ("NordFit", "NORDFIT", ("bego", "velo", "elli", "greb")),
    ("Iron Atlas", "IRON ATLAS", ("tren", "mult", "step")),
    ("KardioPro", "Kardio Pro", ("bego", "elli", "velo", "step")),
    ("VeloMax", "VELOMAX", ("velo", "elli", "greb")),
    ("FERRUM", "Ferrum", ("tren", "mult")),
    ("AeroLine", "AEROLINE", ("bego", "greb", "velo", "batu")),
    ("TITANOV", "Titanov", ("bego", "elli", "tren", "mult")),
    ("Helix", "HELIX", ("elli", "velo", "step", "greb")),
    ("ZenFit", "ZENFIT", ("bego", "velo", "batu")),
    ("BARS", "Bars", ("tren", "mult", "velo")),
    ("Irbis Sport", "IRBIS", ("bego", "elli", "step", "batu")),
    ("VOLNA", "Volna", ("greb", "velo")),
    ("ProStep", "PRO STEP", ("step", "bego", "elli")),
    ("SkyJump", "SKYJUMP", ("batu", "step")),
    ("Body-Form", "BodyForm", ("tren", "mult", "bego")),
    ("Atlet-Pro", "ATLET PRO", ("tren", "mult", "velo", "greb")),
    ("Grand Fitness", "GRAND FITNESS", ("bego", "elli", "velo", "mult")),
    ("Kinetix", "KINETIX", ("elli", "greb", "step", "tren")),
    ("Magnus", "MAGNUS", ("tren", "mult", "bego")),
    ("Sfera", "SFERA", ("batu", "velo", "elli")),
)
_SERIES = (
    "Runup",
    "Concept",
    "Peak",
    "Nexus",
    "Orbit",
    "Storm",
    "Vector",
    "Pulse",
    "Flex",
    "Comfortline",
    "Crossline",
    "Classic",
    "Elite",
    "Smart",
    "Neo",
    "Air",
    "Force",
    "Arena",
    "Trend",
    "Motion",
    "Sprint",
    "Ultra",
    "Prime",
    "Home",
    "Spirit",
    "Delta",
    "Sigma",
    "Omega",
)
_SUFFIXES = ("", "", "", "", "HRC", "Plus", "II", "PRO", "Lite", "New")

# Frame palettes: (Russian colour name, RGB); accents are free colours.
_FRAMES = (
    ("черный", (32, 32, 36)),
    ("графит", (72, 74, 80)),
    ("серебристый", (176, 178, 186)),
    ("белый", (232, 232, 230)),
    ("синий", (34, 56, 120)),
    ("красный", (160, 36, 36)),
)
_ACCENTS = (
    (210, 40, 40),
    (240, 120, 20),
    (30, 110, 210),
    (40, 160, 70),
    (235, 200, 30),
    (20, 170, 190),
    (150, 60, 170),
    (120, 120, 120),
    (250, 250, 250),
)

# ---------------------------------------------------------------------------------------------- small utils


def _pick(rng: np.random.Generator, seq: Sequence[Any]) -> Any:
    return seq[int(rng.integers(len(seq)))]


def _uni(rng: np.random.Generator, lo: float, hi: float, step: float = 1.0) -> float:
    """Uniform value on a grid of `step`."""
    return lo + step * int(rng.integers(int(round((hi - lo) / step)) + 1))


def _num(x: float) -> str:
    """Russian number: decimal comma, no trailing zeros."""
    return (f"{x:.2f}".rstrip("0").rstrip(".")).replace(".", ",")


def _spread(rng: np.random.Generator, n: int, weights: Sequence[float]) -> np.ndarray:
    """Labels 0..len(weights)-1 for n items in the given shares, each present at least once when n allows."""
    w = np.asarray(weights, dtype=float) / float(np.sum(weights))
    counts = np.floor(w * n).astype(int)
    if n >= len(w):
        counts = np.maximum(counts, 1)
    while counts.sum() > n:
        counts[int(np.argmax(counts))] -= 1
    rest = n - int(counts.sum())
    order = np.argsort(-(w * n - np.floor(w * n)), kind="stable")
    for i in range(rest):
        counts[order[i % len(w)]] += 1
    return rng.permutation(np.repeat(np.arange(len(w)), counts))


# ---------------------------------------------------------------------------------------------- SKUs


@dataclass
class _Sku:
    sku: str
    target: str
    variant: int
    brand: tuple[str, str]  # canonical, alternative spelling
    series: str
    code: str
    suffix: str
    article: str
    price: float
    color: str
    specs: list[tuple[str, str]]
    traits: dict[str, Any]
    generic: list[tuple[str, str]] = field(default_factory=list)  # specs every category has
    about: str = ""  # the brand's blurb, the same for all its categories


def _dims(rng: np.random.Generator, lo: tuple[int, int, int], hi: tuple[int, int, int]) -> str:
    return " х ".join(str(int(_uni(rng, a, b))) for a, b in zip(lo, hi, strict=True)) + " см"


def _common_tail(
    rng: np.random.Generator, weight: tuple[int, int], user: tuple[int, int]
) -> list[tuple[str, str]]:
    return [
        ("Вес", f"{int(_uni(rng, *weight))} кг"),
        ("Максимальный вес пользователя", f"{int(_uni(rng, *user, 10))} кг"),
        ("Гарантия", _pick(rng, ("1 год", "2 года", "3 года", "5 лет"))),
        ("Страна изготовления", _pick(rng, ("Китай", "Тайвань", "Россия", "Китай"))),
    ]


def _specs(rng: np.random.Generator, target: str, variant: int) -> list[tuple[str, str]]:
    """Characteristics (key, value) of one SKU; the values are the SKU's own."""
    pulse = ("сенсоры на поручнях", "сенсоры / кардиопояс (в комплекте)", "нагрудный датчик (опция)", "нет")
    console = ("LCD", "LED", 'LCD 5.5"', 'цветной TFT 7"', "ЖК-дисплей")
    if target == "begovye_dorozhki":
        hi = _uni(rng, 10, 22)
        out = [
            ("Тип дорожки", ("электрическая", "механическая", "складная электрическая")[variant]),
            ("Скорость", f"{_num(_pick(rng, (0.8, 1.0, 1.0)))}-{int(hi)} км/ч"),
            (
                "Размер бегового полотна (Дх Ш)",
                f"{int(_uni(rng, 110, 160, 2))} х {int(_uni(rng, 38, 60, 2))} см",
            ),
            ("Наклон бегового полотна", _pick(rng, ("нет", "0-12%", "0-15%", "3 уровня ручной"))),
            ("Кол-во программ", str(int(_uni(rng, 3, 36)))),
            ("Измерение пульса", _pick(rng, pulse)),
            ("Складывание", _pick(rng, ("да", "нет", "гидравлическое"))),
            ("Габариты (Дх Шх В)", _dims(rng, (150, 65, 120), (215, 95, 150))),
        ]
        if variant != 1:  # motorised
            out.insert(2, ("Мощность двигателя", f"{_num(_uni(rng, 1.25, 4.0, 0.25))} л.с."))
        return out + _common_tail(rng, (35, 140), (100, 180))
    if target == "ellipticheskie_trenazhery":
        out = [
            ("Тип эллиптического тренажера", _pick(rng, ("домашний", "полукоммерческий", "коммерческий"))),
            ("Система нагружения", ("магнитная", "электромагнитная")[variant]),
            ("Кол-во уровней нагрузки", str(int(_pick(rng, (8, 16, 20, 24, 32))))),
            ("Маховик", f"{int(_uni(rng, 6, 24))} кг"),
            ("Длина шага", f"{int(_uni(rng, 30, 56))} см"),
            ("Измерение пульса", _pick(rng, pulse)),
            ("Консоль", _pick(rng, console)),
            ("Кол-во программ", str(int(_uni(rng, 1, 30)))),
            ("Габариты (Дх Шх В)", _dims(rng, (110, 55, 140), (200, 75, 175))),
        ]
        return out + _common_tail(rng, (30, 120), (100, 160))
    if target == "velotrenazhery":
        out = [
            ("Тип велотренажера", _pick(rng, ("для домашнего использования", "полупрофессиональный"))),
            ("Посадка", ("вертикальная", "вертикальная (спин-байк)", "горизонтальная")[variant]),
            ("Система нагружения", ("магнитная", "колодочная", "электромагнитная")[variant]),
            ("Кол-во уровней нагрузки", str(int(_pick(rng, (8, 16, 24, 32))))),
            ("Вес маховика", f"{int(_uni(rng, 4, 22))} кг"),
            ("Регулировка положения сидения", _pick(rng, ("по вертикали", "по вертикали и горизонтали"))),
            ("Измерение пульса", _pick(rng, pulse)),
            ("Консоль", _pick(rng, console)),
            ("Габариты (Дх Шх В)", _dims(rng, (80, 45, 110), (160, 70, 145))),
        ]
        return out + _common_tail(rng, (20, 70), (100, 150))
    if target == "trenazhery_na_svobodnykh_vesakh":
        exercise = ("жим лежа", "бицепс", "приседания", "жим ногами")[variant]
        out = [
            ("Тип тренажера", "свободный вес" if variant < 3 else "встроенные веса"),
            ("Упражнения", exercise),
            ("Нагрузка", f"до {int(_uni(rng, 100, 400, 10))} кг"),
            (
                "Рама",
                f"сталь, профиль {int(_pick(rng, (40, 50, 60, 80)))}х{int(_pick(rng, (40, 50, 60)))} мм",
            ),
            ("Регулировка", _pick(rng, ("по высоте", "угол спинки", "нет", "сиденье и спинка"))),
            ("Габариты (Дх Шх В)", _dims(rng, (80, 50, 60), (220, 160, 230))),
        ]
        return (
            out
            + _common_tail(rng, (15, 250), (120, 200))[:1]
            + [("Гарантия", _pick(rng, ("1 год", "2 года")))]
        )
    if target == "multistantsii":
        moves = (
            "машина Смита",
            "кроссовер",
            "верхняя тяга",
            "нижняя тяга",
            "жим от груди",
            "разгибание ног",
            "турник",
            "брусья",
            "баттерфляй",
        )
        picked = sorted(rng.choice(len(moves), size=int(rng.integers(3, 6)), replace=False))
        out = [
            (
                "Тип тренажера",
                _pick(rng, ("для домашнего использования", "для домашнего и коммерческого использования")),
            ),
            ("Упражнения", ", ".join(moves[i] for i in picked)),
            ("Весовой стек", f"{int(_uni(rng, 45, 150, 5))} кг"),
            ("Тросы", "в нейлоновой оболочке"),
            ("Рама", "сталь"),
            ("Габариты (Дх Шх В)", _dims(rng, (150, 100, 200), (260, 230, 240))),
        ]
        return (
            out
            + _common_tail(rng, (80, 450), (120, 200))[:1]
            + [("Гарантия", _pick(rng, ("2 года", "3 года")))]
        )
    if target == "grebnye_trenazhery":
        out = [
            ("Система нагружения", ("магнитная", "воздушная", "водная")[variant]),
            ("Кол-во уровней нагрузки", str(int(_pick(rng, (1, 8, 10, 16))))),
            ("Материал рельс", _pick(rng, ("алюминий", "сталь"))),
            ("Длина рельса", f"{int(_uni(rng, 110, 150))} см"),
            ("Консоль", _pick(rng, console)),
            ("Складывание", _pick(rng, ("да", "нет", "вертикальное хранение"))),
            ("Габариты (Дх Шх В)", _dims(rng, (190, 45, 50), (245, 60, 110))),
        ]
        return out + _common_tail(rng, (25, 60), (110, 160))
    if target == "steppery":
        out = [
            ("Тип степпера", ("домашний", "министеппер", "профессиональный (лестница)")[variant]),
            ("Система нагружения", ("2 гидроцилиндра", "гидроцилиндры", "электромагнитная")[variant]),
            ("Регулировка нагрузки", _pick(rng, ("нет", "да", "12 уровней"))),
            ("Показания консоли", "время, количество шагов, калории"),
            ("Питание", ("не требует", "батарейки", "от сети 220 В")[variant]),
            ("Габариты (Дх Шх В)", _dims(rng, (40, 35, 20), (140, 90, 200))),
        ]
        return out + _common_tail(rng, (8, 200), (100, 160))
    diameter = int(_pick(rng, (183, 244, 252, 305, 312, 366, 427)))
    out = [
        ("Диаметр", f"{diameter} см ({_num(diameter / 30.48)} ft)"),
        ("Защитная сетка", ("внешняя", "нет", "внутренняя")[variant]),
        ("Кол-во пружин", str(int(_uni(rng, 36, 108, 6)))),
        ("Лестница", _pick(rng, ("в комплекте", "нет"))),
        ("Материал рамы", "оцинкованная сталь"),
        ("Максимальный вес пользователя", f"{int(_uni(rng, 60, 150, 10))} кг"),
        ("Гарантия", "1 год"),
    ]
    return out


def _generic_specs(rng: np.random.Generator, sku: _Sku) -> list[tuple[str, str]]:
    """Fields every card has whatever the category; their values follow brand, colour or chance."""
    weight = int(_uni(rng, 12, 160))
    return [
        (
            "Назначение",
            _pick(rng, ("для дома", "для дома и фитнес-клуба", "полупрофессиональное", "коммерческое")),
        ),
        (
            "Производитель",
            f"{sku.brand[0]} ({_pick(rng, ('Германия', 'США', 'Тайвань', 'Китай', 'Россия'))})",
        ),
        ("Цвет рамы", sku.color),
        (
            "Материал рамы",
            _pick(rng, ("сталь", "сталь с порошковым покрытием", "алюминий", "сталь, пластик")),
        ),
        ("Вес нетто", f"{weight} кг"),
        ("Вес брутто", f"{weight + int(_uni(rng, 3, 15))} кг"),
        ("Размер упаковки", _dims(rng, (40, 30, 15), (220, 100, 60))),
        ("Комплектация", _pick(rng, ("тренажер, инструкция", "тренажер, инструкция, крепеж", "базовая"))),
        ("Сертификат", _pick(rng, ("EAC", "CE, EAC", "ISO 9001", "ТР ТС"))),
        ("Сборка", _pick(rng, ("требуется", "частичная", "по запросу"))),
    ]


# Shop service text; every shop (the company too) writes some of it on every card, so in long texts
# the shared boilerplate outweighs the few category-specific words.
_BOILERPLATE: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Доставка {} бесплатно при заказе от 10 000 руб.",
        ("по Москве", "по Москве и области", "в пределах МКАД"),
    ),
    ("Сборка и установка {} по запросу.", ("тренажера специалистом", "мастером", "в день доставки")),
    (
        "Официальная гарантия {}.",
        ("производителя", "магазина", "производителя, сервис в авторизованных центрах"),
    ),
    ("Оплата {}.", ("наличными или картой", "в кредит или рассрочку 0% на 12 месяцев", "по счету для юрлиц")),
    ("Возврат и обмен товара надлежащего качества в течение {} дней.", ("7", "14", "30")),
    ("Товар сертифицирован и соответствует требованиям {}.", ("ТР ТС", "ГОСТ", "ЕАЭС")),
    (
        "Перед покупкой проконсультируйтесь с {}.",
        ("менеджерами по телефону 8-800", "нашими консультантами", "врачом"),
    ),
    (
        "Производитель оставляет за собой право изменять {} без уведомления.",
        ("комплектацию", "внешний вид", "характеристики"),
    ),
    ("Цвет изделия на {} может отличаться от реального.", ("фото", "фотографиях", "мониторе")),
    ("Самовывоз {}.", ("со склада в день заказа", "из пункта выдачи", "из шоурума")),
    (
        "Подходит для {}.",
        ("регулярных тренировок всей семьи", "похудения и поддержания формы", "дома и офиса"),
    ),
    ("Инструкция {} в комплекте.", ("по сборке на русском языке", "по эксплуатации", "и крепеж")),
    ("{} конструкция и современный дизайн.", ("Надежная", "Прочная", "Компактная")),
    (
        "Перед началом тренировок рекомендуется {}.",
        ("консультация врача", "разминка", "прочитать инструкцию"),
    ),
    ("Доставка по России {}.", ("транспортными компаниями", "за 3-10 дней", "курьерской службой")),
    (
        "Подъем на этаж {}.",
        ("бесплатно при наличии лифта", "оплачивается отдельно", "по тарифам службы доставки"),
    ),
    ("Скидка {} при заказе на сайте.", ("5%", "3%", "до 10%")),
    ("Тренажер {} на нашем складе.", ("в наличии", "под заказ", "есть")),
    ("Упаковка: {}.", ("картонная коробка", "2 коробки", "коробка и пленка")),
    ("Сервисный центр {}.", ("в Москве", "в Санкт-Петербурге", "в вашем городе")),
)


def _traits(rng: np.random.Generator, variant: int) -> dict[str, Any]:
    """Drawing traits of one SKU: frame/accent colours, proportions, variant."""
    fi = int(rng.integers(len(_FRAMES)))
    frame = np.clip(np.asarray(_FRAMES[fi][1]) + rng.integers(-10, 11, 3), 0, 255)
    accent = np.clip(np.asarray(_pick(rng, _ACCENTS)) + rng.integers(-15, 16, 3), 0, 255)
    return {
        "frame_name": _FRAMES[fi][0],
        "frame": tuple(int(v) for v in frame),
        "accent": tuple(int(v) for v in accent),
        "dark": tuple(int(v) for v in rng.integers(15, 60, 3)),
        "p": tuple(float(v) for v in rng.random(8)),
        "thick": float(rng.uniform(0.8, 1.3)),
        "variant": variant,
    }


def _sibling_traits(rng: np.random.Generator, base: dict[str, Any]) -> dict[str, Any]:
    """A family member: same colours mostly, proportions nudged."""
    out = dict(base)
    out["p"] = tuple(float(np.clip(v + rng.normal(0, 0.18), 0, 1)) for v in base["p"])
    if rng.random() < 0.5:
        out["accent"] = tuple(
            int(v) for v in np.clip(np.asarray(_pick(rng, _ACCENTS)) + rng.integers(-15, 16, 3), 0, 255)
        )
    return out


def _brand_about(rng: np.random.Generator, brand: str, series: list[str]) -> str:
    """A brand's marketing paragraph; shops paste it into every card of the brand, whatever the category."""
    country = _pick(rng, ("Германии", "США", "Тайваня", "Италии", "России", "Нидерландов"))
    year = int(rng.integers(1975, 2016))
    motto = _pick(
        rng,
        (
            "качество, проверенное временем",
            "технологии для вашего здоровья",
            "спорт для всей семьи",
            "профессиональный уровень дома",
            "надежность и комфорт",
        ),
    )
    return (
        f"{brand} — бренд спортивного оборудования из {country}, основан в {year} году. "
        f"Линейки {brand} {', '.join(series)}: {motto}. Продукция {brand} выпускается на собственных "
        f"заводах и проходит контроль качества {brand} Quality Control."
    )


def _make_code(rng: np.random.Generator, prefix: str, style: int, number: int) -> str:
    if style == 0:
        return f"{prefix}-{number}"
    if style == 1:
        return f"{prefix}{number // 10 if number >= 100 else number}"
    return f"{prefix}-{number}{_pick(rng, ('A', 'M', 'T', 'S', 'X'))}"


def _build_skus(rng: np.random.Generator, counts: dict[str, int]) -> list[_Sku]:
    """Product models in families (same brand/series, neighbouring codes, similar looks)."""
    series_pool = list(rng.permutation(len(_SERIES)))
    brand_series = {
        b[0]: [_SERIES[series_pool[(3 * i + j) % len(_SERIES)]] for j in range(3)]
        for i, b in enumerate(_BRANDS)
    }
    brand_style = {b[0]: int(rng.integers(3)) for b in _BRANDS}
    # a brand reuses its model numbers (and often its own code letters) in every category it makes, so
    # "X T-300" may be a treadmill and "X E-300" or even "X NF-300" an elliptical: codes mislead text matching
    numbers = (10, 20, 30, 50, 70, 100, 200, 300, 400, 500, 600, 700, 800, 900)
    brand_numbers = {b[0]: [int(_pick(rng, numbers)) for _ in range(3)] for b in _BRANDS}
    brand_prefix = {b[0]: "".join(ch for ch in b[0].upper() if ch.isalpha())[:2] for b in _BRANDS}
    about = {b[0]: _brand_about(rng, b[0], brand_series[b[0]]) for b in _BRANDS}
    used: set[tuple[str, str]] = set()
    skus: list[_Sku] = []
    for cat in CATEGORIES:
        # a brand mostly makes its own categories but now and then a model of any other one
        share = _norm([3.0 if any(_T[k] == cat.target for k in b[2]) else 1.0 for b in _BRANDS])
        made = 0
        while made < counts[cat.target]:
            brand = _BRANDS[int(rng.choice(len(_BRANDS), p=share))]
            series = _pick(rng, brand_series[brand[0]]) if rng.random() < 0.75 else ""
            prefix = brand_prefix[brand[0]] if rng.random() < 0.65 else _pick(rng, cat.prefixes)
            variant = int(rng.integers(len(cat.subcats)))
            base_traits = _traits(rng, variant)
            base_price = float(np.exp(rng.normal(np.log(cat.price[0]), cat.price[1])))
            if rng.random() < 0.7:
                number = int(_pick(rng, brand_numbers[brand[0]]))
            else:
                number = int(_pick(rng, numbers)) + int(rng.integers(0, 10)) * 10
            for member in range(int(rng.integers(1, 3))):
                if made >= counts[cat.target]:
                    break
                code = _make_code(
                    rng, prefix, brand_style[brand[0]], number + member * (10 if number >= 100 else 2)
                )
                if (brand[0], code) in used:
                    continue
                used.add((brand[0], code))
                traits = base_traits if member == 0 else _sibling_traits(rng, base_traits)
                sku = _Sku(
                    sku=f"S{len(skus):05d}",
                    target=cat.target,
                    variant=variant,
                    brand=(brand[0], brand[1]),
                    series=series,
                    code=code,
                    suffix=_pick(rng, _SUFFIXES),
                    article=f"{brand[0][:2].upper()}{prefix}-{int(rng.integers(100, 1000))}",
                    price=base_price * (1.0 + 0.12 * member) * float(rng.uniform(0.95, 1.05)),
                    color=traits["frame_name"],
                    specs=[],
                    traits=traits,
                )
                sku.specs = _specs(rng, cat.target, variant)
                sku.generic = _generic_specs(rng, sku)
                sku.about = about[brand[0]]
                skus.append(sku)
                made += 1
    return skus


# ---------------------------------------------------------------------------------------------- dealers


@dataclass(frozen=True)
class _Dealer:
    name: str
    weight: float  # share of database listings
    sells: tuple[str, ...]  # targets (empty: all)
    templates: tuple[tuple[str, float], ...]  # title templates and weights
    code_style: tuple[str, ...]  # model-code spellings
    brand_style: str  # canonical | alt | upper | title
    cats: str  # cat_1..3 layout name
    spec_format: tuple[str, str, bool]  # key/value separator, item separator, lower-case keys
    spec_share: float  # share of characteristic fields written
    spec_empty: float  # probability of an empty characteristics text
    price_round: str  # "90" | "00" | "1"
    price_bias: float
    photo: dict[str, Any]
    formats: tuple[tuple[str, str, float], ...]  # (PIL format, mode, weight)
    ext_jpeg: str = "jpg"
    misfile: float = 0.08  # share of cards filed under a look-alike category
    boiler: tuple[int, int] = (2, 16)  # service sentences per card
    boiler_first: bool = False  # service text before the characteristics
    about: float = 0.6  # share of cards carrying the brand's blurb
    vague: float = 0.35  # share of cards naming no category at all (title and category levels)


_DEALERS: tuple[_Dealer, ...] = (
    _Dealer(
        name=QUERY_DEALER,
        weight=0.0,
        sells=(),
        templates=(
            ("{sd_noun} {BRAND} {series} {code} {suffix} {extra_sd}", 0.85),
            ("{sd_noun} {brand} {series} {code} {suffix}, Арт. {art}", 0.15),
        ),
        code_style=("keep",),
        brand_style="upper",
        cats="sportdoma",
        spec_format=(":", " ", False),
        spec_share=1.0,
        spec_empty=0.0,
        price_round="90",
        price_bias=0.0,
        photo={
            "bg": ("white", "white", "grey"),
            "size": (360, 600),
            "aspect": (1.0, 4 / 3),
            "scale": (0.5, 0.95),
            "shift": 0.12,
            "rot": 1.0,
            "flip": 0.0,
            "quality": (88, 92),
            "watermark": 0.0,
            "noise": 2,
            "shadow": 0.0,
        },
        formats=(("JPEG", "RGB", 0.9), ("JPEG", "L", 0.05), ("JPEG", "CMYK", 0.05)),
        ext_jpeg="jpeg",
        misfile=0.0,
    ),
    _Dealer(
        name="sportbaza",
        weight=0.22,
        sells=(),
        templates=(
            ("{noun} {brand} {series} {code}", 0.25),
            ("{alt} {brand} {code} {suffix}", 0.15),
            ("{generic} {brand} {series} {code}", 0.25),
            ("{brand} {series} {code} {suffix}", 0.35),
        ),
        code_style=("keep", "nohyphen"),
        brand_style="canonical",
        cats="group_plural_brand",
        spec_format=(": ", "; ", False),
        spec_share=0.5,
        spec_empty=0.02,
        price_round="90",
        price_bias=0.02,
        photo={
            "bg": ("white", "grey", "room"),
            "size": (300, 500),
            "aspect": (1.0,),
            "scale": (0.45, 1.05),
            "shift": 0.15,
            "rot": 2.0,
            "flip": 0.1,
            "quality": (80, 90),
            "watermark": 0.3,
            "noise": 3,
            "shadow": 0.3,
        },
        formats=(("JPEG", "RGB", 1.0),),
    ),
    _Dealer(
        name="fitmarket",
        weight=0.2,
        sells=(),
        templates=(("{BRAND} {series} {code} {descr}", 0.25), ("{BRAND} {series} {code} {suffix}", 0.75)),
        code_style=("keep", "space"),
        brand_style="upper",
        cats="plural_brand_model",
        spec_format=(" — ", ". ", False),
        spec_share=0.4,
        spec_empty=0.05,
        price_round="00",
        price_bias=-0.03,
        photo={
            "bg": ("transparent", "clutter"),
            "size": (240, 480),
            "aspect": (4 / 3, 3 / 2),
            "scale": (0.7, 1.2),
            "shift": 0.12,
            "rot": 0.0,
            "flip": 0.5,
            "quality": (90, 90),
            "watermark": 0.0,
            "noise": 2,
            "shadow": 0.0,
        },
        formats=(("PNG", "RGBA", 0.65), ("PNG", "RGB", 0.35)),
    ),
    _Dealer(
        name="kardiomir",
        weight=0.16,
        sells=tuple(c.target for c in CATEGORIES if c.target not in ("batuty", "multistantsii")),
        templates=(
            ("Тренажер {brand} {code} (арт. {art})", 0.4),
            ("{alt} {brand} {code} {suffix}", 0.35),
            ("{noun} {brand} {code}", 0.25),
        ),
        code_style=("keep", "lower"),
        brand_style="title",
        cats="generic_subcat",
        spec_format=(": ", ", ", True),
        spec_share=0.35,
        spec_empty=0.05,
        price_round="1",
        price_bias=0.04,
        photo={
            "bg": ("gradient", "tint", "clutter", "dark"),
            "size": (200, 420),
            "aspect": (1.0, 3 / 4),
            "scale": (0.3, 0.65),
            "shift": 0.22,
            "rot": 3.0,
            "flip": 0.2,
            "quality": (70, 85),
            "watermark": 0.6,
            "noise": 5,
            "shadow": 0.5,
        },
        formats=(("WEBP", "RGB", 0.8), ("JPEG", "RGB", 0.2)),
        misfile=0.08,
    ),
    _Dealer(
        name="atletplus",
        weight=0.14,
        sells=tuple(c.target for c in CATEGORIES if c.target != "batuty"),
        templates=(
            ("{noun} {brand} {code} {series} {suffix}", 0.4),
            ("{brand} {code} {series} {suffix}", 0.6),
        ),
        code_style=("keep", "nohyphen"),
        brand_style="upper",
        cats="plural_only",
        spec_format=(": ", " | ", False),
        spec_share=0.4,
        spec_empty=0.0,
        price_round="00",
        price_bias=0.01,
        photo={
            "bg": ("studio", "room", "white"),
            "size": (320, 500),
            "aspect": (1.0,),
            "scale": (0.55, 0.95),
            "shift": 0.15,
            "rot": 1.5,
            "flip": 0.0,
            "quality": (85, 95),
            "watermark": 0.2,
            "noise": 3,
            "shadow": 0.8,
        },
        formats=(("JPEG", "RGB", 0.7), ("JPEG", "CMYK", 0.3)),
    ),
    _Dealer(
        name="trenazhershop",
        weight=0.16,
        sells=(),
        templates=(
            ("{brand} {series} {code}", 0.5),
            ("{alt} {brand} {code}", 0.3),
            ("{brand} {code} {extra}", 0.2),
        ),
        code_style=("keep", "nohyphen", "hyphenate"),
        brand_style="alt",
        cats="site_group_lower",
        spec_format=(": ", "; ", False),
        spec_share=0.3,
        spec_empty=0.3,
        price_round="90",
        price_bias=-0.02,
        photo={
            "bg": ("grey", "clutter", "texture", "room"),
            "size": (200, 400),
            "aspect": (4 / 3, 1.0, 3 / 4),
            "scale": (0.4, 1.1),
            "shift": 0.2,
            "rot": 4.0,
            "flip": 0.3,
            "quality": (60, 80),
            "watermark": 0.4,
            "noise": 6,
            "shadow": 0.2,
        },
        formats=(("JPEG", "RGB", 0.6), ("JPEG", "L", 0.2), ("PNG", "L", 0.2)),
        misfile=0.1,
    ),
    _Dealer(
        name="olimpsport",
        weight=0.12,
        sells=tuple(c.target for c in CATEGORIES if c.target != "steppery"),
        templates=(
            ("{noun} {brand} {code} {suffix}, {color}", 0.3),
            ("{generic} {brand} {series} {code}", 0.3),
            ("{brand} {series} {code}, {color}", 0.4),
        ),
        code_style=("space", "keep"),
        brand_style="title",
        cats="brand_plural_subcat",
        spec_format=(":", "\n", False),
        spec_share=0.25,
        spec_empty=0.0,
        price_round="90",
        price_bias=0.03,
        photo={
            "bg": ("gradient", "white", "room", "dark"),
            "size": (280, 500),
            "aspect": (1.0, 16 / 9),
            "scale": (0.5, 0.9),
            "shift": 0.15,
            "rot": 2.0,
            "flip": 0.15,
            "quality": (75, 90),
            "watermark": 0.1,
            "noise": 4,
            "shadow": 0.4,
        },
        formats=(("JPEG", "RGB", 0.5), ("WEBP", "RGBA", 0.25), ("PNG", "P", 0.25)),
    ),
)
_GENERIC = {_CARDIO: "Кардиотренажер", _STRENGTH: "Силовой тренажер", _OUTDOOR: "Батут"}
_GENERIC_CAT1 = {_CARDIO: "Кардиотренажеры", _STRENGTH: "Тренажеры", _OUTDOOR: "Тренажеры"}
# look-alike categories, for shops that file a product in the wrong place
_CONFUSABLE = {
    "begovye_dorozhki": "ellipticheskie_trenazhery",
    "ellipticheskie_trenazhery": "velotrenazhery",
    "velotrenazhery": "ellipticheskie_trenazhery",
    "trenazhery_na_svobodnykh_vesakh": "multistantsii",
    "multistantsii": "trenazhery_na_svobodnykh_vesakh",
    "grebnye_trenazhery": "velotrenazhery",
    "steppery": "ellipticheskie_trenazhery",
    "batuty": "steppery",
}
DATABASE_DEALERS: tuple[str, ...] = tuple(d.name for d in _DEALERS if d.name != QUERY_DEALER)


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


def _brand_text(sku: _Sku, style: str) -> str:
    canonical, alt = sku.brand
    return {"canonical": canonical, "alt": alt, "upper": canonical.upper(), "title": canonical.title()}[style]


_CATEGORY_FIELDS = ("{noun}", "{sd_noun}", "{alt}", "{descr}", "{extra}", "{generic}")


def _title(rng: np.random.Generator, dealer: _Dealer, sku: _Sku, vague: bool = False) -> str:
    """A shop's title; a `vague` card names no category (brand, series and model only) where the shop can."""
    cat = _CAT[sku.target]
    templates = dealer.templates
    if vague:
        plain = tuple(t for t in templates if not any(f in t[0] for f in _CATEGORY_FIELDS))
        templates = plain or templates
    template = templates[int(rng.choice(len(templates), p=_norm([w for _, w in templates])))][0]
    fields = {
        "noun": cat.noun,
        "sd_noun": cat.sd_noun,
        "brand": _brand_text(sku, dealer.brand_style),
        "BRAND": sku.brand[0].upper(),
        "series": sku.series,
        "code": _code_variant(sku.code, _pick(rng, dealer.code_style)),
        "suffix": sku.suffix,
        "extra": cat.extras[sku.variant],
        "extra_sd": cat.extras[sku.variant] if rng.random() < 0.5 else "",
        "descr": cat.descr[sku.variant],
        "generic": _pick(rng, (_GENERIC[cat.group], "Тренажер")),
        "alt": _pick(rng, cat.alt),
        "art": sku.article,
        "color": sku.color,
    }
    text = " ".join(template.format(**fields).split()).replace(" ,", ",").strip(" ,")
    return text.upper() if dealer.name == "atletplus" else text


def _norm(w: Sequence[float]) -> np.ndarray:
    a = np.asarray(w, dtype=float)
    return a / a.sum()


def _cats(rng: np.random.Generator, dealer: _Dealer, sku: _Sku, vague: bool = False) -> tuple[str, str, str]:
    cat, variant = _CAT[sku.target], sku.variant
    if vague:  # filed under a catch-all section, by brand and series
        section = _pick(rng, (_GENERIC_CAT1[cat.group], "Тренажеры", ""))
        return section, _brand_text(sku, dealer.brand_style), sku.series
    if rng.random() < dealer.misfile:  # filed under a look-alike category by the shop
        cat, variant = _CAT[_CONFUSABLE[sku.target]], 0
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
        return _GENERIC_CAT1[cat.group], sub if u < 0.3 else brand, ""
    if layout == "plural_only":
        return cat.plural if u < 0.5 else cat.group, "", ""
    if layout == "site_group_lower":
        return "Спорт и отдых", cat.group, cat.plural.lower() if u < 0.5 else ""
    return brand, cat.plural if u < 0.5 else cat.group, sub if u < 0.25 else ""  # brand_plural_subcat


def _caracteristics(rng: np.random.Generator, dealer: _Dealer, sku: _Sku) -> str:
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
    picks = rng.choice(len(_BOILERPLATE), size=int(rng.integers(lo, hi + 1)), replace=False)
    service = " ".join(_BOILERPLATE[int(i)][0].format(_pick(rng, _BOILERPLATE[int(i)][1])) for i in picks)
    if rng.random() < dealer.about:
        service = f"{sku.about} {service}"
    if dealer.name == QUERY_DEALER:
        # sportdoma glues some items together without a space, as in the real cards
        text = "".join(f"{k}{kv}{v}" + ("" if rng.random() < 0.3 else " ") for k, v in items).strip()
        return f"{text} {service}".strip()
    tail = "." if sep.startswith(".") else ""
    text = sep.join(f"{k.lower() if lower else k}{kv}{v.rstrip(tail) if tail else v}" for k, v in items)
    return f"{service} {text}".strip() if dealer.boiler_first else f"{text}{sep}{service}".strip()


def _price(rng: np.random.Generator, dealer: _Dealer, sku: _Sku) -> int:
    p = sku.price * (1.0 + dealer.price_bias + rng.normal(0.0, 0.02))
    if dealer.price_round == "90":
        return max(990, int(round(p / 100.0)) * 100 - 10)
    if dealer.price_round == "00":
        return max(1000, int(round(p / 100.0)) * 100)
    return max(999, int(round(p)))


# ---------------------------------------------------------------------------------------------- drawing


class _Pen:
    """Draws in unit coordinates of the object box; sizes relative to the box height."""

    def __init__(self, img: Image.Image, lw: float) -> None:
        self.d = ImageDraw.Draw(img)
        self.w, self.h = img.size
        self.lw = lw

    def pt(self, x: float, y: float) -> tuple[float, float]:
        return (x * (self.w - 1), y * (self.h - 1))

    def line(self, pts: Sequence[tuple[float, float]], col: tuple[int, ...], width: float = 1.0) -> None:
        self.d.line([self.pt(*p) for p in pts], fill=col, width=max(1, round(width * self.lw)), joint="curve")

    def rect(self, x0: float, y0: float, x1: float, y1: float, col: tuple[int, ...]) -> None:
        a, b = self.pt(min(x0, x1), min(y0, y1))
        c, e = self.pt(max(x0, x1), max(y0, y1))
        self.d.rectangle([a, b, max(a, c), max(b, e)], fill=col)

    def poly(self, pts: Sequence[tuple[float, float]], col: tuple[int, ...]) -> None:
        self.d.polygon([self.pt(*p) for p in pts], fill=col)

    def circle(
        self,
        cx: float,
        cy: float,
        r: float,
        col: tuple[int, ...] | None,
        outline: tuple[int, ...] | None = None,
        width: float = 1.0,
    ) -> None:
        x, y = self.pt(cx, cy)
        rr = max(1.0, r * self.h)
        self.d.ellipse(
            [x - rr, y - rr, x + rr, y + rr], fill=col, outline=outline, width=max(1, round(width * self.lw))
        )

    def ellipse(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        col: tuple[int, ...] | None,
        outline: tuple[int, ...] | None = None,
        width: float = 1.0,
    ) -> None:
        a, b = self.pt(min(x0, x1), min(y0, y1))
        c, e = self.pt(max(x0, x1), max(y0, y1))
        self.d.ellipse(
            [a, b, max(a + 1, c), max(b + 1, e)],
            fill=col,
            outline=outline,
            width=max(1, round(width * self.lw)),
        )


def _draw_treadmill(pen: _Pen, t: dict[str, Any]) -> None:
    p, fr, ac, dk = t["p"], t["frame"], t["accent"], t["dark"]
    x0, x1 = 0.04, 0.80 + 0.16 * p[0]
    top, h, inc = 0.78 - 0.06 * p[1], 0.06 + 0.06 * p[2], 0.06 * p[3]
    pen.poly([(x0, top + h), (x1, top + h - inc), (x1, top - inc), (x0, top)], fr)
    pen.line([(x0 + 0.03, top - 0.012), (x1 - 0.1, top - inc * 0.85 - 0.012)], dk, 2.0)
    pen.rect(x0, top + h, x0 + 0.05, 0.97, dk)
    pen.rect(x1 - 0.06, top + h - inc, x1, 0.97, dk)
    if t["variant"] != 1:  # motorised: motor hood
        pen.rect(x1 - 0.18 - 0.05 * p[6], top - inc - 0.07 - 0.04 * p[7], x1 + 0.01, top - inc + 0.02, ac)
    xu, ty = x1 - 0.1, 0.14 + 0.14 * p[4]
    xt = xu - 0.06 - 0.08 * p[5]
    pen.line([(xu, top - inc), (xt, ty)], fr, 2.6)
    cw = 0.1 + 0.08 * p[6]
    pen.rect(xt - cw, ty - 0.08, xt + cw * 0.5, ty + 0.03, dk)
    pen.rect(xt - cw * 0.8, ty - 0.06, xt + cw * 0.3, ty + 0.0, ac)
    pen.line([(xt - 0.02, ty + 0.06), (xt - 0.22 - 0.12 * p[7], ty + 0.14)], fr, 1.8)


def _draw_bike(pen: _Pen, t: dict[str, Any]) -> None:
    p, fr, ac, dk, v = t["p"], t["frame"], t["accent"], t["dark"], t["variant"]
    pen.line([(0.08, 0.95), (0.40, 0.95)], dk, 3.0)
    pen.line([(0.58, 0.95), (0.92, 0.95)], dk, 3.0)
    fx, fy, fr_r = 0.72 + 0.06 * p[0], 0.68, 0.12 + 0.08 * p[1]
    if v == 2:  # recumbent: low seat with backrest
        pen.line([(0.22, 0.95), (0.30, 0.66), (fx, fy)], fr, 3.0)
        pen.rect(0.16, 0.58, 0.42, 0.64, dk)
        pen.line([(0.18, 0.60), (0.08 + 0.05 * p[2], 0.22 + 0.1 * p[3])], dk, 5.0)
    else:
        sx, sy = 0.30 - 0.06 * p[2], 0.32 + 0.08 * p[3]
        pen.line([(0.26, 0.95), (0.38, 0.64), (fx, fy)], fr, 3.0)
        pen.line([(0.38, 0.64), (sx, sy)], fr, 2.6)
        pen.ellipse(sx - 0.11, sy - 0.035, sx + 0.09, sy + 0.03, dk)
    if v == 1:  # spin bike: bare heavy flywheel
        pen.circle(fx + 0.02, fy + 0.04, fr_r + 0.03, dk)
        pen.circle(fx + 0.02, fy + 0.04, fr_r - 0.02, ac)
        pen.circle(fx + 0.02, fy + 0.04, 0.03, dk)
    else:
        pen.circle(fx, fy, fr_r, ac)
        pen.circle(fx, fy, fr_r * 0.5, fr)
    bx, by = 0.74 + 0.06 * p[4], 0.18 + 0.1 * p[5]
    pen.line([(fx - 0.04, fy - 0.04), (bx, by)], fr, 2.6)
    pen.line([(bx, by), (bx - 0.14, by + 0.04)], dk, 2.2)
    if v != 1:
        pen.rect(bx - 0.05, by - 0.07, bx + 0.05, by, dk)
    pen.circle(0.48, 0.74, 0.05, dk)
    pen.line([(0.48, 0.74), (0.53, 0.84)], dk, 1.6)


def _draw_elliptical(pen: _Pen, t: dict[str, Any]) -> None:
    p, fr, ac, dk = t["p"], t["frame"], t["accent"], t["dark"]
    front = p[7] < 0.6  # front- or rear-drive
    fx = 0.80 if front else 0.18
    ox = 0.12 if front else 0.88
    pen.line([(0.05, 0.94), (0.95, 0.94)], dk, 3.0)
    pen.circle(fx, 0.72, 0.13 + 0.07 * p[0], ac)
    pen.circle(fx, 0.72, 0.05, fr)
    pen.line([(fx, 0.72), (ox, 0.86)], fr, 2.4)
    pen.line([(fx, 0.70), (ox + (0.08 if front else -0.08), 0.80)], fr, 2.0)
    pen.rect(ox - 0.06, 0.83, ox + 0.08, 0.86, dk)
    mx = 0.66 if front else 0.36
    top = 0.22 + 0.1 * p[1]
    pen.line([(mx, 0.93), (mx + 0.04, top)], fr, 3.0)
    pen.rect(mx - 0.03, top - 0.08, mx + 0.12, top + 0.01, dk)
    hx = 0.5 + 0.08 * p[2]
    pen.line([(hx - 0.1, 0.82), (hx, 0.05 + 0.08 * p[3])], fr, 2.0)
    pen.line([(hx - 0.04, 0.82), (hx + 0.08, 0.07 + 0.08 * p[4])], ac, 2.0)


def _draw_rower(pen: _Pen, t: dict[str, Any]) -> None:
    p, fr, ac, dk, v = t["p"], t["frame"], t["accent"], t["dark"], t["variant"]
    pen.line([(0.03, 0.88), (0.84, 0.80)], fr, 2.6)
    pen.rect(0.02, 0.86, 0.07, 0.97, dk)
    if v == 2:  # water tank
        pen.ellipse(0.74, 0.48, 0.99, 0.95, (170, 205, 230), outline=ac, width=2.0)
    elif v == 1:  # air fan
        pen.circle(0.88, 0.66, 0.26, dk)
        for k in range(6):
            a = k * math.pi / 3 + p[0]
            pen.line([(0.88, 0.66), (0.88 + 0.09 * math.cos(a), 0.66 + 0.24 * math.sin(a))], ac, 1.5)
    else:
        pen.circle(0.88, 0.70, 0.2 + 0.06 * p[1], ac)
    xs = 0.28 + 0.2 * p[2]
    pen.rect(xs - 0.05, 0.76 - 0.02 * xs, xs + 0.05, 0.83 - 0.02 * xs, dk)
    pen.poly([(0.66, 0.80), (0.72, 0.58), (0.74, 0.60), (0.70, 0.80)], dk)
    top = 0.22 + 0.14 * p[3]
    pen.line([(0.86, 0.6), (0.80 - 0.04 * p[4], top)], fr, 2.0)
    pen.rect(0.76 - 0.04 * p[4], top - 0.12, 0.84 - 0.04 * p[4], top, dk)
    pen.line([(0.70, 0.62), (0.72, 0.70)], dk, 2.0)


def _draw_stepper(pen: _Pen, t: dict[str, Any]) -> None:
    p, fr, ac, dk, v = t["p"], t["frame"], t["accent"], t["dark"], t["variant"]
    if v == 2:  # stair climber
        pen.poly([(0.15, 0.96), (0.85, 0.96), (0.85, 0.40), (0.60, 0.22 + 0.06 * p[0]), (0.15, 0.62)], fr)
        for k in range(4):
            y = 0.9 - k * 0.12
            pen.rect(0.2 + k * 0.1, y - 0.02, 0.5 + k * 0.1, y, ac)
        pen.line([(0.2, 0.6), (0.3, 0.18), (0.62, 0.1)], dk, 2.2)
        pen.rect(0.55, 0.05, 0.75, 0.15, dk)
        return
    if v == 1:  # mini stepper, drawn filling its own (wide) box
        pen.rect(0.12, 0.78, 0.88, 0.95, dk)
        y1, y2 = 0.18 + 0.15 * p[1], 0.42 - 0.1 * p[2]
        pen.rect(0.04, y1, 0.48, y1 + 0.14, ac)
        pen.rect(0.52, y2, 0.96, y2 + 0.14, ac)
        pen.line([(0.28, y1 + 0.14), (0.36, 0.8)], fr, 2.4)
        pen.line([(0.72, y2 + 0.14), (0.64, 0.8)], fr, 2.4)
        pen.rect(0.4 + 0.1 * p[3], 0.58, 0.52 + 0.1 * p[3], 0.7, (40, 40, 40))
        return
    pen.rect(0.18, 0.88, 0.82, 0.96, dk)
    y1, y2 = 0.70 + 0.06 * p[1], 0.80 - 0.04 * p[2]
    pen.rect(0.14, y1, 0.48, y1 + 0.05, ac)
    pen.rect(0.52, y2, 0.86, y2 + 0.05, ac)
    pen.line([(0.3, y1 + 0.05), (0.36, 0.9)], fr, 2.0)
    pen.line([(0.7, y2 + 0.05), (0.64, 0.9)], fr, 2.0)
    if v == 0:  # column with handrail
        top = 0.12 + 0.12 * p[3]
        pen.line([(0.5, 0.9), (0.5 + 0.08 * p[4], top)], fr, 3.0)
        pen.line([(0.2, top + 0.18), (0.2, top), (0.8, top), (0.8, top + 0.18)], fr, 2.0)
        pen.rect(0.42, top - 0.08, 0.62, top, dk)


def _draw_weights(pen: _Pen, t: dict[str, Any]) -> None:
    p, fr, ac, dk, v = t["p"], t["frame"], t["accent"], t["dark"], t["variant"]
    if v == 2:  # squat rack with barbell
        for x in (0.28, 0.72):
            pen.line([(x, 0.96), (x, 0.1 + 0.08 * p[0])], fr, 3.0)
            pen.line([(x - 0.12, 0.96), (x + 0.12, 0.96)], fr, 3.0)
        y = 0.32 + 0.1 * p[1]
        pen.line([(0.05, y), (0.95, y)], dk, 1.8)
        for x in (0.12, 0.88):
            pen.ellipse(x - 0.035, y - 0.16 - 0.06 * p[2], x + 0.035, y + 0.16 + 0.06 * p[2], ac)
        return
    if v == 3:  # plate-loaded leg machine
        pen.poly([(0.05, 0.95), (0.95, 0.95), (0.95, 0.88), (0.25, 0.2 + 0.1 * p[0]), (0.15, 0.25)], fr)
        pen.rect(0.45, 0.45, 0.7, 0.6, dk)
        pen.circle(0.75, 0.38, 0.1 + 0.04 * p[1], ac)
        return
    # flat/incline bench or Scott bench
    pen.line([(0.2, 0.95), (0.25, 0.62)], fr, 2.6)
    pen.line([(0.75, 0.95), (0.7, 0.62)], fr, 2.6)
    pen.line([(0.1, 0.95), (0.9, 0.95)], fr, 2.6)
    pen.rect(0.08, 0.56, 0.55, 0.63, dk)
    ang = 0.25 + 0.3 * p[2] if v == 1 else 0.12 * p[2]
    pen.poly([(0.55, 0.63), (0.92, 0.63 - ang), (0.92, 0.55 - ang), (0.55, 0.56)], dk)
    if v == 1:
        pen.line([(0.7, 0.6), (0.72, 0.22)], fr, 2.2)
        pen.rect(0.6, 0.12 + 0.05 * p[3], 0.85, 0.24, ac)
    else:
        pen.line([(0.82, 0.62), (0.84, 0.2)], fr, 2.0)
        pen.line([(0.6, 0.22), (0.99, 0.22)], dk, 1.6)
        pen.circle(0.62, 0.22, 0.07 + 0.03 * p[3], ac)


def _draw_multi(pen: _Pen, t: dict[str, Any]) -> None:
    p, fr, ac, dk = t["p"], t["frame"], t["accent"], t["dark"]
    top = 0.04 + 0.06 * p[0]
    for x in (0.08, 0.92):
        pen.line([(x, 0.97), (x, top)], fr, 3.2)
    pen.line([(0.08, top), (0.92, top)], fr, 3.2)
    pen.line([(0.04, 0.97), (0.96, 0.97)], fr, 3.0)
    sx0 = 0.66 + 0.06 * p[1]
    pen.rect(sx0, 0.45 + 0.1 * p[2], sx0 + 0.14, 0.93, dk)
    for k in range(6):
        y = 0.5 + 0.1 * p[2] + k * 0.07
        pen.line([(sx0, y), (sx0 + 0.14, y)], ac, 1.0)
    for x in (0.2, 0.5 + 0.1 * p[3], sx0 + 0.07):
        pen.circle(x, top + 0.05, 0.035, dk)
    pen.line([(0.2, top + 0.05), (0.3, 0.55)], dk, 1.0)
    pen.line([(sx0 + 0.07, top + 0.05), (sx0 + 0.07, 0.45)], dk, 1.0)
    pen.rect(0.3, 0.68, 0.56, 0.73, dk)
    pen.line([(0.42, 0.73), (0.42, 0.97)], fr, 2.0)
    pen.rect(0.3, 0.38 + 0.08 * p[4], 0.35, 0.68, dk)
    if p[5] > 0.5:  # Smith machine bar
        y = 0.3 + 0.15 * p[6]
        pen.line([(0.08, y), (0.92, y)], dk, 1.6)
        pen.ellipse(0.12, y - 0.1, 0.16, y + 0.1, ac)


def _draw_trampoline(pen: _Pen, t: dict[str, Any]) -> None:
    p, fr, ac, dk, v = t["p"], t["frame"], t["accent"], t["dark"], t["variant"]
    y0 = 0.62 + 0.06 * p[0]
    for x in (0.15, 0.38, 0.62, 0.85):
        pen.line([(x, y0 + 0.04), (x - 0.03, 0.97), (x + 0.03, 0.97)], fr, 2.0)
    pen.ellipse(0.04, y0 - 0.1, 0.96, y0 + 0.1, ac)
    pen.ellipse(0.1, y0 - 0.07, 0.9, y0 + 0.07, dk)
    if v != 1:  # safety net
        net = 0.08 + 0.15 * p[1]
        xs = (0.08, 0.3, 0.5, 0.7, 0.92)
        for x in xs:
            pen.line([(x, y0), (x, net)], fr, 1.6)
        pen.line([(x, net + 0.03 * math.sin(3 * x + p[2])) for x in xs], fr, 1.4)
        for x in np.linspace(0.1, 0.9, 9):
            pen.line([(float(x), y0 - 0.08), (float(x), net + 0.04)], (150, 150, 150), 0.5)


_VARIANT_ASPECT = {("steppery", 1): 1.6, ("steppery", 2): 0.9, ("velotrenazhery", 2): 1.15}

_DRAWERS = {
    "begovye_dorozhki": _draw_treadmill,
    "ellipticheskie_trenazhery": _draw_elliptical,
    "velotrenazhery": _draw_bike,
    "trenazhery_na_svobodnykh_vesakh": _draw_weights,
    "multistantsii": _draw_multi,
    "grebnye_trenazhery": _draw_rower,
    "steppery": _draw_stepper,
    "batuty": _draw_trampoline,
}


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _background(rng: np.random.Generator, kind: str, w: int, h: int) -> Image.Image:
    if kind == "transparent":
        return Image.new("RGBA", (w, h), (0, 0, 0, 0))
    if kind == "white":
        return Image.new("RGBA", (w, h), (255, 255, 255, 255))
    if kind == "grey":
        g = int(rng.integers(228, 246))
        return Image.new("RGBA", (w, h), (g, g, g, 255))
    if kind == "tint":
        c = tuple(int(v) for v in rng.integers(215, 256, 3))
        return Image.new("RGBA", (w, h), (*c, 255))
    if kind == "room":
        return _room(rng, w, h)
    if kind == "clutter":
        return _clutter(rng, w, h)
    if kind == "texture":
        return _texture(rng, w, h)
    if kind == "dark":
        top = rng.integers(60, 180, 3).astype(np.float32)
        return _ramp(top, top - rng.integers(20, 60, 3).astype(np.float32), w, h)
    # gradient / studio: vertical ramp from light to darker
    top = rng.integers(225, 256, 3).astype(np.float32)
    return _ramp(top, top - rng.integers(25, 70, 3).astype(np.float32), w, h)


def _palette_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A colour of the shared palette (frames and accents of every category): colour says nothing of it."""
    base = _FRAMES[int(rng.integers(len(_FRAMES)))][1] if rng.random() < 0.5 else _pick(rng, _ACCENTS)
    return tuple(int(v) for v in np.clip(np.asarray(base) + rng.integers(-30, 31, 3), 0, 255))


def _room(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Lifestyle shot: a wall, a floor from a random height, a skirting board, maybe a window or a plant pot."""
    wall = tuple(int(v) for v in rng.integers(150, 250, 3))
    floor = tuple(int(v) for v in rng.integers(70, 200, 3))
    img = Image.new("RGBA", (w, h), (*wall, 255))
    d = ImageDraw.Draw(img)
    y = int(h * rng.uniform(0.5, 0.85))
    d.rectangle([0, y, w, h], fill=(*floor, 255))
    for _ in range(int(rng.integers(0, 12))):  # floor boards
        x = int(w * rng.random())
        d.line(
            [(x, y), (x + int(w * rng.uniform(-0.3, 0.3)), h)], fill=(*(max(0, c - 25) for c in floor), 255)
        )
    d.rectangle([0, y - max(2, h // 60), w, y], fill=(235, 235, 235, 255))
    if rng.random() < 0.5:
        x0, y0 = int(w * rng.uniform(0, 0.7)), int(h * rng.uniform(0.02, 0.2))
        d.rectangle(
            [x0, y0, x0 + int(w * 0.25), y0 + int(y * 0.4)],
            fill=(215, 230, 245, 255),
            outline=(250, 250, 250, 255),
            width=max(2, w // 80),
        )
    if rng.random() < 0.4:
        x0 = int(w * rng.choice((0.02, 0.85)))
        d.rectangle([x0, y - h // 8, x0 + w // 12, y], fill=(*_palette_colour(rng), 255))
        d.ellipse([x0 - w // 20, y - h // 3, x0 + w // 8, y - h // 9], fill=(50, 120, 60, 255))
    return img


def _clutter(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A busy background: a tint with random shapes in the palette's colours (posters, boxes, banners)."""
    img = Image.new("RGBA", (w, h), (*(int(v) for v in rng.integers(170, 256, 3)), 255))
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(4, 14))):
        x0, y0 = int(w * rng.random()), int(h * rng.random())
        x1, y1 = x0 + int(w * rng.uniform(0.05, 0.4)), y0 + int(h * rng.uniform(0.05, 0.4))
        col = (*_palette_colour(rng), 255)
        kind = int(rng.integers(3))
        if kind == 0:
            d.rectangle([x0, y0, x1, y1], fill=col)
        elif kind == 1:
            d.ellipse([x0, y0, x1, y1], fill=col)
        else:
            d.line([(x0, y0), (x1, y1)], fill=col, width=max(2, int(min(w, h) * rng.uniform(0.01, 0.04))))
    return img


def _texture(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Stripes or tiles (a gym floor, a shelf, a tiled wall)."""
    a = rng.integers(120, 250, 3)
    b = np.clip(a - rng.integers(15, 60, 3), 0, 255)
    period = int(rng.integers(6, 40))
    yy, xx = np.mgrid[0:h, 0:w]
    if rng.random() < 0.5:
        mask = ((yy // period + xx // period) % 2).astype(bool)
    else:
        mask = (((xx + yy * float(rng.uniform(-1, 1))) // period) % 2).astype(bool)
    arr = np.where(mask[..., None], a[None, None, :], b[None, None, :]).astype(np.uint8)
    alpha = np.full((h, w, 1), 255, np.uint8)
    return Image.fromarray(np.concatenate([arr, alpha], axis=2), "RGBA")


def _ramp(top: np.ndarray, bottom: np.ndarray, w: int, h: int) -> Image.Image:
    """Vertical colour ramp."""
    ramp = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    arr = top[None, None, :] * (1 - ramp) + bottom[None, None, :] * ramp
    arr = np.broadcast_to(np.clip(arr, 0, 255), (h, w, 3)).astype(np.uint8)
    alpha = np.full((h, w, 1), 255, np.uint8)
    return Image.fromarray(np.concatenate([arr, alpha], axis=2), "RGBA")


def _place(size: int, extent: int, shift: float) -> int:
    """Offset of an object of `extent` in a frame of `size`, shifted off-centre; a larger object is cut."""
    pos = int((size - extent) / 2 + shift * size)
    return min(max(min(0, size - extent), pos), max(0, size - extent))


def _render(spec: tuple[Any, ...]) -> None:
    """Draw, photograph and save one card image; a pure function of `spec`."""
    path, seed_key, target, traits, aspect, photo, fmt, mode, size_cap, large_share = spec
    rng = np.random.default_rng(seed_key)
    lo, hi = photo["size"]
    hi = min(hi, size_cap)
    lo = min(lo, hi - 40)
    long_side = int(rng.integers(700, 1201)) if rng.random() < large_share else int(rng.integers(lo, hi + 1))
    ratio = float(_pick(rng, photo["aspect"]))
    w, h = (
        (long_side, max(64, int(long_side / ratio)))
        if ratio >= 1
        else (max(64, int(long_side * ratio)), long_side)
    )
    bg = _pick(rng, photo["bg"])
    # cut-out product shots: an RGBA file always has a transparent background
    canvas = _background(rng, "transparent" if mode == "RGBA" else bg, w, h)

    scale = float(rng.uniform(*photo["scale"]))
    obj_aspect = _VARIANT_ASPECT.get((target, traits["variant"]), aspect) * (0.92 + 0.16 * traits["p"][7])
    bw = scale * w
    bh = bw / obj_aspect
    if bh > scale * h:
        bh = scale * h
        bw = bh * obj_aspect
    bw, bh = max(24, int(bw)), max(24, int(bh))
    obj = Image.new("RGBA", (bw, bh), (0, 0, 0, 0))
    _DRAWERS[target](_Pen(obj, max(1.0, min(bw, 1.6 * bh) / 45.0) * traits["thick"]), traits)
    if rng.random() < photo["flip"]:
        obj = obj.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    angle = float(rng.uniform(-photo["rot"], photo["rot"]))
    if abs(angle) > 0.2:
        obj = obj.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    shift = float(photo.get("shift", 0.08))
    ox = _place(w, obj.width, rng.uniform(-shift, shift))
    oy = _place(h, obj.height, rng.uniform(-shift, shift) * 0.75)
    if rng.random() < photo["shadow"]:
        ImageDraw.Draw(canvas).ellipse(
            [ox + obj.width * 0.05, oy + obj.height * 0.92, ox + obj.width * 0.95, oy + obj.height * 1.02],
            fill=(200, 200, 200, 255),
        )
    # a tight crop (object larger than the frame) cuts the object at the borders
    canvas.alpha_composite(obj, (max(0, ox), max(0, oy)), (max(0, -ox), max(0, -oy)))
    if rng.random() < photo["watermark"]:
        _watermark(rng, canvas, photo.get("mark", "shop"))
    quality = int(rng.integers(photo["quality"][0], photo["quality"][1] + 1))
    _save(_finish_pixels(rng, canvas, mode, int(photo["noise"]) if fmt != "PNG" else 0), path, fmt, quality)


def _watermark(rng: np.random.Generator, canvas: Image.Image, text: str) -> None:
    w, h = canvas.size
    font = _font(max(9, h // 22))
    d = ImageDraw.Draw(canvas)
    x0, y0, x1, y1 = d.textbbox((0, 0), text, font=font)
    corner = int(rng.integers(4))
    x = 6 if corner in (0, 2) else w - (x1 - x0) - 10
    y = 6 if corner in (0, 1) else h - (y1 - y0) - 12
    d.rectangle([x - 3, y - 2, x + (x1 - x0) + 4, y + (y1 - y0) + 6], fill=(245, 245, 245, 200))
    d.text((x - x0, y - y0), text, fill=(120, 120, 120, 255), font=font)


def _finish_pixels(rng: np.random.Generator, canvas: Image.Image, mode: str, amp: int) -> Image.Image:
    """Flatten to the file's mode; lossy shops get mild sensor-like noise (PNG cut-outs stay clean)."""
    # under a transparent background scraped cut-outs often hold black: a loader must composite, not drop alpha
    rgb = Image.new("RGB", canvas.size, (0, 0, 0) if mode == "RGBA" else (255, 255, 255))
    rgb.paste(canvas, mask=canvas.getchannel("A"))
    if amp > 0:
        w, h = rgb.size
        # rng.bytes is the cheapest deterministic source; the modulo bias is irrelevant for noise
        noise = np.frombuffer(rng.bytes(w * h * 3), np.uint8).reshape(h, w, 3) % np.uint8(2 * amp + 1)
        rgb = ImageChops.add(rgb, Image.fromarray(noise, "RGB"), scale=1.0, offset=-amp)
    if mode == "RGBA":
        rgb.putalpha(canvas.getchannel("A"))
        return rgb
    if mode == "P":
        return rgb.quantize(colors=64, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    return rgb if mode == "RGB" else rgb.convert(mode)


def _save(img: Image.Image, path: str, fmt: str, quality: int) -> None:
    """Save with every encoder parameter explicit, so the bytes depend on the pixels only."""
    if fmt == "JPEG":
        img.save(path, "JPEG", quality=quality, subsampling=2, optimize=False, progressive=False)
    elif fmt == "PNG":
        img.save(path, "PNG", optimize=False, compress_level=1)
    else:
        img.save(path, "WEBP", quality=quality, method=1, lossless=False, exact=False)


# ---------------------------------------------------------------------------------------------- assembly


def _sku_counts(scale: Scale) -> tuple[dict[str, int], dict[str, int]]:
    """(query SKUs per target, further database-only SKUs per target)."""
    qw = _norm([c.query_weight for c in CATEGORIES if c.query_weight > 0])
    q = dict(zip(QUERY_TARGETS, _largest_remainder(qw, scale.n_queries), strict=True))
    mean_q, mean_other = float(np.dot(_LISTINGS_Q[0], _LISTINGS_Q[1])), float(np.dot(*_LISTINGS_OTHER))
    rest = max(len(CATEGORIES), int(round((scale.n_database - scale.n_queries * mean_q) / mean_other)))
    other = dict(
        zip(
            [c.target for c in CATEGORIES],
            _largest_remainder(_norm([c.db_weight for c in CATEGORIES]), rest),
            strict=True,
        )
    )
    return q, other


_LISTINGS_Q = (np.array([2, 3, 4, 5]), np.array([0.35, 0.3, 0.2, 0.15]))  # shops per query SKU
_LISTINGS_OTHER = (np.array([1, 2, 3, 4, 5]), np.array([0.35, 0.25, 0.2, 0.12, 0.08]))


def _largest_remainder(w: np.ndarray, n: int) -> list[int]:
    raw = w * n
    out = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - out), kind="stable")[: n - int(out.sum())]:
        out[i] += 1
    return [int(v) for v in out]


def _plan(seed: int, scale: Scale) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[_Sku]]:
    """Cards (text columns + image plan) of the company and the database."""
    rng = np.random.default_rng([seed, 0])
    q_counts, other_counts = _sku_counts(scale)
    totals = {t: q_counts.get(t, 0) + other_counts[t] for t in _CAT}
    skus = _build_skus(rng, totals)
    by_target: dict[str, list[_Sku]] = {}
    for s in skus:
        by_target.setdefault(s.target, []).append(s)
    query_ids: set[str] = set()
    for t, n in q_counts.items():
        chosen = rng.choice(len(by_target[t]), size=n, replace=False)
        query_ids.update(by_target[t][int(i)].sku for i in chosen)

    sportdoma = next(d for d in _DEALERS if d.name == QUERY_DEALER)
    company: list[dict[str, Any]] = []
    database: list[dict[str, Any]] = []
    for s in skus:
        shops = [d for d in _DEALERS if d.name != QUERY_DEALER and (not d.sells or s.target in d.sells)]
        counts, probs = _LISTINGS_Q if s.sku in query_ids else _LISTINGS_OTHER
        n = min(len(shops), int(rng.choice(counts, p=probs)))
        picked = rng.choice(len(shops), size=n, replace=False, p=_norm([d.weight for d in shops]))
        seen: set[str] = set()
        if s.sku in query_ids:
            company.append(_card(rng, sportdoma, s, seen))
        database.extend(_card(rng, shops[int(i)], s, seen) for i in sorted(picked))
    order = {c.target: i for i, c in enumerate(CATEGORIES)}
    company = _finish(rng, company, order)
    database = _finish(rng, database, order)
    return company, database, skus


def _card(rng: np.random.Generator, dealer: _Dealer, sku: _Sku, seen: set[str]) -> dict[str, Any]:
    """One shop's card of a SKU; `seen` holds the SKU's titles so far (shops word the same model differently)."""
    # a vague card names no category in its title nor in its category levels
    vague = dealer.name != QUERY_DEALER and rng.random() < dealer.vague
    title = _title(rng, dealer, sku, vague)
    for _ in range(8):
        if title not in seen:
            break
        title = _title(rng, dealer, sku, vague)
    seen.add(title)
    cat_1, cat_2, cat_3 = _cats(rng, dealer, sku, vague)
    return {
        "title": title,
        "price": _price(rng, dealer, sku),
        "cat_1": cat_1,
        "cat_2": cat_2,
        "cat_3": cat_3,
        "caracteristics": _caracteristics(rng, dealer, sku),
        "target": sku.target,
        "dealer": dealer.name,
        "sku": sku.sku,
        "_sku": sku,
        "_dealer": dealer,
    }


def _finish(
    rng: np.random.Generator, cards: list[dict[str, Any]], order: dict[str, int]
) -> list[dict[str, Any]]:
    """Order cards by target then dealer (shuffled within), assign file names, formats and modes."""
    keys = rng.random(len(cards))
    idx = sorted(range(len(cards)), key=lambda i: (order[cards[i]["target"]], cards[i]["dealer"], keys[i]))
    cards = [cards[i] for i in idx]
    by_dealer: dict[str, list[int]] = {}
    for i, c in enumerate(cards):
        by_dealer.setdefault(c["dealer"], []).append(i)
    for name in sorted(by_dealer):
        rows = by_dealer[name]
        dealer = cards[rows[0]]["_dealer"]
        labels = _spread(rng, len(rows), [w for _, _, w in dealer.formats])
        product_ids = rng.choice(np.arange(10000, 30000), size=len(rows), replace=False)
        counter: dict[str, int] = {}
        for row, label, pid in zip(rows, labels, product_ids, strict=True):
            card = cards[row]
            fmt, mode, _ = dealer.formats[int(label)]
            ext = {"JPEG": dealer.ext_jpeg, "PNG": "png", "WEBP": "webp"}[fmt]
            counter[card["target"]] = counter.get(card["target"], 0) + 1
            card["img_ref"] = f"images/{card['target']}/{counter[card['target']]}_{name}_{int(pid)}.{ext}"
            card["_fmt"], card["_mode"] = fmt, mode
    return cards


def _frame(cards: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame({col: [c[col] for c in cards] for col in COLUMNS})


def _image_specs(
    out: Path, cards: list[dict[str, Any]], seed: int, file_id: int, scale: Scale
) -> list[tuple]:
    specs = []
    for row, c in enumerate(cards):
        sku, dealer = c["_sku"], c["_dealer"]
        photo = dict(dealer.photo, mark=f"{dealer.name}.ru")
        specs.append(
            (
                str(out / c["img_ref"]),
                [seed, file_id + 1, row],
                sku.target,
                sku.traits,
                _CAT[sku.target].aspect,
                photo,
                c["_fmt"],
                c["_mode"],
                scale.size_cap,
                scale.large_share,
            )
        )
    return specs


def _render_all(specs: list[tuple], processes: int) -> None:
    processes = max(1, min(processes, os.cpu_count() or 1))
    if processes == 1 or len(specs) < 500:
        for spec in specs:
            _render(spec)
        return
    # every spec carries its own seed, so the pool's scheduling cannot change any output byte
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        for _ in pool.imap_unordered(_render, specs, chunksize=64):
            pass


def _read_marker(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_marker(out: Path, seed: int, scale: str, complete: bool) -> None:
    payload = {"seed": seed, "scale": scale, "version": GENERATOR_VERSION, "complete": complete}
    (out / MARKER).write_text(json.dumps(payload, sort_keys=True) + "\n", encoding="utf-8")


def _check_args(seed: int, scale: str) -> Scale:
    if scale not in SCALES:
        raise ConfigError(f"unknown synthetic scale {scale!r}; use one of {', '.join(SCALES)}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"synthetic seed must be a non-negative integer, got {seed!r}; pass e.g. --seed 0")
    return SCALES[scale]


def generate(out: str | Path, seed: int = 0, scale: str = "demo") -> Path:
    """Write company_data.csv, comparable_data.csv (schema + 'sku') and images/<target>/ under `out`."""
    spec = _check_args(seed, scale)
    out = Path(out)
    ours = _read_marker(out) is not None
    if not ours and any((out / n).exists() for n in ("company_data.csv", "comparable_data.csv")):
        raise CatalogError(
            f"{out} already holds catalog CSVs that the synthetic generator did not write; "
            "choose another output folder or move those files away"
        )
    out.mkdir(parents=True, exist_ok=True)
    if ours and (out / "images").is_dir():
        shutil.rmtree(out / "images")  # stale images of an earlier seed/scale
    _write_marker(out, int(seed), scale, complete=False)

    company, database, _ = _plan(int(seed), spec)
    for target in sorted({c["target"] for c in company + database}):
        (out / "images" / target).mkdir(parents=True, exist_ok=True)
    _render_all(
        _image_specs(out, company, int(seed), 0, spec) + _image_specs(out, database, int(seed), 1, spec),
        spec.processes,
    )
    _frame(company).to_csv(out / "company_data.csv", index=False, encoding="utf-8", lineterminator="\n")
    _frame(database).to_csv(out / "comparable_data.csv", index=False, encoding="utf-8", lineterminator="\n")
    _write_marker(out, int(seed), scale, complete=True)
    return out


def is_current(out: str | Path, seed: int = 0, scale: str = "demo") -> bool:
    """True when `out` holds a complete catalog generated with these parameters by this generator version."""
    out = Path(out)
    marker = _read_marker(out)
    expected = {"seed": int(seed), "scale": scale, "version": GENERATOR_VERSION, "complete": True}
    files = (
        all((out / n).is_file() for n in ("company_data.csv", "comparable_data.csv"))
        and (out / "images").is_dir()
    )
    return files and marker == expected


def ensure_catalog(out: str | Path, seed: int = 0, scale: str = "demo") -> Path:
    """Generate the catalog into `out` only when it is missing or was made with other parameters."""
    _check_args(seed, scale)
    if is_current(out, seed, scale):
        return Path(out)
    return generate(out, seed, scale)


def summary(out: str | Path, seed: int, scale: str, seconds: float) -> str:
    """One line describing a generated catalog."""
    out = Path(out)
    company = pd.read_csv(out / "company_data.csv", usecols=["target"])
    database = pd.read_csv(out / "comparable_data.csv", usecols=["target", "dealer", "sku"])
    return (
        f"synthetic catalog (scale={scale}, seed={seed}): {len(company)} queries, {len(database)} database cards "
        f"({database['sku'].nunique()} SKUs, {database['target'].nunique()} targets, "
        f"{database['dealer'].nunique()} shops), {len(company) + len(database)} images -> {out} ({seconds:.1f} s)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prodmatch.data.synthetic",
        description="Generate the synthetic demo catalog (company_data.csv, comparable_data.csv, images/).",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed -> identical files)")
    parser.add_argument("--scale", choices=sorted(SCALES), default="demo", help="catalog size")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        generate(args.out, args.seed, args.scale)
    except ProdmatchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary(args.out, args.seed, args.scale, time.perf_counter() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
