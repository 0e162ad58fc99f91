"""Fixtures of the encoder tests: the hand-made catalog (see cards.py)."""

from __future__ import annotations

import pytest

from prodmatch.data.catalog import Catalog, load_catalog
from tests.unit.encoders.cards import write_catalog


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    root = tmp_path_factory.mktemp("catalog")
    return load_catalog(write_catalog(root), root)
