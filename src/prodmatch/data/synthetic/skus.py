"""Product models (SKUs): brands, codes, characteristics and drawing traits, in families."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prodmatch.data.synthetic.sampling import normalized, pick, uniform_step
from prodmatch.data.synthetic.tables import (
    ACCENTS,
    BRANDS,
    CATEGORIES,
    FRAMES,
    SERIES,
    SUFFIXES,
    TARGET_BY_PREFIX,
)

# ---------------------------------------------------------------------------------------------- SKUs


def _num(x: float) -> str:
    """Russian number: decimal comma, no trailing zeros."""
    return (f"{x:.2f}".rstrip("0").rstrip(".")).replace(".", ",")


@dataclass
class Sku:
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
    family: int = -1  # models of one family (same brand and series, neighbouring codes) share this number
    family_traits: dict[str, Any] = field(default_factory=dict)  # drawing traits of the family's first model


def _dims(rng: np.random.Generator, lo: tuple[int, int, int], hi: tuple[int, int, int]) -> str:
    return " х ".join(str(int(uniform_step(rng, a, b))) for a, b in zip(lo, hi, strict=True)) + " см"


def _common_tail(
    rng: np.random.Generator, weight: tuple[int, int], user: tuple[int, int]
) -> list[tuple[str, str]]:
    return [
        ("Вес", f"{int(uniform_step(rng, *weight))} кг"),
        ("Максимальный вес пользователя", f"{int(uniform_step(rng, *user, 10))} кг"),
        ("Гарантия", pick(rng, ("1 год", "2 года", "3 года", "5 лет"))),
        ("Страна изготовления", pick(rng, ("Китай", "Тайвань", "Россия", "Китай"))),
    ]


def _specs(rng: np.random.Generator, target: str, variant: int) -> list[tuple[str, str]]:
    """Characteristics (key, value) of one SKU; the values are the SKU's own."""
    pulse = ("сенсоры на поручнях", "сенсоры / кардиопояс (в комплекте)", "нагрудный датчик (опция)", "нет")
    console = ("LCD", "LED", 'LCD 5.5"', 'цветной TFT 7"', "ЖК-дисплей")
    if target == "begovye_dorozhki":
        hi = uniform_step(rng, 10, 22)
        out = [
            ("Тип дорожки", ("электрическая", "механическая", "складная электрическая")[variant]),
            ("Скорость", f"{_num(pick(rng, (0.8, 1.0, 1.0)))}-{int(hi)} км/ч"),
            (
                "Размер бегового полотна (Дх Ш)",
                f"{int(uniform_step(rng, 110, 160, 2))} х {int(uniform_step(rng, 38, 60, 2))} см",
            ),
            ("Наклон бегового полотна", pick(rng, ("нет", "0-12%", "0-15%", "3 уровня ручной"))),
            ("Кол-во программ", str(int(uniform_step(rng, 3, 36)))),
            ("Измерение пульса", pick(rng, pulse)),
            ("Складывание", pick(rng, ("да", "нет", "гидравлическое"))),
            ("Габариты (Дх Шх В)", _dims(rng, (150, 65, 120), (215, 95, 150))),
        ]
        if variant != 1:  # motorised
            out.insert(2, ("Мощность двигателя", f"{_num(uniform_step(rng, 1.25, 4.0, 0.25))} л.с."))
        return out + _common_tail(rng, (35, 140), (100, 180))
    if target == "ellipticheskie_trenazhery":
        out = [
            ("Тип эллиптического тренажера", pick(rng, ("домашний", "полукоммерческий", "коммерческий"))),
            ("Система нагружения", ("магнитная", "электромагнитная")[variant]),
            ("Кол-во уровней нагрузки", str(int(pick(rng, (8, 16, 20, 24, 32))))),
            ("Маховик", f"{int(uniform_step(rng, 6, 24))} кг"),
            ("Длина шага", f"{int(uniform_step(rng, 30, 56))} см"),
            ("Измерение пульса", pick(rng, pulse)),
            ("Консоль", pick(rng, console)),
            ("Кол-во программ", str(int(uniform_step(rng, 1, 30)))),
            ("Габариты (Дх Шх В)", _dims(rng, (110, 55, 140), (200, 75, 175))),
        ]
        return out + _common_tail(rng, (30, 120), (100, 160))
    if target == "velotrenazhery":
        out = [
            ("Тип велотренажера", pick(rng, ("для домашнего использования", "полупрофессиональный"))),
            ("Посадка", ("вертикальная", "вертикальная (спин-байк)", "горизонтальная")[variant]),
            ("Система нагружения", ("магнитная", "колодочная", "электромагнитная")[variant]),
            ("Кол-во уровней нагрузки", str(int(pick(rng, (8, 16, 24, 32))))),
            ("Вес маховика", f"{int(uniform_step(rng, 4, 22))} кг"),
            ("Регулировка положения сидения", pick(rng, ("по вертикали", "по вертикали и горизонтали"))),
            ("Измерение пульса", pick(rng, pulse)),
            ("Консоль", pick(rng, console)),
            ("Габариты (Дх Шх В)", _dims(rng, (80, 45, 110), (160, 70, 145))),
        ]
        return out + _common_tail(rng, (20, 70), (100, 150))
    if target == "trenazhery_na_svobodnykh_vesakh":
        exercise = ("жим лежа", "бицепс", "приседания", "жим ногами")[variant]
        out = [
            ("Тип тренажера", "свободный вес" if variant < 3 else "встроенные веса"),
            ("Упражнения", exercise),
            ("Нагрузка", f"до {int(uniform_step(rng, 100, 400, 10))} кг"),
            (
                "Рама",
                f"сталь, профиль {int(pick(rng, (40, 50, 60, 80)))}х{int(pick(rng, (40, 50, 60)))} мм",
            ),
            ("Регулировка", pick(rng, ("по высоте", "угол спинки", "нет", "сиденье и спинка"))),
            ("Габариты (Дх Шх В)", _dims(rng, (80, 50, 60), (220, 160, 230))),
        ]
        return (
            out
            + _common_tail(rng, (15, 250), (120, 200))[:1]
            + [("Гарантия", pick(rng, ("1 год", "2 года")))]
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
                pick(rng, ("для домашнего использования", "для домашнего и коммерческого использования")),
            ),
            ("Упражнения", ", ".join(moves[i] for i in picked)),
            ("Весовой стек", f"{int(uniform_step(rng, 45, 150, 5))} кг"),
            ("Тросы", "в нейлоновой оболочке"),
            ("Рама", "сталь"),
            ("Габариты (Дх Шх В)", _dims(rng, (150, 100, 200), (260, 230, 240))),
        ]
        return (
            out
            + _common_tail(rng, (80, 450), (120, 200))[:1]
            + [("Гарантия", pick(rng, ("2 года", "3 года")))]
        )
    if target == "grebnye_trenazhery":
        out = [
            ("Система нагружения", ("магнитная", "воздушная", "водная")[variant]),
            ("Кол-во уровней нагрузки", str(int(pick(rng, (1, 8, 10, 16))))),
            ("Материал рельс", pick(rng, ("алюминий", "сталь"))),
            ("Длина рельса", f"{int(uniform_step(rng, 110, 150))} см"),
            ("Консоль", pick(rng, console)),
            ("Складывание", pick(rng, ("да", "нет", "вертикальное хранение"))),
            ("Габариты (Дх Шх В)", _dims(rng, (190, 45, 50), (245, 60, 110))),
        ]
        return out + _common_tail(rng, (25, 60), (110, 160))
    if target == "steppery":
        out = [
            ("Тип степпера", ("домашний", "министеппер", "профессиональный (лестница)")[variant]),
            ("Система нагружения", ("2 гидроцилиндра", "гидроцилиндры", "электромагнитная")[variant]),
            ("Регулировка нагрузки", pick(rng, ("нет", "да", "12 уровней"))),
            ("Показания консоли", "время, количество шагов, калории"),
            ("Питание", ("не требует", "батарейки", "от сети 220 В")[variant]),
            ("Габариты (Дх Шх В)", _dims(rng, (40, 35, 20), (140, 90, 200))),
        ]
        return out + _common_tail(rng, (8, 200), (100, 160))
    diameter = int(pick(rng, (183, 244, 252, 305, 312, 366, 427)))
    out = [
        ("Диаметр", f"{diameter} см ({_num(diameter / 30.48)} ft)"),
        ("Защитная сетка", ("внешняя", "нет", "внутренняя")[variant]),
        ("Кол-во пружин", str(int(uniform_step(rng, 36, 108, 6)))),
        ("Лестница", pick(rng, ("в комплекте", "нет"))),
        ("Материал рамы", "оцинкованная сталь"),
        ("Максимальный вес пользователя", f"{int(uniform_step(rng, 60, 150, 10))} кг"),
        ("Гарантия", "1 год"),
    ]
    return out


