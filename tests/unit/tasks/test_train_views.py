"""A training run requires only the catalog columns it reads."""

from __future__ import annotations

from prodmatch.tasks import instantiators as inst
from prodmatch.tasks.train import training_views


def test_a_training_run_reads_its_channels_its_training_view_and_the_mining_view(compose_cfg):
    cfg = compose_cfg("train", ["datamodule.modality=text", "datamodule.text_view=title_cat"])
    assert training_views(cfg, inst.build(cfg.retrieval), "text") == ["title_cat", "title_cat"]
    mined = compose_cfg("train", ["mining=title_tfidf", "datamodule.modality=image"])
    assert training_views(mined, inst.build(mined.retrieval), "image") == ["image", "image", "title"]
