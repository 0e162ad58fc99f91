"""Where a run's two catalogs come from: the `data` config group maps onto :class:`CatalogSource`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prodmatch.data.catalog import Catalog, load_catalog
from prodmatch.errors import CatalogError

log = logging.getLogger("prodmatch.data")


@dataclass
class CatalogSource:
    """The query catalog (the company's cards) and the database (other sellers' cards) of one dataset."""

    name: str
    queries_csv: str
    database_csv: str
    image_root: str | None = None
    image_size: int = 224  # working image size of models on this data (encoders and training read it)
    strict: bool = False
    check_images: str = "exists"
    synthetic: dict[str, Any] | None = None  # {seed, scale}: generate the demo catalog when it is missing

    def load(self, require_images: bool = True) -> tuple[Catalog, Catalog]:
        """Validate and load (queries, database); generate the synthetic catalog first when configured."""
        self._ensure_files()
        kwargs = dict(require_images=require_images, strict=self.strict, check_images=self.check_images)
        queries = load_catalog(self.queries_csv, self.image_root, **kwargs)
        database = load_catalog(self.database_csv, self.image_root, **kwargs)
        return queries, database

    def _ensure_files(self) -> None:
        """Generate the synthetic catalog on first use, or say where the user's files must go."""
        if self.synthetic is not None:
            from prodmatch.data.synthetic import ensure_catalog

            out = Path(self.queries_csv).parent
            if Path(self.database_csv).parent != out:
                raise CatalogError(
                    f"data={self.name}: generated catalogs keep both CSVs in one folder; "
                    f"set data.queries_csv and data.database_csv to files in the same folder"
                )
            ensure_catalog(out, **self.synthetic)
            return
        for csv in (self.queries_csv, self.database_csv):
            if not Path(csv).is_file():
                raise CatalogError(
                    f"{csv}: file not found; put the catalog CSVs (and images/) there or point "
                    f"data.queries_csv / data.database_csv / data.image_root at your copies"
                )
