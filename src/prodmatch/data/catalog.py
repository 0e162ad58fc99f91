"""Catalog CSVs: schema, validation with a counted report, text views and the :class:`Catalog` object.

The CSV schema is the study's, read as-is (one row per product card, images referenced relative to an image
root). Rows that cannot be used are dropped with a counted, logged reason, never silently; ``strict=True``
turns any drop into a :class:`~prodmatch.errors.CatalogError`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from prodmatch.data.images import image_problem, resolve_image_path
from prodmatch.errors import CatalogError, ConfigError, ImageError

__all__ = [
    "CHECK_IMAGES",
    "IMAGE_VIEW",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "TEXT_VIEWS",
    "Catalog",
    "ValidationReport",
    "load_catalog",
    "normalize_text",
    "text_view",
]

logger = logging.getLogger("prodmatch.data")

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
}
# Identifier-like columns: compared by equality downstream, so surrounding whitespace is stripped.
_ID_COLUMNS = ("img_ref", "target", "dealer", "sku")
_EXAMPLES = 5  # row numbers kept per drop reason

# Whitespace written as literal characters so the pattern means the same to Python's re and to RE2
# (pyarrow-backed strings), whose \s is ASCII-only.
_WHITESPACE = "[\\s\x0b\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+"
_ZERO_WIDTH = "[\u200b\u200c\u200d\u2060\ufeff]"

_FIXES: dict[str, str] = {
    "empty_title": "fill in the title",
    "empty_target": "fill in the target",
    "duplicate": "remove the repeated rows",
    "empty_img_ref": "fill in img_ref (or load with require_images=false for a text-only run)",
    "unsafe_image_path": "make img_ref a relative path inside the image root",
    "missing_image": "put the image files under the image root or correct img_ref",
    "unreadable_image": "replace the corrupt image files",
    "image_too_large": "shrink the oversized images",
}


@dataclass
class ValidationReport:
    """What loading did to a CSV: rows in = rows kept + sum of rows dropped by reason."""

    source: str
    rows_in: int
    rows_kept: int
    dropped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[int]] = field(default_factory=dict)  # reason -> first 0-based data-row positions
    notes: dict[str, int] = field(
        default_factory=dict
    )  # counted oddities that drop nothing (e.g. bad prices)

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())

    def summary(self) -> str:
        """One line, e.g. ``company_data.csv: 70 rows in, 68 kept, 2 dropped (missing_image: 2 [rows 3, 5])``."""
        line = f"{self.source}: {self.rows_in} rows in, {self.rows_kept} kept, {self.rows_dropped} dropped"
        if self.dropped:
            line += f" ({_describe_drops(self)})"
        if self.notes:
            line += "; notes: " + ", ".join(f"{key}: {n}" for key, n in self.notes.items())
        return line


def _describe_drops(report: ValidationReport) -> str:
    parts = []
    for reason, count in report.dropped.items():
        rows = ", ".join(map(str, report.examples.get(reason, [])))
        more = ", ..." if count > len(report.examples.get(reason, [])) else ""
        parts.append(f"{reason}: {count} [rows {rows}{more}]")
    return "; ".join(parts)


# --------------------------------------------------------------------------- text


def normalize_text(values: pd.Series) -> pd.Series:
    """NFKC, zero-width characters removed, whitespace runs (newlines, nbsp, ...) collapsed, stripped."""
    text = values.fillna("").astype(str)
    return (
        text.str.normalize("NFKC")
        .str.replace(_ZERO_WIDTH, "", regex=True)
        .str.replace(_WHITESPACE, " ", regex=True)
        .str.strip()
    )


def _check_view(view: str) -> tuple[str, ...]:
    if view in _VIEW_COLUMNS:
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


# --------------------------------------------------------------------------- reading


def _read_csv(path: Path) -> pd.DataFrame:
    name = path.name
    if not path.exists():
        raise CatalogError(
            f"{name}: catalog CSV not found at {path}; check the path (data.* config) or create it"
        )
    if path.is_dir():
        raise CatalogError(f"{name}: {path} is a directory, not a CSV file; point to the catalog .csv file")
    try:
        # Only empty fields are missing: titles or SKUs such as "NA" / "None" stay text.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
    except pd.errors.EmptyDataError as err:
        raise CatalogError(
            f"{name}: the file is empty; write the header and product rows into {path}"
        ) from err
    except UnicodeDecodeError as err:
        raise CatalogError(f"{name}: not UTF-8 encoded ({err.reason}); re-save the file as UTF-8") from err
    except (pd.errors.ParserError, ValueError) as err:
        reason = str(err).strip().splitlines()[0]
        raise CatalogError(
            f"{name}: cannot be parsed as CSV ({reason}); fix the file's quoting/columns"
        ) from err
    except OSError as err:
        raise CatalogError(
            f"{name}: cannot be read ({err.strerror or err}); check the file's permissions"
        ) from err
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _check_columns(frame: pd.DataFrame, name: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if not missing:
        if frame.empty:
            raise CatalogError(f"{name}: the file has a header but no data rows; add product rows")
        return
    noun = "column" if len(missing) == 1 else "columns"
    hint = ""
    if len(frame.columns) == 1 and any(sep in frame.columns[0] for sep in (";", "\t", "|")):
        hint = "; the header looks like it uses another separator: save the file comma-separated"
    raise CatalogError(
        f"{name}: missing required {noun} {', '.join(repr(c) for c in missing)}; a catalog CSV needs: "
        f"{', '.join(REQUIRED_COLUMNS)} (optional: {', '.join(OPTIONAL_COLUMNS)}){hint}"
    )


def _clean(raw: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Schema columns only; strings with '' for missing; price numeric (NaN when empty or not a number)."""
    columns = [*REQUIRED_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in raw.columns)]
    frame = raw[columns].copy()
    for col in columns:
        if col != "price":
            frame[col] = frame[col].fillna("").astype(str)
    for col in _ID_COLUMNS:
        if col in frame.columns:
            frame[col] = frame[col].str.strip()
    price_text = frame["price"].fillna("").astype(str).str.replace(_WHITESPACE, "", regex=True)
    frame["price"] = pd.to_numeric(price_text.where(price_text != ""), errors="coerce").astype("float64")
    notes = {
        "price_missing": int((price_text == "").sum()),
        "price_not_numeric": int(((price_text != "") & frame["price"].isna()).sum()),
    }
    return frame, {k: v for k, v in notes.items() if v}


