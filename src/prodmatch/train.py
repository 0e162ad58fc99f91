"""`python train.py`: train a model variant (the offline demo with no arguments); `-m` sweeps variants.

Also `prodmatch-train` once installed. The retrieval callback scores the module's encoder before fit and at fit
end; its metrics are what the task returns (and what a sweeper optimises).
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
from omegaconf import DictConfig, open_dict

from prodmatch.tasks.resolvers import register_resolvers
from prodmatch.tasks.wrapper import task_wrapper
from prodmatch.utils.config import config_path

register_resolvers()
log = logging.getLogger("prodmatch.train")


def _settle_modality(cfg: DictConfig) -> str:
    """The datamodule serves the model's modality (`datamodule.modality=auto`, the default)."""
    from hydra.utils import get_class

    from prodmatch.errors import ConfigError

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


def _callbacks(cfg: DictConfig, runtime: dict[str, dict[str, Any]]) -> list[Any]:
    """Every configured callback; `runtime` adds objects built at run time, by callback name."""
    from hydra.utils import instantiate

    nodes = cfg.get("callbacks") or {}
    return [instantiate(node, **runtime.get(name, {})) for name, node in nodes.items() if node is not None]


def _mined_labels(cfg: DictConfig, database: Any) -> tuple[list[int] | None, dict[str, float]]:
    """Pseudo-SKU labels from `mining=...` (label-free product training), with their figures; (None, {}) when off."""
    from hydra.utils import instantiate

    from prodmatch.errors import ConfigError
    from prodmatch.tasks import instantiators as inst

    if cfg.get("mining") is None:
        return None, {}
    if cfg.datamodule.label != "sku":
        raise ConfigError(
            f"mining gives product labels but datamodule.label={cfg.datamodule.label}; set datamodule.label=sku"
        )
    labels, report = instantiate(cfg.mining).labels(
        database, inst.encoder_registry(cfg), inst.embedding_cache(cfg)
    )
    log.info(
        "mining: %d pseudo-positive pairs, %d cards in %d pseudo-products%s",
        report["mining/pairs"], report["mining/labelled_cards"], report["mining/classes"],
        f", pair precision against the SKUs {report['mining/pair_precision']:.3f} (a check, not an input)"
        if "mining/pair_precision" in report else "",
    )  # fmt: skip
    return labels.tolist(), report


def _product_split(cfg: DictConfig, database: Any) -> Any:
    """Under `retrieval.protocol=product`, the database's product groups exactly as the scoring draws them
    (`retrieval.split_fractions`, `retrieval.seed`), handed to the datamodule: one split for training and
    scoring. None under the category protocol (a `label=sku` datamodule then draws the same split itself from
    `datamodule.split_fractions`, which follows `retrieval.split_fractions`)."""
    from prodmatch.retrieval.protocol import database_split

    if cfg.retrieval.protocol != "product":
        return None
    return database_split(database, cfg.retrieval.split_fractions, cfg.retrieval.seed)


@task_wrapper
def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the configured model on the database catalog; returns the retrieval callback's metrics."""
    from hydra.utils import instantiate
    from pytorch_lightning import seed_everything

    from prodmatch.callbacks.retrieval import RetrievalCallback
    from prodmatch.models.loading import instantiate_model
    from prodmatch.tasks import instantiators as inst
    from prodmatch.tasks.summary import format_summary
    from prodmatch.tracking import build_loggers
    from prodmatch.utils.signals import fitting

    seed_everything(cfg.seed, workers=True, verbose=False)
    modality = _settle_modality(cfg)
    needs_images = modality == "image" or any(ch.view == "image" for ch in cfg.retrieval.channels)
    queries, database = inst.load_catalogs(cfg, needs_images)
    labels, mining = _mined_labels(cfg, database)
    # plain Python containers: Lightning stores the datamodule's arguments in checkpoints, loaded weights-only
    split = _product_split(cfg, database)  # a numpy array: instantiate passes it through as it is
    # Mined labels train only the cards of the split's train products, as SKU labels would.
    extra = {"labels": labels} if labels is not None else {}
    datamodule = instantiate(cfg.datamodule, database=database, split=split, _convert_="all", **extra)
    model = instantiate_model(cfg.model, num_classes=datamodule.num_classes)
    config = inst.resolved(cfg)
    callbacks = _callbacks(cfg, {"retrieval": {"queries": queries, "database": database}})
    retrieval = next((cb for cb in callbacks if isinstance(cb, RetrievalCallback)), None)
    if retrieval is not None:
        retrieval.run_config = config
        retrieval.metrics.update(mining)  # recorded in metrics.json with the retrieval figures
    loggers = build_loggers(cfg.logger, cfg.paths.output_dir)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(config)
    with fitting(trainer):
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)

    metrics = dict(retrieval.metrics) if retrieval is not None else dict(trainer.callback_metrics)
    if trainer.is_global_zero and retrieval is not None:
        title = f"{cfg.experiment_name} on {cfg.data.name}: {cfg.task_name} run in {cfg.paths.output_dir}"
        print(format_summary(title, metrics, retrieval.pipeline.k))
    return metrics


@hydra.main(version_base="1.3", config_path=config_path(), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra main: returns the optimised metric (NaN for a failed sweep job)."""
    from prodmatch.tasks.instantiators import objective

    return objective(train(cfg), cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
