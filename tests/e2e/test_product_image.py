"""train.py experiment=product_image_supcon / product_image_label_free on the tiny catalog: the image-only product
experiments train the small CNN on distinct-card batches and write the product-protocol keys and matches.csv."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from prodmatch.train import train

# A few steps only: wiring and the artifact contract, not learning (the recipe's figures are in the docs).
TINY_RUN = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "datamodule.batch_size=8",  # 4 products x 2 distinct cards
    "model.net.width=8",
    "log_examples=2",
    "logger=none",
]
PRODUCT_KEYS = ("retrieval/sku_recall@10", "retrieval/sku_mrr", "retrieval/sku_map@10", "match/f1")


@pytest.mark.parametrize("experiment", ["product_image_supcon", "product_image_label_free"])
def test_image_product_experiment_writes_the_product_keys(compose_cfg, tmp_path, experiment: str) -> None:
    cfg = compose_cfg("train", [f"experiment={experiment}", *TINY_RUN])
    assert cfg.retrieval.channels == [{"encoder": "model", "view": "image"}]  # image-only: one channel
    returned = train(cfg).metrics
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert returned == pytest.approx(metrics)
    for prefix in ("", "before_fit/"):  # before_fit: the untrained net on the same queries
        for key in PRODUCT_KEYS:
            assert {f"{prefix}{key}", f"{prefix}seen/{key}"} <= set(metrics), key
            assert 0 <= metrics[f"{prefix}{key}"] <= 1
    assert "query_split" in pd.read_csv(tmp_path / "matches.csv").columns
    crops = list((tmp_path / "cache" / "pixels").glob("pixels-32-*.json"))
    assert crops  # the decoded training crops, shared with the evaluation's pixel store
    if experiment == "product_image_label_free":
        assert metrics["mining/pairs"] > 0  # pseudo-SKUs mined from the titles, no SKU read
