"""Wiring between the composed config and the objects a task needs: catalogs, encoders, the embedding cache,
loggers and callbacks. Objects built at run time (catalogs, the product split, ...) are handed to constructors,
never patched onto built objects.

Importing this module is cheap: what needs torch or Lightning is imported where it is used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from prodmatch.data.catalog import Catalog
from prodmatch.encoders.cache import EmbeddingCache
from prodmatch.encoders.registry import EncoderRegistry
from prodmatch.layout import EMBEDDING_CACHE_DIR, EMBEDDINGS_DIR
from prodmatch.tracking import build_loggers


def build(node: DictConfig, **runtime: Any) -> Any:
    """The object of a config node (its values as plain containers) given ``runtime`` objects of the task.

    The runtime objects go to the constructor as they are: passed through ``instantiate`` they would be
    merged into the config first, which turns a dataclass into a dict and a dict into a DictConfig.
    """
    return instantiate(node, _partial_=True, _convert_="all")(**runtime)


def load_catalogs(
    cfg: DictConfig, needs_images: bool, views: Iterable[str] | None = None
) -> tuple[Catalog, Catalog]:
    """(queries, database) of the configured data source, validated (images checked when they are used);
    ``views``: what the run reads, so only their columns are required (None: every schema column)."""
    return instantiate(cfg.data).load(require_images=needs_images, views=views)


def encoder_registry(cfg: DictConfig) -> EncoderRegistry:
    """The configured encoders by name, each built when a channel first asks for it."""
    return EncoderRegistry(cfg.encoders)


def evaluation_encoders(cfg: DictConfig, pipeline: Any) -> Mapping[str, Any]:
    """The encoders evaluate.py and match.py run on: the configured ones; with ``ckpt_path`` a trained
    checkpoint's encoder stands in for its modality's and is also `model` (a classifier's class posterior is
    `model_posterior`); with ``embed_trainer`` they embed through Lightning's predict loop."""
    encoders = encoder_registry(cfg)
    if cfg.get("ckpt_path"):
        # torch and Lightning: only with a checkpoint
        from prodmatch.models.loading import load_trained_encoders

        trained, modality = load_trained_encoders(cfg.ckpt_path)
        encoders = encoders.with_extra(**trained, **{modality: trained["model"]})
    if cfg.get("embed_trainer") is not None:
        return predict_loop_encoders(cfg, encoders, pipeline.encoder_names)
    return encoders


def predict_loop_encoders(cfg: DictConfig, encoders: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
    """`embed_trainer=...`: the pipeline's encoders embed through Lightning's predict loop on that trainer, the
    merged matrices kept in the run dir under embeddings/<encoder>/<call>/."""
    from prodmatch.distributed.encoders import PredictLoopEncoder  # Lightning: only with embed_trainer

    trainer = instantiate(cfg.embed_trainer)
    work = Path(cfg.paths.output_dir) / EMBEDDINGS_DIR
    return {
        name: PredictLoopEncoder(encoders[name], trainer, work / name) for name in names if name in encoders
    }


def records_results(cfg: DictConfig) -> bool:
    """Whether this process writes the run's artifacts: always, except the ranks > 0 of an `embed_trainer` run
    (every process of it runs the whole task; rank 0 records)."""
    if cfg.get("embed_trainer") is None:
        return True
    from prodmatch.distributed.predict import is_global_zero  # Lightning: only with embed_trainer

    return is_global_zero()


def embedding_cache(cfg: DictConfig) -> EmbeddingCache | None:
    """The on-disk embedding cache, or None with `cache=false`."""
    return EmbeddingCache(Path(cfg.paths.cache_dir) / EMBEDDING_CACHE_DIR) if cfg.cache else None


def loggers(cfg: DictConfig, config: Mapping[str, Any]) -> list[Any]:
    """The configured loggers (the W&B run is the run dir's), each given the resolved config."""
    built = build_loggers(cfg.logger, cfg.paths.output_dir)
    for logger in built:
        logger.log_hyperparams(dict(config))
    return built


def callbacks(cfg: DictConfig, evaluation: Mapping[str, Any]) -> list[Any]:
    """Every configured callback; the retrieval callbacks also get ``evaluation``, the run's evaluation inputs
    (pipeline, catalogs, product split, encoders, embedding cache, pixel store, config, extra figures)."""
    from prodmatch.callbacks.retrieval import RetrievalCallback  # Lightning: only training builds callbacks

    out = []
    for node in (cfg.get("callbacks") or {}).values():
        if node is None:
            continue
        runtime = evaluation if issubclass(get_class(node._target_), RetrievalCallback) else {}
        out.append(build(node, **runtime))
    return out


def resolved(cfg: DictConfig) -> dict[str, Any]:
    """The run's config as plain data (provenance for saved results and logger hyper-parameters)."""
    return OmegaConf.to_container(cfg, resolve=True)


def objective(metrics: Mapping[str, Any], key: str | None) -> float | None:
    """The value a sweeper optimises: NaN when the job failed or the metric is missing (Optuna: trial failed)."""
    if not key:
        return None
    value = metrics.get(key)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else float("nan")