def _generic_specs(rng: np.random.Generator, sku: Sku) -> list[tuple[str, str]]:
    """Fields every card has whatever the category; their values follow brand, colour or chance."""
    weight = int(uniform_step(rng, 12, 160))
    return [
        (
            "Назначение",
            pick(rng, ("для дома", "для дома и фитнес-клуба", "полупрофессиональное", "коммерческое")),
        ),
        (
            "Производитель",
            f"{sku.brand[0]} ({pick(rng, ('Германия', 'США', 'Тайвань', 'Китай', 'Россия'))})",
        ),
        ("Цвет рамы", sku.color),
        (
            "Материал рамы",
            pick(rng, ("сталь", "сталь с порошковым покрытием", "алюминий", "сталь, пластик")),
        ),
        ("Вес нетто", f"{weight} кг"),
        ("Вес брутто", f"{weight + int(uniform_step(rng, 3, 15))} кг"),
        ("Размер упаковки", _dims(rng, (40, 30, 15), (220, 100, 60))),
        ("Комплектация", pick(rng, ("тренажер, инструкция", "тренажер, инструкция, крепеж", "базовая"))),
        ("Сертификат", pick(rng, ("EAC", "CE, EAC", "ISO 9001", "ТР ТС"))),
        ("Сборка", pick(rng, ("требуется", "частичная", "по запросу"))),
    ]


