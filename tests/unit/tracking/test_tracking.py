"""The W&B example-queries table: which queries, which columns, thumbnails for image runs."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from PIL import Image

from prodmatch.encoders.tfidf import TfidfEncoder
from prodmatch.retrieval.examples import example_positions
from prodmatch.retrieval.index import AnnoyIndex
from prodmatch.retrieval.pipeline import RetrievalPipeline
from prodmatch.tracking import example_rows


def test_example_queries_start_with_the_study_ids_clipped_then_spread():
    assert example_positions(1000, 4).tolist() == [0, 500, 621, 626]
    assert example_positions(49, 3).tolist() == [0, 48, 24]
    assert example_positions(3, 8).tolist() == [0, 2, 1]
    assert example_positions(0, 8).size == 0


def _result(catalogs, view: str, encoder):
    pipe = RetrievalPipeline(channels=[{"encoder": "enc", "view": view}], index=lambda: AnnoyIndex(n_trees=5))
    return pipe.run(*catalogs, {"enc": encoder})


def test_text_table_has_one_row_per_query_and_rank(tiny_catalogs):
    result = _result(tiny_catalogs, "title", TfidfEncoder(dim=None))
    columns, rows = example_rows(result, 3)
    assert "query_image" not in columns and len(rows) == 3 * 10
    row = dict(zip(columns, rows[0], strict=True))
    queries, database = tiny_catalogs
    assert row["query_title"] == queries.frame.at[0, "title"]
    assert row["db_title"] == database.frame.at[int(result.ids[0, 0]), "title"]
    assert row["rank"] == 1 and np.isclose(row["score"], result.scores[0, 0])
    assert row["same_target"] == (queries.targets[0] == database.targets[result.ids[0, 0]])


def test_image_table_carries_thumbnails(tiny_catalogs):
    from prodmatch.encoders.image import ImageEncoder

    result = _result(tiny_catalogs, "image", ImageEncoder(pretrained=False, image_size=32, num_workers=0))
    columns, rows = example_rows(result, 1)
    images = [row[columns.index(c)] for row in rows for c in ("query_image", "db_image")]
    assert all(isinstance(im, Image.Image) and max(im.size) <= 128 for im in images)


def test_wandb_is_offline_unless_asked_for_online(monkeypatch, compose_cfg):
    from prodmatch.tasks.resolvers import wandb_offline

    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert wandb_offline()
    assert compose_cfg("evaluate").logger.wandb.offline is True
    for mode, offline in (("online", False), ("run", False), ("offline", True), ("disabled", True)):
        monkeypatch.setenv("WANDB_MODE", mode)
        assert wandb_offline() is offline
    monkeypatch.setenv("WANDB_MODE", "online")
    assert compose_cfg("evaluate").logger.wandb.offline is False
    assert compose_cfg("evaluate", ["logger.wandb.offline=true"]).logger.wandb.offline is True


def test_wandb_mode_disabled_drops_only_the_wandb_logger(monkeypatch, compose_cfg):
    from prodmatch.tracking import build_loggers
    from prodmatch.tracking.csv_logger import AppendingCSVLogger

    monkeypatch.setenv("WANDB_MODE", "disabled")
    loggers = build_loggers(compose_cfg("evaluate").logger)
    assert len(loggers) == 1 and isinstance(loggers[0], AppendingCSVLogger)


def test_csv_log_of_a_resumed_run_is_continued_not_deleted(tmp_path):
    from prodmatch.tracking.csv_logger import AppendingCSVLogger

    first = AppendingCSVLogger(save_dir=tmp_path, name="csv", version="")
    first.log_metrics({"train/loss": 1.0}, step=0)
    first.save()
    resumed = AppendingCSVLogger(save_dir=tmp_path, name="csv", version="")
    resumed.log_metrics({"train/loss": 0.5}, step=1)
    resumed.save()
    frame = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    assert frame["train/loss"].tolist() == [1.0, 0.5] and frame["step"].tolist() == [0, 1]


def test_wandb_run_id_is_stored_once_per_run_dir(tmp_path):
    from prodmatch.tracking.loggers import wandb_run_id

    first = wandb_run_id(tmp_path)
    assert wandb_run_id(tmp_path) == first and len(first) == 8
    assert wandb_run_id(tmp_path / "other") != first


def test_acc_per_target_becomes_one_table_per_stage_and_group():
    from prodmatch.tracking.wandb_tables import per_target_rows

    metrics = {
        "retrieval/acc@10": 0.5,
        "retrieval/acc@10/shoes": 0.25,
        "retrieval/acc@10/bikes": 0.75,
        "before_fit/retrieval/acc@10/bikes": 0.1,
        "seen/retrieval/acc@10/bikes": 0.9,
        "retrieval/acc@5/bikes": 0.3,  # another k: not this table
        "data/dropped/missing_image": 2.0,
    }
    assert per_target_rows(metrics, 10) == {
        "acc@10_per_target": [["bikes", 0.75], ["shoes", 0.25]],
        "before_fit/acc@10_per_target": [["bikes", 0.1]],
        "seen/acc@10_per_target": [["bikes", 0.9]],
    }


def test_the_wandb_run_stages_in_the_run_dir_and_asks_for_no_deprecated_setting(
    monkeypatch, compose_cfg, tmp_path
):
    from pytorch_lightning.loggers import WandbLogger

    from prodmatch.tracking import build_loggers

    for name in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.delenv(name, raising=False)  # build_loggers sets them; monkeypatch restores them after
    (wandb_logger,) = [
        lg for lg in build_loggers(compose_cfg("evaluate").logger, tmp_path) if isinstance(lg, WandbLogger)
    ]
    assert "anonymous" not in wandb_logger._wandb_init  # W&B warns on every run it is given
    staging = tmp_path / "wandb" / "staging"
    assert os.environ["WANDB_DATA_DIR"] == str(staging) and os.environ["WANDB_CACHE_DIR"].startswith(
        str(staging)
    )
