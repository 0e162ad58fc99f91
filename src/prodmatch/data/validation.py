"""Reading a catalog CSV and validating its rows into a counted :class:`ValidationReport`.

Rows that cannot be used are dropped with a counted, logged reason, never silently; the caller turns drops
into a :class:`~prodmatch.errors.CatalogError` under ``strict=True`` or when no row is left.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from prodmatch.data.images import image_problem, resolve_image_path
from prodmatch.data.schema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, WHITESPACE, normalize_text
from prodmatch.errors import CatalogError, ConfigError, ImageError
from prodmatch.utils.hashing import hasher

_ID_COLUMNS = ("img_ref", "target", "dealer", "sku")
ALL_COLUMNS = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
EXAMPLES = 5  # row numbers kept per drop reason


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


# --------------------------------------------------------------------------- reading


def read_csv(path: Path) -> tuple[pd.DataFrame, str]:
    """The CSV's cells as strings, and the hash of the very bytes they were parsed from."""
    name = path.name
    if not path.exists():
        raise CatalogError(
            f"{name}: catalog CSV not found at {path}; check the path (data.* config) or create it"
        )
    if path.is_dir():
        raise CatalogError(f"{name}: {path} is a directory, not a CSV file; point to the catalog .csv file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CatalogError(
            f"{name}: cannot be read ({err.strerror or err}); check the file's permissions"
        ) from err
    digest = hasher()
    digest.update(data)
    try:
        # Only empty fields are missing: titles or SKUs such as "NA" / "None" stay text.
        frame = pd.read_csv(
            io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig"
        )
    except pd.errors.EmptyDataError as err:
        raise CatalogError(
            f"{name}: the file is empty; write the header and product rows into {path}"
        ) from err
    except UnicodeDecodeError as err:
        raise CatalogError(f"{name}: not UTF-8 encoded ({err.reason}); re-save the file as UTF-8") from err
    except (pd.errors.ParserError, ValueError) as err:
        delimiter = _other_delimiter(path)
        if delimiter is not None:
            raise CatalogError(_delimiter_message(name, delimiter)) from err
        reason = str(err).strip().splitlines()[0]
        raise CatalogError(
            f"{name}: cannot be parsed as CSV ({reason}); fix the file's quoting/columns"
        ) from err
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame, digest.hexdigest()


def map_columns(frame: pd.DataFrame, columns: Mapping[str, str | None] | None, path: Path) -> pd.DataFrame:
    """The CSV's columns renamed to the schema's: ``columns`` maps a schema field to the user's column name
    (``data.columns.title=name``); unmapped fields keep their own name."""
    mapping = {name: their for name, their in (columns or {}).items() if their is not None}
    unknown = sorted(set(mapping) - set(ALL_COLUMNS))
    if unknown:
        raise ConfigError(
            f"data.columns.{unknown[0]}: not a catalog field; map one of: {', '.join(ALL_COLUMNS)}"
        )
    for name, their in mapping.items():
        if their not in frame.columns:
            shown = ", ".join(map(str, frame.columns[:12])) + (", ..." if len(frame.columns) > 12 else "")
            raise CatalogError(
                f"data.columns.{name}={their}: {path.name} has no column {their!r} (its columns: {shown})"
            )
    # copies, not a rename: a field may take a column another field also reads, or replace one of the same name
    return frame.assign(**{name: frame[their] for name, their in mapping.items()})


def check_columns(frame: pd.DataFrame, path: Path, needed: Sequence[str] = REQUIRED_COLUMNS) -> None:
    """The columns the run reads (``needed``) are there, and there are data rows."""
    name = path.name
    missing = [c for c in needed if c not in frame.columns]
    if not missing:
        if frame.empty:
            raise CatalogError(f"{name}: the file has a header but no data rows; add product rows")
        return
    delimiter = _other_delimiter(path)
    if delimiter is not None:
        raise CatalogError(_delimiter_message(name, delimiter))
    noun = "column" if len(missing) == 1 else "columns"
    raise CatalogError(
        f"{name}: missing required {noun} {', '.join(repr(c) for c in missing)}; a catalog CSV needs: "
        f"{', '.join(needed)} (optional: {', '.join(OPTIONAL_COLUMNS)}); name yours that way, or map one of "
        f"yours with data.columns.{missing[0]}=<your column>"
    )


