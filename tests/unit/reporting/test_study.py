"""The study rows come from the experiment configs' `study:` blocks, from a folder or a package."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from prodmatch.errors import ConfigError
from prodmatch.reporting import study
from prodmatch.retrieval.examples import SHOWCASE_QUERY_IDS
from tests.helpers.run import REPO_ROOT

ROW = """# @package _global_
experiment_name: {name}
study:
  table: {table}
  order: {order}
  description: "{name} does things"
  label: {label}
  acc10: {acc}
"""


def _write(folder: Path, name: str, table: str = "off_the_shelf", order: int = 0, acc: str = "null") -> None:
    label = "null" if acc == "null" else f'"{name} row"'
    text = ROW.format(name=name, table=table, order=order, label=label, acc=acc)
    (folder / "experiment").mkdir(parents=True, exist_ok=True)
    (folder / "experiment" / f"{name}.yaml").write_text(text, encoding="utf-8")


def test_the_repository_configs_hold_every_study_figure() -> None:
    rows = study.experiments(str(REPO_ROOT / "conf"))
    figures = {e.name: e.study_acc10 for e in rows if e.study_acc10 is not None}
    assert len(figures) == 19 and len(set(figures.values())) == 19
    assert [e.table for e in rows if e.name in figures].count(study.OFF_THE_SHELF) == 9
    assert figures["img40_title_cat_rerank"] == 90.36 and figures["ft_title_cat_sbert_v2"] == 99.53
    assert next(e for e in rows if e.name == "ft_img_cos").study_acc10 is None  # the study left it open
    assert all(e.description for e in rows)
    assert "demo" not in {e.name for e in rows}  # no study block, no row
    # the study's order: its first table, then its second, each by `order`
    assert [e.name for e in rows[:3]] == ["img", "title", "title_cat"]
    assert study.table_experiments(study.FINE_TUNED, str(REPO_ROOT / "conf"))[0] == "ft_img_contrastive"


def test_rows_are_ordered_by_table_then_order(tmp_path: Path) -> None:
    _write(tmp_path, "b_tuned", "fine_tuned", 0, "12.5")
    _write(tmp_path, "z_first", "off_the_shelf", 0)
    _write(tmp_path, "a_second", "off_the_shelf", 1, "70.1")
    (tmp_path / "experiment" / "plain.yaml").write_text("experiment_name: plain\n")
    rows = study.experiments(str(tmp_path))
    assert [e.name for e in rows] == ["z_first", "a_second", "b_tuned"]
    assert rows[1] == study.Experiment(
        "a_second", "off_the_shelf", "a_second does things", "a_second row", 70.1, 1
    )


def test_packaged_configs_are_read_through_importlib_resources(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "fakepkg" / "conf"
    package.mkdir(parents=True)
    (tmp_path / "fakepkg" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    _write(package, "packaged", "fine_tuned", 3, "50.0")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        rows = study.experiments("pkg://fakepkg.conf")
    finally:
        for name in [m for m in sys.modules if m.startswith("fakepkg")]:
            del sys.modules[name]
    assert [(e.name, e.table, e.study_acc10, e.order) for e in rows] == [("packaged", "fine_tuned", 50.0, 3)]


def test_a_bad_study_block_names_the_file_and_key(tmp_path: Path) -> None:
    _write(tmp_path, "oops", "third_table")
    with pytest.raises(
        ConfigError, match=r"experiment/oops.yaml: study.table='third_table' is not one of"
    ) as err:
        study.experiments(str(tmp_path))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="no experiment/ folder"):
        study.experiments(str(tmp_path / "nowhere"))


def test_query_ids_are_the_showcase_ids() -> None:
    assert study.STUDY_QUERY_IDS == SHOWCASE_QUERY_IDS
