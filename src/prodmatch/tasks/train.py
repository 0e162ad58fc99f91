"""The training task: fit the configured model on the database catalog; the retrieval callback scores the
module's encoder before fit, every N epochs and at fit end, and its metrics are the run's.

Importing this module is cheap; torch and Lightning are imported when a training starts.
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, open_dict

from prodmatch.data.catalog import Catalog
from prodmatch.data.splits import ProductSplit
from prodmatch.errors import ConfigError
from prodmatch.retrieval.pipeline import RetrievalPipeline
from prodmatch.tasks import instantiators as inst
from prodmatch.tasks.run import Run
from prodmatch.tasks.summary import format_summary, run_title
from prodmatch.tasks.wrapper import task_wrapper
from prodmatch.utils.signals import fitting

log = logging.getLogger("prodmatch.train")


def settle_modality(cfg: DictConfig) -> str:
    """The datamodule serves the model's modality (`datamodule.modality=auto`, the default)."""
    modality = get_class(cfg.model._target_).modality
    if cfg.datamodule.modality == "auto":
        with open_dict(cfg):
            cfg.datamodule.modality = modality
    elif cfg.datamodule.modality != modality:
        raise ConfigError(
            f"datamodule.modality={cfg.datamodule.modality} but {cfg.model._target_} trains on {modality}; "
            "set datamodule.modality=auto"
        )
    return modality


def mined_labels(
    cfg: DictConfig, database: Catalog, encoders: Any, cache: Any
) -> tuple[list[int] | None, dict[str, float]]:
    """Pseudo-SKU labels from `mining=...` (label-free product training), with their figures; (None, {}) when off."""
    if cfg.get("mining") is None:
        return None, {}
    if cfg.datamodule.label != "sku":
        raise ConfigError(
            f"mining gives product labels but datamodule.label={cfg.datamodule.label}; set datamodule.label=sku"
        )
    labels, report = inst.build(cfg.mining).labels(database, encoders, cache)
    log.info(
        "mining: %d pseudo-positive pairs, %d cards in %d pseudo-products%s",
        report["mining/pairs"], report["mining/labelled_cards"], report["mining/classes"],
        f", pair precision against the SKUs {report['mining/pair_precision']:.3f} (a check, not an input)"
        if "mining/pair_precision" in report else "",
    )  # fmt: skip
    # plain Python containers: Lightning stores the datamodule's arguments in checkpoints, loaded weights-only
    return labels.tolist(), report


def product_split(
    cfg: DictConfig, pipeline: RetrievalPipeline, database: Catalog, mined: bool
) -> ProductSplit | None:
    """The run's product split, drawn once (``retrieval.split_fractions``, ``retrieval.seed``) when the scoring
    protocol or the training labels need one, and handed to both: the product protocol scores by it, and a
    `datamodule.label=sku` run trains on its train products (mined labels train every labelled card unless the
    protocol splits them too). None otherwise, or when the database has no SKUs to split (the datamodule then
    says what is missing)."""
    trains_on_products = cfg.datamodule.label == "sku" and not mined and database.skus is not None
    if pipeline.protocol == "product" or trains_on_products:
        return pipeline.product_split(database)
    return None


def training_views(cfg: DictConfig, pipeline: RetrievalPipeline, modality: str) -> list[str]:
    """What a training run reads of the catalogs: its evaluation channels' views, the view it trains on and the
    view label-free mining reads (only their columns must be in the CSVs)."""
    views = [channel.view for channel in pipeline.channels]
    views.append("image" if modality == "image" else str(cfg.datamodule.text_view))
    if cfg.get("mining") is not None:
        views.append(str(cfg.mining.view))
    return views


@task_wrapper
def train(cfg: DictConfig) -> Run:
    """Fit the configured model on the database catalog; the run's metrics are the retrieval callback's."""
    from pytorch_lightning import seed_everything  # torch and Lightning: imported when a training starts

    from prodmatch.models.loading import instantiate_model  # torch: as above
    from prodmatch.tracking.lightning import for_trainer  # Lightning: as above

    seed_everything(cfg.seed, workers=True, verbose=False)
    modality = settle_modality(cfg)
    config = inst.resolved(cfg)
    pipeline = inst.build(cfg.retrieval)
    needs_images = modality == "image" or pipeline.needs_images
    queries, database = inst.load_catalogs(cfg, needs_images, training_views(cfg, pipeline, modality))
    encoders, cache = inst.encoder_registry(cfg), inst.embedding_cache(cfg)
    labels, mining = mined_labels(cfg, database, encoders, cache)
    split = product_split(cfg, pipeline, database, mined=labels is not None)
    extra = {"labels": labels} if labels is not None else {}
    datamodule = inst.build(cfg.datamodule, database=database, split=split, **extra)
    model = instantiate_model(cfg.model, num_classes=datamodule.num_classes)
    evaluation = {
        "pipeline": pipeline,
        "queries": queries,
        "database": database,
        "split": split,
        "encoders": encoders,
        "cache": cache,
        "pixel_cache": cfg.encoders.image.get("pixel_cache"),
        "run_config": config,
        "extra_metrics": mining,  # recorded in metrics.json with the retrieval figures
    }
    callbacks = inst.callbacks(cfg, evaluation)
    retrieval = _retrieval_callback(callbacks)
    trainer = inst.build(
        cfg.trainer, callbacks=callbacks, logger=for_trainer(inst.loggers(cfg, config)) or False
    )
    with fitting(trainer):
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)

    if retrieval is None:
        return Run(cfg.paths.output_dir, dict(trainer.callback_metrics))
    metrics = dict(retrieval.metrics)
    if trainer.is_global_zero:
        index = retrieval.result.search.get("index") if retrieval.result is not None else None
        print(format_summary(run_title(cfg, index), metrics, pipeline.k))
    return Run(cfg.paths.output_dir, metrics, retrieval.result)


def _retrieval_callback(callbacks: list[Any]) -> Any:
    """The run's retrieval callback, if one is configured."""
    from prodmatch.callbacks.retrieval import RetrievalCallback  # Lightning: imported when a training starts

    return next((cb for cb in callbacks if isinstance(cb, RetrievalCallback)), None)
