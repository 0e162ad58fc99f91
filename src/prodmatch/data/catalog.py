"""The :class:`Catalog` object and :func:`load_catalog`, which reads, validates and wraps a catalog CSV.

The CSV schema is the study's, read as-is (one row per product card, images referenced relative to an image
root; see :mod:`prodmatch.data.schema`). Rows that cannot be used are dropped with a counted, logged reason,
never silently (:mod:`prodmatch.data.validation`); ``strict=True`` turns any drop into a
:class:`~prodmatch.errors.CatalogError`. The schema names are re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from prodmatch.data.images import resolve_image_path
from prodmatch.data.schema import (
    CHECK_IMAGES,
    IMAGE_VIEW,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    TEXT_VIEWS,
    normalize_text,
    text_view,
)
from prodmatch.data.validation import (
    EXAMPLES,
    ValidationReport,
    build_report,
    check_columns,
    clean,
    drop_error,
    drop_reasons,
    read_csv,
)
from prodmatch.errors import CatalogError, ConfigError, ImageError
from prodmatch.utils.hashing import file_hash, files_identity, hasher

__all__ = [
    "CHECK_IMAGES",
    "IMAGE_VIEW",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "TEXT_VIEWS",
    "Catalog",
    "ValidationReport",
    "csv_identity",
    "load_catalog",
    "normalize_text",
    "text_view",
]

logger = logging.getLogger("prodmatch.data")


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
            f"data.check_images={check_images!r} is not valid; use one of: {', '.join(CHECK_IMAGES)}"
        )
    csv_path = Path(csv_path).expanduser()
    root = (Path(image_root).expanduser() if image_root is not None else csv_path.parent).resolve()
    raw, csv_hash = read_csv(csv_path)
    check_columns(raw, csv_path)
    if require_images and check_images != "none" and not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        unset = "" if image_root is not None else " (data.image_root is unset, so the CSV's folder is used)"
        raise CatalogError(
            f"{csv_path.name}: the image root {root}{unset} {what}; set data.image_root=<folder the img_ref "
            "paths are relative to> (image_root= when calling load_catalog)"
        )
    frame, notes = clean(raw)
    if not require_images and (frame["img_ref"] == "").any():
        notes["img_ref_empty"] = int((frame["img_ref"] == "").sum())
    reasons = drop_reasons(frame, root, require_images, check_images)
    report = build_report(csv_path.name, reasons, notes)
    if report.dropped and (strict or report.rows_kept == 0):
        raise drop_error(report, strict)
    logger.log(logging.WARNING if report.dropped else logging.INFO, report.summary())
    kept = (reasons == "").to_numpy()
    frame = frame[kept].copy()
    frame["row_id"] = np.flatnonzero(kept).astype(np.int64)
    return Catalog(
        frame.reset_index(drop=True),
        image_root=root,
        name=csv_path.stem,
        report=report,
        csv_path=csv_path,
        csv_hash=csv_hash,
    )


# --------------------------------------------------------------------------- Catalog


def csv_identity(path: str | Path) -> str:
    """Identity of a catalog CSV as a file: the hash of its bytes (any edit, even one the loader drops, counts)."""
    return file_hash(path)


class Catalog:
    """Validated product cards. Row order is stable; ``row_ids`` maps each kept row to its CSV row position.

    ``frame`` holds the schema columns (+ ``sku`` when present; missing strings are ``''``, ``price`` is float
    with NaN) and ``row_id``. Treat it as read-only: texts, the fingerprint and the source identity are cached.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        image_root: Path | None,
        name: str,
        report: ValidationReport,
        csv_path: Path | None = None,
        csv_hash: str | None = None,
    ) -> None:
        self.frame = frame
        self.image_root = Path(image_root) if image_root is not None else None
        self.name = name
        self.report = report
        self.csv_path = Path(csv_path) if csv_path is not None else None  # the file it was read from
        self.csv_hash = csv_hash  # csv_identity of the bytes it was parsed from
        self._texts: dict[str, list[str]] = {}
        self._fingerprint: str | None = None
        self._images_hash: str | None = None
        self._images_hashed = False

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
                f"{self.name}: {len(bad)} rows have an empty or unsafe img_ref (rows {bad[:EXAMPLES]}); "
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
            digest = hasher()
            digest.update(f"prodmatch-catalog-v2\0{self.image_root}\0{len(self)}\0".encode())
            for col in [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in self.frame.columns]:
                digest.update(col.encode() + b"\0")
                digest.update(_column_bytes(self.frame[col]))
            digest.update(self.row_ids.astype("<i8").tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    @property
    def source_identity(self) -> dict[str, str | None]:
        """What the catalog was loaded from, for reuse decisions: ``{"csv": ..., "images": ...}``.

        ``csv`` is the :func:`csv_identity` of the bytes the rows were parsed from (hashed while loading, so a
        file edited since then cannot pass for the loaded one; None for a catalog not read from a file).
        ``images`` is the :func:`~prodmatch.utils.hashing.files_identity` (stat or content) of the kept rows' image
        files, computed on first use and cached; None when there is no image root or an image file is missing
        (a text-only catalog). Compare a file on disk with ``csv_identity(path)``.
        """
        if not self._images_hashed:
            self._images_hash = self._images_identity()
            self._images_hashed = True
        return {"csv": self.csv_hash, "images": self._images_hash}

    def _images_identity(self) -> str | None:
        if self.image_root is None:
            return None
        try:
            return files_identity(self.image_paths())
        except (OSError, CatalogError):  # missing files or unusable refs: no image identity to offer
            return None

    def subset(self, indices: np.ndarray | Sequence[int]) -> Catalog:
        """Rows at ``indices`` (positions or a boolean mask), in that order; row_ids are kept."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return self._with_frame(self.frame.iloc[idx.astype(np.int64, copy=False)].reset_index(drop=True))

    def with_column(self, name: str, values: Sequence | np.ndarray) -> Catalog:
        """The same rows with one more column that is not part of the schema (e.g. each card's product group);
        the fingerprint, which covers the schema columns only, stays the same."""
        if name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, "row_id"):
            raise ValueError(f"{name!r} is a schema column; with_column adds columns outside the schema")
        values = np.asarray(values, dtype=object).ravel()
        if len(values) != len(self):
            raise ValueError(f"column {name!r} has {len(values)} values for {len(self)} rows")
        return self._with_frame(self.frame.assign(**{name: values}))

    def _with_frame(self, frame: pd.DataFrame) -> Catalog:
        return Catalog(
            frame,
            image_root=self.image_root,
            name=self.name,
            report=self.report,
            csv_path=self.csv_path,
            csv_hash=self.csv_hash,
        )


def _column_bytes(values: pd.Series) -> bytes:
    """Unambiguous bytes of a column: floats as canonical float64, strings as lengths + joined UTF-8."""
    if values.dtype.kind == "f":
        arr = values.to_numpy(dtype=np.float64)
        return np.where(np.isnan(arr), np.nan, arr).astype("<f8").tobytes()
    text = values.fillna("").astype(str)
    lengths = text.str.len().to_numpy(dtype=np.int64).astype("<i8").tobytes()
    return lengths + "\x1f".join(text.tolist()).encode("utf-8", "surrogatepass")