def fill_unread(frame: pd.DataFrame) -> pd.DataFrame:
    """The schema columns the CSV does not have (the run does not read them), added empty."""
    absent = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    return frame.assign(**{c: pd.Series(pd.NA, index=frame.index, dtype=object) for c in absent})


_DELIMITERS = {";": "semicolons (;)", "\t": "tabs", "|": "pipes (|)"}


def _other_delimiter(path: Path) -> str | None:
    """The delimiter the header uses when it is not a comma: the one that splits it into schema columns."""
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as fh:
            header = fh.readline().strip()
    except OSError:
        return None

    def schema_hits(sep: str) -> int:
        return len({c.strip().strip('"') for c in header.split(sep)} & set(REQUIRED_COLUMNS))

    comma = schema_hits(",")
    best = max(_DELIMITERS, key=schema_hits)
    return best if schema_hits(best) > max(comma, 1) else None


def _delimiter_message(name: str, delimiter: str) -> str:
    return (
        f"{name}: the file is separated by {_DELIMITERS[delimiter]}, not commas; re-save it as a "
        f"comma-separated CSV (e.g. pandas: pd.read_csv(path, sep={delimiter!r}, dtype=str)"
        ".to_csv(path, index=False))"
    )


def clean(raw: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Schema columns only; strings with '' for missing; price numeric (NaN when empty or not a number)."""
    columns = [*REQUIRED_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in raw.columns)]
    frame = raw[columns].copy()
    for col in columns:
        if col != "price":
            frame[col] = frame[col].fillna("").astype(str)
    for col in _ID_COLUMNS:
        if col in frame.columns:
            frame[col] = frame[col].str.strip()
    price_text = frame["price"].fillna("").astype(str).str.replace(WHITESPACE, "", regex=True)
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


def drop_reasons(
    frame: pd.DataFrame, root: Path, require_images: bool, check: str, titles: bool = True
) -> pd.Series:
    """First failing reason per row ('' = keep); checks run on rows still alive, cheapest first. ``titles``:
    whether the run reads titles (an empty one drops the row)."""
    reasons = pd.Series("", index=frame.index, dtype=object)

    def mark(mask: pd.Series | np.ndarray, reason: str) -> None:
        reasons[np.asarray(mask, dtype=bool) & (reasons == "").to_numpy()] = reason

    if titles:
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


def build_report(name: str, reasons: pd.Series, notes: dict[str, int]) -> ValidationReport:
    dropped_rows = reasons[reasons != ""]
    counts = dropped_rows.value_counts(sort=False)
    order = [r for r in _FIXES if r in counts.index] + [r for r in counts.index if r not in _FIXES]
    dropped = {r: int(counts[r]) for r in order}
    examples = {r: dropped_rows.index[dropped_rows == r][:EXAMPLES].tolist() for r in order}
    return ValidationReport(
        source=name,
        rows_in=len(reasons),
        rows_kept=len(reasons) - len(dropped_rows),
        dropped=dropped,
        examples=examples,
        notes=notes,
    )


def drop_error(report: ValidationReport, strict: bool) -> CatalogError:
    fixes = "; ".join(_FIXES.get(r, "fix these rows") for r in report.dropped)
    if strict:
        return CatalogError(
            f"{report.source}: {report.rows_dropped} of {report.rows_in} rows fail validation "
            f"({_describe_drops(report)}); {fixes}, or load with strict=false to drop them"
        )
    return CatalogError(
        f"{report.source}: all {report.rows_in} rows were dropped ({_describe_drops(report)}); {fixes}"
    )
