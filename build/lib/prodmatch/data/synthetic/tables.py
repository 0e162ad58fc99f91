"""The generator's world as data: catalog sizes, categories, brands, series, colours, shop service text and shops."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

QUERY_DEALER = "sportdoma"


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
class Category:
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

CATEGORIES: tuple[Category, ...] = (
    Category(
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
    Category(
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
    Category(
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
    Category(
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
    Category(
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
    Category(
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
    Category(
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
    Category(
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
CATEGORY = {c.target: c for c in CATEGORIES}
QUERY_TARGETS: tuple[str, ...] = tuple(c.target for c in CATEGORIES if c.query_weight > 0)
DATABASE_ONLY_TARGETS: tuple[str, ...] = tuple(c.target for c in CATEGORIES if c.query_weight == 0)

# Invented brands; most make several categories so the brand alone does not give the category.
TARGET_BY_PREFIX = {c.target[:4]: c.target for c in CATEGORIES}
BRANDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
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
SERIES = (
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
SUFFIXES = ("", "", "", "", "HRC", "Plus", "II", "PRO", "Lite", "New")

# Frame palettes: (Russian colour name, RGB); accents are free colours.
FRAMES = (
    ("черный", (32, 32, 36)),
    ("графит", (72, 74, 80)),
    ("серебристый", (176, 178, 186)),
    ("белый", (232, 232, 230)),
    ("синий", (34, 56, 120)),
    ("красный", (160, 36, 36)),
)
ACCENTS = (
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


# Shop service text; every shop (the company too) writes some of it on every card, so in long texts
# the shared boilerplate outweighs the few category-specific words.
BOILERPLATE: tuple[tuple[str, tuple[str, ...]], ...] = (
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


# ---------------------------------------------------------------------------------------------- dealers


@dataclass(frozen=True)
class Dealer:
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


DEALERS: tuple[Dealer, ...] = (
    Dealer(
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
    Dealer(
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
    Dealer(
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
    Dealer(
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
    Dealer(
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
    Dealer(
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
    Dealer(
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
GENERIC_NOUN = {_CARDIO: "Кардиотренажер", _STRENGTH: "Силовой тренажер", _OUTDOOR: "Батут"}
GENERIC_CAT1 = {_CARDIO: "Кардиотренажеры", _STRENGTH: "Тренажеры", _OUTDOOR: "Тренажеры"}
# look-alike categories, for shops that file a product in the wrong place
CONFUSABLE = {
    "begovye_dorozhki": "ellipticheskie_trenazhery",
    "ellipticheskie_trenazhery": "velotrenazhery",
    "velotrenazhery": "ellipticheskie_trenazhery",
    "trenazhery_na_svobodnykh_vesakh": "multistantsii",
    "multistantsii": "trenazhery_na_svobodnykh_vesakh",
    "grebnye_trenazhery": "velotrenazhery",
    "steppery": "ellipticheskie_trenazhery",
    "batuty": "steppery",
}
DATABASE_DEALERS: tuple[str, ...] = tuple(d.name for d in DEALERS if d.name != QUERY_DEALER)
