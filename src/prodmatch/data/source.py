"""Where a run's two catalogs come from: the `data` config group maps onto :class:`CatalogSource`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prodmatch.data import synthetic
from prodmatch.data.catalog import Catalog, load_catalog
from prodmatch.data.synthetic.generation import foreign_entries, read_marker
from prodmatch.errors import CatalogError
from prodmatch.utils.hashing import check_identity

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
    # {seed, scale[, profile]}: generate the catalog when it is missing
    synthetic: dict[str, Any] | None = None
    # how caches and reuse recognise an image file: "stat" or "content" (prodmatch.utils.hashing.files_identity)
    identity: str = "stat"

    def __post_init__(self) -> None:
        check_identity(self.identity)

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
            out = Path(self.queries_csv).parent
            if Path(self.database_csv).parent != out:
                raise CatalogError(
                    f"data={self.name}: generated catalogs keep both CSVs in one folder; "
                    f"set data.queries_csv and data.database_csv to files in the same folder"
                )
            seed, scale = self.synthetic.get("seed", 0), self.synthetic.get("scale", "demo")
            check_generation_target(out, seed, scale, self.synthetic.get("profile", "default"))
            synthetic.ensure_catalog(out, **self.synthetic)
            return
        for csv in (self.queries_csv, self.database_csv):
            if not Path(csv).is_file():
                raise CatalogError(
                    f"{csv}: file not found; put the catalog CSVs (and images/) there or point "
                    f"data.queries_csv / data.database_csv / data.image_root at your copies"
                )


def check_generation_target(out: Path, seed: int, scale: str, profile: str = "default") -> None:
    """Allow generating into ``out`` only when it is missing or empty, or holds the generator's own catalog
    of this seed, scale and profile (then an older generator version is regenerated, and the log says so).

    Anything else (a catalog of another seed, scale or profile, files without the generator's marker) is refused with
    one line: regenerating would silently replace files the user may be pointing the run at.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise CatalogError(
            f"data.queries_csv: {out} is a file, not a folder; point data.queries_csv and data.database_csv "
            "into a folder for the generated catalog, or set data.synthetic=null"
        )
    fixes = (
        "set data.synthetic=null to use the files as they are, or point data.queries_csv and "
        "data.database_csv into another folder (e.g. paths.data_dir=<another folder>) to generate there"
    )
    marker = read_marker(out)
    if marker is None:
        foreign = foreign_entries(out)
        if not foreign:  # empty, or placeholders only
            return
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise CatalogError(
            f"data.queries_csv: {out} holds files the synthetic generator did not write ({shown}), and "
            f"data.synthetic would generate a catalog over them; {fixes}"
        )
    held = (marker.get("seed"), marker.get("scale"), marker.get("profile", "default"))
    if held != (seed, scale, profile):
        raise CatalogError(
            f"data.queries_csv: {out} holds the synthetic catalog of seed={held[0]}, scale={held[1]}, "
            f"profile={held[2]}, not data.synthetic seed={seed}, scale={scale}, profile={profile}; set "
            f"data.synthetic.seed={held[0]} data.synthetic.scale={held[1]} ++data.synthetic.profile={held[2]} "
            f"to use it, or {fixes}"
        )
    if marker.get("version") != synthetic.GENERATOR_VERSION:
        log.warning(
            "%s: synthetic catalog of generator version %s; regenerating it with version %s (seed=%s, scale=%s)",
            out,
            marker.get("version"),
            synthetic.GENERATOR_VERSION,
            seed,
            scale,
        )