# --------------------------------------------------------------------------- validation


def _image_reasons(refs: Sequence[str], root: Path, check: str) -> list[str | None]:
    """Per-row image reason key (or None); stat/decode is file-system work, so threads help on "decode"."""

    def one(ref: str) -> str | None:
        if not ref:
            return "empty_img_ref"
        try:
            path = resolve_image_path(root, ref)
        except ImageError:
            return "unsafe_image_path"
        return None if check == "none" else image_problem(path, decode=check == "decode")

    if check == "decode" and len(refs) > 32:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            return list(pool.map(one, refs))
    return [one(ref) for ref in refs]


def _drop_reasons(frame: pd.DataFrame, root: Path, require_images: bool, check: str) -> pd.Series:
    """First failing reason per row ('' = keep); checks run on rows still alive, cheapest first."""
    reasons = pd.Series("", index=frame.index, dtype=object)

    def mark(mask: pd.Series | np.ndarray, reason: str) -> None:
        reasons[np.asarray(mask, dtype=bool) & (reasons == "").to_numpy()] = reason

    mark(normalize_text(frame["title"]) == "", "empty_title")
    mark(frame["target"] == "", "empty_target")
    alive = reasons == ""
    dup = frame[alive].duplicated(keep="first")  # all schema columns equal; first copy kept
    mark(dup.reindex(frame.index, fill_value=False), "duplicate")
    if require_images:
        alive = (reasons == "").to_numpy()
        found = _image_reasons(frame["img_ref"].to_numpy(dtype=object)[alive].tolist(), root, check)
        reasons[alive] = [r or "" for r in found]
    return reasons


def _build_report(name: str, reasons: pd.Series, notes: dict[str, int]) -> ValidationReport:
    dropped_rows = reasons[reasons != ""]
    counts = dropped_rows.value_counts(sort=False)
    order = [r for r in _FIXES if r in counts.index] + [r for r in counts.index if r not in _FIXES]
    dropped = {r: int(counts[r]) for r in order}
    examples = {r: dropped_rows.index[dropped_rows == r][:_EXAMPLES].tolist() for r in order}
    return ValidationReport(
        source=name,
        rows_in=len(reasons),
        rows_kept=len(reasons) - len(dropped_rows),
        dropped=dropped,
        examples=examples,
        notes=notes,
    )


def _drop_error(report: ValidationReport, strict: bool) -> CatalogError:
    fixes = "; ".join(_FIXES.get(r, "fix these rows") for r in report.dropped)
    if strict:
        return CatalogError(
            f"{report.source}: {report.rows_dropped} of {report.rows_in} rows fail validation "
            f"({_describe_drops(report)}); {fixes}, or load with strict=false to drop them"
        )
    return CatalogError(
        f"{report.source}: all {report.rows_in} rows were dropped ({_describe_drops(report)}); {fixes}"
    )


