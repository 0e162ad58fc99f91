"""The catalog CSV schema (the study's columns) and the text views built from its columns."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from prodmatch.errors import CatalogError, ConfigError

REQUIRED_COLUMNS: tuple[str, ...] = (
    "title",
    "price",
    "cat_1",
    "cat_2",
    "cat_3",
    "caracteristics",
    "img_ref",
    "target",
    "dealer",
)
OPTIONAL_COLUMNS: tuple[str, ...] = ("sku",)
TEXT_VIEWS: tuple[str, ...] = ("title", "title_cat", "text_all")
IMAGE_VIEW = "image"
CHECK_IMAGES: tuple[str, ...] = ("exists", "decode", "none")

_VIEW_COLUMNS: dict[str, tuple[str, ...]] = {
    "title": ("title",),
    "title_cat": ("title", "cat_1", "cat_2", "cat_3"),
    "text_all": ("title", "cat_1", "cat_2", "cat_3", "caracteristics"),
    IMAGE_VIEW: ("img_ref",),
}
# What scoring reads whatever the views: the ground truth and who listed the card.
SCORING_COLUMNS: tuple[str, ...] = ("target", "dealer")
# Identifier-like columns: compared by equality downstream, so surrounding whitespace is stripped.

# Whitespace written as literal characters so the pattern means the same to Python's re and to RE2
# (pyarrow-backed strings), whose \s is ASCII-only.
WHITESPACE = "[\\s\x0b\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+"
_ZERO_WIDTH = "[\u200b\u200c\u200d\u2060\ufeff]"


# --------------------------------------------------------------------------- text


def normalize_text(values: pd.Series) -> pd.Series:
    """NFKC, zero-width characters removed, whitespace runs (newlines, nbsp, ...) collapsed, stripped."""
    text = values.fillna("").astype(str)
    return (
        text.str.normalize("NFKC")
        .str.replace(_ZERO_WIDTH, "", regex=True)
        .str.replace(WHITESPACE, " ", regex=True)
        .str.strip()
    )


def columns_read(views: Iterable[str]) -> tuple[str, ...]:
    """The schema columns a run on these views reads (in schema order): the views' own plus the scoring ones."""
    wanted = set(SCORING_COLUMNS)
    for view in views:
        if view not in _VIEW_COLUMNS:
            raise ConfigError(f"unknown view '{view}'; valid views: {', '.join((*TEXT_VIEWS, IMAGE_VIEW))}")
        wanted.update(_VIEW_COLUMNS[view])
    return tuple(c for c in REQUIRED_COLUMNS if c in wanted)


def _check_view(view: str) -> tuple[str, ...]:
    if view in TEXT_VIEWS:
        return _VIEW_COLUMNS[view]
    hint = " (images are read with Catalog.image_paths())" if view == IMAGE_VIEW else ""
    raise ConfigError(f"unknown text view '{view}'{hint}; valid text views: {', '.join(TEXT_VIEWS)}")


def text_view(frame: pd.DataFrame, view: str) -> pd.Series:
    """The study's text view of each row: parts joined by single spaces, empty parts skipped, normalised."""
    columns = _check_view(view)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CatalogError(
            f"text view '{view}' needs column(s) {', '.join(missing)}; load the CSV with load_catalog"
        )
    parts = [normalize_text(frame[c]) for c in columns]
    joined = parts[0].str.cat(parts[1:], sep=" ") if len(parts) > 1 else parts[0]
    # Empty parts leave doubled or edge spaces behind; the parts themselves have none.
    return joined.str.replace(" {2,}", " ", regex=True).str.strip()
