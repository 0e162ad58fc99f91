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

The ``hard`` profile (``profile="hard"``, ``data=synthetic_hard``) is the same catalog with marketplace effects
on top (missing or mangled model codes, transliterated brands, generic titles, colour casts, turned views,
stickers, family stock photos), each drawn from its own streams so the default catalogs do not change; the spec
and its rates are in docs/CATALOGS.md.

Modules: ``tables`` (the world as data), ``sampling`` (small seeded draws), ``skus`` (product models),
``text`` (shop card text), ``silhouettes`` and ``drawing`` (images), ``hard`` (the hard profile's rates and
per-card plan), ``hard_text`` and ``hard_images`` (its effects), ``generation`` (planning, files, the safe
folder swap) and ``__main__`` (the CLI).
CLI: ``python -m prodmatch.data.synthetic --out DIR [--seed N] [--scale tiny|demo|full] [--profile default|hard]``.
"""

from prodmatch.data.synthetic.generation import (
    COLUMNS,
    GENERATOR_VERSION,
    MARKER,
    ensure_catalog,
    generate,
    is_current,
)
from prodmatch.data.synthetic.tables import (
    CATEGORIES,
    DATABASE_DEALERS,
    DATABASE_ONLY_TARGETS,
    QUERY_DEALER,
    QUERY_TARGETS,
    SCALES,
    Scale,
)

__all__ = [
    "CATEGORIES",
    "COLUMNS",
    "DATABASE_DEALERS",
    "DATABASE_ONLY_TARGETS",
    "GENERATOR_VERSION",
    "MARKER",
    "QUERY_DEALER",
    "QUERY_TARGETS",
    "SCALES",
    "Scale",
    "ensure_catalog",
    "generate",
    "is_current",
]
