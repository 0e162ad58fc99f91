"""Glue between the composed config and the objects a task needs (catalogs, encoders, cache, callbacks)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from prodmatch.layout import EMBEDDING_CACHE_DIR, EMBEDDINGS_DIR

log = logging.getLogger("prodmatch")


def load_catalogs(cfg: DictConfig, needs_images: bool) -> tuple[Any, Any]:
    """(queries, database) of the configured data source, validated (images checked when they are used)."""
    from hydra.utils import instantiate

    return instantiate(cfg.data).load(require_images=needs_images)


def encoder_registry(cfg: DictConfig) -> Any:
    """Encoders by name; a trained checkpoint's encoder stands in for its modality's and is also `model` (a
    classifier's class posterior is `model_posterior`)."""
    from prodmatch.encoders.registry import EncoderRegistry

    encoders = EncoderRegistry(cfg.encoders)
    if cfg.get("ckpt_path"):
        from prodmatch.models.loading import load_trained_encoders

        trained, modality = load_trained_encoders(cfg.ckpt_path)
        encoders = encoders.with_extra(**trained, **{modality: trained["model"]})
    return encoders


def pipeline_encoders(cfg: DictConfig, pipeline: Any) -> Mapping[str, Any]:
    """The encoders a task's pipeline runs on: :func:`encoder_registry`'s, embedding through the predict loop
    when `embed_trainer` is set."""
    encoders = encoder_registry(cfg)
    if cfg.get("embed_trainer") is not None:
        return predict_loop_encoders(cfg, encoders, pipeline.encoder_names)
    return encoders


def predict_loop_encoders(cfg: DictConfig, encoders: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
    """`embed_trainer=...`: the pipeline's encoders embed through Lightning's predict loop on that trainer, the
    merged matrices kept in the run dir under embeddings/<encoder>/<call>/."""
    from hydra.utils import instantiate

    from prodmatch.distributed.encoders import PredictLoopEncoder

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
    from prodmatch.distributed.predict import is_global_zero

    return is_global_zero()


def embedding_cache(cfg: DictConfig) -> Any:
    """The on-disk embedding cache, or None with `cache=false`."""
    from prodmatch.encoders.cache import EmbeddingCache

    return EmbeddingCache(Path(cfg.paths.cache_dir) / EMBEDDING_CACHE_DIR) if cfg.cache else None


def resolved(cfg: DictConfig) -> dict[str, Any]:
    """The run's config as plain data (provenance for saved results and logger hyper-parameters)."""
    return OmegaConf.to_container(cfg, resolve=True)


def objective(metrics: Mapping[str, Any], key: str | None) -> float | None:
    """The value a sweeper optimises: NaN when the job failed or the metric is missing (Optuna: trial failed)."""
    if not key:
        return None
    value = metrics.get(key)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else float("nan")