def _traits(rng: np.random.Generator, variant: int) -> dict[str, Any]:
    """Drawing traits of one SKU: frame/accent colours, proportions, variant."""
    fi = int(rng.integers(len(FRAMES)))
    frame = np.clip(np.asarray(FRAMES[fi][1]) + rng.integers(-10, 11, 3), 0, 255)
    accent = np.clip(np.asarray(pick(rng, ACCENTS)) + rng.integers(-15, 16, 3), 0, 255)
    return {
        "frame_name": FRAMES[fi][0],
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
            int(v) for v in np.clip(np.asarray(pick(rng, ACCENTS)) + rng.integers(-15, 16, 3), 0, 255)
        )
    return out


def _brand_about(rng: np.random.Generator, brand: str, series: list[str]) -> str:
    """A brand's marketing paragraph; shops paste it into every card of the brand, whatever the category."""
    country = pick(rng, ("Германии", "США", "Тайваня", "Италии", "России", "Нидерландов"))
    year = int(rng.integers(1975, 2016))
    motto = pick(
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
    return f"{prefix}-{number}{pick(rng, ('A', 'M', 'T', 'S', 'X'))}"


def build_skus(rng: np.random.Generator, counts: dict[str, int]) -> list[Sku]:
    """Product models in families (same brand/series, neighbouring codes, similar looks)."""
    series_pool = list(rng.permutation(len(SERIES)))
    brand_series = {
        b[0]: [SERIES[series_pool[(3 * i + j) % len(SERIES)]] for j in range(3)] for i, b in enumerate(BRANDS)
    }
    brand_style = {b[0]: int(rng.integers(3)) for b in BRANDS}
    # a brand reuses its model numbers (and often its own code letters) in every category it makes, so
    # "X T-300" may be a treadmill and "X E-300" or even "X NF-300" an elliptical: codes mislead text matching
    numbers = (10, 20, 30, 50, 70, 100, 200, 300, 400, 500, 600, 700, 800, 900)
    brand_numbers = {b[0]: [int(pick(rng, numbers)) for _ in range(3)] for b in BRANDS}
    brand_prefix = {b[0]: "".join(ch for ch in b[0].upper() if ch.isalpha())[:2] for b in BRANDS}
    about = {b[0]: _brand_about(rng, b[0], brand_series[b[0]]) for b in BRANDS}
    used: set[tuple[str, str]] = set()
    skus: list[Sku] = []
    families = 0
    for cat in CATEGORIES:
        # a brand mostly makes its own categories but now and then a model of any other one
        share = normalized(
            [3.0 if any(TARGET_BY_PREFIX[k] == cat.target for k in b[2]) else 1.0 for b in BRANDS]
        )
        made = 0
        while made < counts[cat.target]:
            brand = BRANDS[int(rng.choice(len(BRANDS), p=share))]
            series = pick(rng, brand_series[brand[0]]) if rng.random() < 0.75 else ""
            prefix = brand_prefix[brand[0]] if rng.random() < 0.65 else pick(rng, cat.prefixes)
            variant = int(rng.integers(len(cat.subcats)))
            base_traits = _traits(rng, variant)
            families += 1
            base_price = float(np.exp(rng.normal(np.log(cat.price[0]), cat.price[1])))
            if rng.random() < 0.7:
                number = int(pick(rng, brand_numbers[brand[0]]))
            else:
                number = int(pick(rng, numbers)) + int(rng.integers(0, 10)) * 10
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
                sku = Sku(
                    sku=f"S{len(skus):05d}",
                    target=cat.target,
                    variant=variant,
                    brand=(brand[0], brand[1]),
                    series=series,
                    code=code,
                    suffix=pick(rng, SUFFIXES),
                    article=f"{brand[0][:2].upper()}{prefix}-{int(rng.integers(100, 1000))}",
                    price=base_price * (1.0 + 0.12 * member) * float(rng.uniform(0.95, 1.05)),
                    color=traits["frame_name"],
                    specs=[],
                    traits=traits,
                )
                sku.specs = _specs(rng, cat.target, variant)
                sku.generic = _generic_specs(rng, sku)
                sku.about = about[brand[0]]
                sku.family, sku.family_traits = families - 1, base_traits
                skus.append(sku)
                made += 1
    return skus