def load_catalog(
    csv_path: str | Path,
    image_root: str | Path | None = None,
    *,
    require_images: bool = True,
    strict: bool = False,
    check_images: str = "exists",
) -> Catalog:
    """Read and validate a catalog CSV.

    ``image_root`` (default: the CSV's folder) is where ``img_ref`` paths are relative to.
    ``check_images``: "exists" (stat), "decode" (open, verify and decode at reduced scale) or "none" (only the
    path safety check). ``require_images=False`` never touches image files and drops no row for its image.
    """
    if check_images not in CHECK_IMAGES:
        raise ConfigError(
            f"check_images={check_images!r} is not valid; use one of: {', '.join(CHECK_IMAGES)}"
        )
    csv_path = Path(csv_path).expanduser()
    root = (Path(image_root).expanduser() if image_root is not None else csv_path.parent).resolve()
    raw = _read_csv(csv_path)
    _check_columns(raw, csv_path.name)
    if require_images and check_images != "none" and not root.is_dir():
        raise CatalogError(
            f"{csv_path.name}: image root {root} is not a directory; pass image_root=<folder the img_ref paths "
            "are relative to>, or require_images=false for a text-only run"
        )
    frame, notes = _clean(raw)
    if not require_images and (frame["img_ref"] == "").any():
        notes["img_ref_empty"] = int((frame["img_ref"] == "").sum())
    reasons = _drop_reasons(frame, root, require_images, check_images)
    report = _build_report(csv_path.name, reasons, notes)
    if report.dropped and (strict or report.rows_kept == 0):
        raise _drop_error(report, strict)
    logger.log(logging.WARNING if report.dropped else logging.INFO, report.summary())
    kept = (reasons == "").to_numpy()
    frame = frame[kept].copy()
    frame["row_id"] = np.flatnonzero(kept).astype(np.int64)
    catalog = Catalog(frame.reset_index(drop=True), image_root=root, name=csv_path.stem, report=report)
    catalog.csv_path = csv_path.resolve()
    return catalog


# --------------------------------------------------------------------------- Catalog


class Catalog:
    """Validated product cards. Row order is stable; ``row_ids`` maps each kept row to its CSV row position.

    ``frame`` holds the schema columns (+ ``sku`` when present; missing strings are ``''``, ``price`` is float
    with NaN) and ``row_id``. Treat it as read-only: texts and the fingerprint are cached.
    """

    def __init__(
        self, frame: pd.DataFrame, image_root: Path | None, name: str, report: ValidationReport
    ) -> None:
        self.frame = frame
        self.image_root = Path(image_root) if image_root is not None else None
        self.name = name
        self.report = report
        self._texts: dict[str, list[str]] = {}
        self._fingerprint: str | None = None
        self.csv_path: Path | None = None  # the CSV the rows were read from (provenance of saved results)

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return f"Catalog(name={self.name!r}, rows={len(self)}, targets={self.frame['target'].nunique()})"

    def texts(self, view: str) -> list[str]:
        """Normalised text of each row for ``view`` (one of TEXT_VIEWS)."""
        if view not in self._texts:
            self._texts[view] = text_view(self.frame, view).tolist()
        return list(self._texts[view])

    def image_paths(self) -> list[Path]:
        """Image file of each row (image_root / img_ref); refs are checked to stay inside image_root."""
        if self.image_root is None:
            raise CatalogError(
                f"{self.name}: no image root is set; load the catalog with image_root=<folder>"
            )
        paths: list[Path] = []
        bad: list[int] = []
        for pos, ref in enumerate(self.frame["img_ref"].to_numpy(dtype=object)):
            try:
                paths.append(resolve_image_path(self.image_root, ref))
            except ImageError:
                bad.append(int(self.frame["row_id"].iat[pos]))
        if bad:
            raise CatalogError(
                f"{self.name}: {len(bad)} rows have an empty or unsafe img_ref (rows {bad[:_EXAMPLES]}); "
                "load the catalog with require_images=true to drop them, or fix img_ref"
            )
        return paths

    @property
    def targets(self) -> np.ndarray:
        return self.frame["target"].to_numpy(dtype=object)

    @property
    def skus(self) -> np.ndarray | None:
        """SKU per row ('' where unknown), or None when the CSV has no sku column."""
        return self.frame["sku"].to_numpy(dtype=object) if "sku" in self.frame.columns else None

    @property
    def row_ids(self) -> np.ndarray:
        return self.frame["row_id"].to_numpy(dtype=np.int64)

    @property
    def dealers(self) -> np.ndarray:
        return self.frame["dealer"].to_numpy(dtype=object)

    def fingerprint(self) -> str:
        """Stable content hash of the kept rows (schema columns, row ids) and the image root; cached."""
        if self._fingerprint is None:
            digest = hashlib.blake2b(digest_size=20)
            digest.update(f"prodmatch-catalog-v1\0{self.image_root}\0{len(self)}\0".encode())
            for col in [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in self.frame.columns]:
                digest.update(col.encode() + b"\0")
                digest.update(_column_bytes(self.frame[col]))
            digest.update(self.row_ids.astype("<i8").tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def subset(self, indices: np.ndarray | Sequence[int]) -> Catalog:
        """Rows at ``indices`` (positions or a boolean mask), in that order; row_ids are kept."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        frame = self.frame.iloc[idx.astype(np.int64, copy=False)].reset_index(drop=True)
        part = Catalog(frame, image_root=self.image_root, name=self.name, report=self.report)
        part.csv_path = self.csv_path
        return part


def _column_bytes(values: pd.Series) -> bytes:
    """Unambiguous bytes of a column: floats as canonical float64, strings as lengths + joined UTF-8."""
    if values.dtype.kind == "f":
        arr = values.to_numpy(dtype=np.float64)
        return np.where(np.isnan(arr), np.nan, arr).astype("<f8").tobytes()
    text = values.fillna("").astype(str)
    lengths = text.str.len().to_numpy(dtype=np.int64).astype("<i8").tobytes()
    return lengths + "\x1f".join(text.tolist()).encode("utf-8", "surrogatepass")
