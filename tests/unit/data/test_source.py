"""CatalogSource: when the synthetic catalog may be generated into the configured folder, and when not."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import pytest

from prodmatch.data import synthetic
from prodmatch.data.source import CatalogSource
from prodmatch.errors import CatalogError


def _source(folder: Path, seed: int = 0, scale: str = "tiny") -> CatalogSource:
    return CatalogSource(
        name="synthetic",
        queries_csv=str(folder / "company_data.csv"),
        database_csv=str(folder / "comparable_data.csv"),
        image_root=str(folder),
        synthetic={"seed": seed, "scale": scale},
    )


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def generated(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, int, str]]:
    """Records generation requests instead of generating (the generator has its own tests)."""
    calls: list[tuple[Path, int, str]] = []
    monkeypatch.setattr(
        synthetic, "ensure_catalog", lambda out, seed, scale: calls.append((out, seed, scale))
    )
    return calls


@pytest.fixture
def copy_of_tiny(tiny_data_dir: Path, tmp_path: Path) -> Path:
    """A copy of the tiny catalog (seed 0) with its generator marker."""
    folder = tmp_path / "catalog"
    shutil.copytree(tiny_data_dir / "synthetic", folder)
    return folder


def _set_marker(folder: Path, **changes: object) -> None:
    marker = json.loads((folder / synthetic.MARKER).read_text(encoding="utf-8"))
    (folder / synthetic.MARKER).write_text(json.dumps(dict(marker, **changes)), encoding="utf-8")


def test_a_missing_or_empty_folder_is_generated(tmp_path: Path, generated) -> None:
    missing, empty = tmp_path / "missing", tmp_path / "empty"
    (empty / ".gitkeep").parent.mkdir()
    (empty / ".gitkeep").touch()
    for folder in (missing, empty):
        _source(folder)._ensure_files()
    assert generated == [(missing, 0, "tiny"), (empty, 0, "tiny")]


def test_the_generators_own_catalog_of_this_seed_and_scale_is_used(copy_of_tiny: Path) -> None:
    before = _digest(copy_of_tiny)
    queries, database = _source(copy_of_tiny).load()
    assert len(queries) > 0 and len(database) > 0
    assert _digest(copy_of_tiny) == before


def test_an_older_generator_version_is_regenerated_and_logged(
    copy_of_tiny: Path, generated, caplog: pytest.LogCaptureFixture
) -> None:
    _set_marker(copy_of_tiny, version=synthetic.GENERATOR_VERSION - 1)
    with caplog.at_level(logging.WARNING, logger="prodmatch.data"):
        _source(copy_of_tiny)._ensure_files()
    assert generated == [(copy_of_tiny, 0, "tiny")]
    assert "regenerating" in caplog.text and f"version {synthetic.GENERATOR_VERSION - 1}" in caplog.text


@pytest.mark.parametrize(("seed", "scale"), [(1, "tiny"), (0, "demo")])
def test_a_catalog_of_another_seed_or_scale_is_refused_and_left_alone(
    copy_of_tiny: Path, seed: int, scale: str
) -> None:
    before = _digest(copy_of_tiny)
    with pytest.raises(CatalogError) as info:
        _source(copy_of_tiny, seed=seed, scale=scale).load()  # the real generator: nothing may be replaced
    message = str(info.value)
    assert "\n" not in message
    assert str(copy_of_tiny) in message and "seed=0, scale=tiny" in message
    assert f"seed={seed}, scale={scale}" in message
    assert "data.synthetic=null" in message and "data.queries_csv" in message
    assert _digest(copy_of_tiny) == before


def test_files_without_the_generators_marker_are_refused_and_left_alone(copy_of_tiny: Path) -> None:
    (copy_of_tiny / synthetic.MARKER).unlink()  # e.g. the user's own copy of a catalog
    before = _digest(copy_of_tiny)
    with pytest.raises(CatalogError) as info:
        _source(copy_of_tiny).load()
    message = str(info.value)
    assert "\n" not in message
    assert str(copy_of_tiny) in message and "did not write" in message and "company_data.csv" in message
    assert "data.synthetic=null" in message and "data.queries_csv" in message
    assert _digest(copy_of_tiny) == before


def test_with_synthetic_null_the_files_are_used_as_they_are(copy_of_tiny: Path) -> None:
    _set_marker(copy_of_tiny, seed=7)
    source = _source(copy_of_tiny)
    source.synthetic = None
    queries, _ = source.load()
    assert len(queries) > 0


def test_a_catalog_of_another_profile_is_refused_and_left_alone(copy_of_tiny: Path) -> None:
    before = _digest(copy_of_tiny)
    source = _source(copy_of_tiny)
    source.synthetic = {"seed": 0, "scale": "tiny", "profile": "hard"}
    with pytest.raises(CatalogError) as info:
        source.load()  # the default catalog there must not be replaced by the hard one
    message = str(info.value)
    assert "\n" not in message and "profile=default" in message and "profile=hard" in message
    assert _digest(copy_of_tiny) == before
