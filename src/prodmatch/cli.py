"""Hydra entry points: `python train.py`, `python evaluate.py` and `python match.py` (all accept `-m` sweeps)."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from prodmatch.errors import ProdmatchError
from prodmatch.tracking import wandb_offline

log = logging.getLogger("prodmatch")

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def if_pretrained(when_pretrained: Any, when_local: Any, *, _root_: DictConfig) -> Any:
    """`${if_pretrained:a,b}`: a with pretrained weights, b for locally built random-init models."""
    return when_pretrained if _root_.pretrained else when_local


# Lightning's own internals trip this torch deprecation on every fit; it says nothing about the user's run.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

OmegaConf.register_new_resolver("wandb_offline", wandb_offline, replace=True)
OmegaConf.register_new_resolver("if_pretrained", if_pretrained, replace=True)


def one_line(err: BaseException) -> str:
    """The error's own message, without the worker traceback PyTorch's DataLoader wraps around it."""
    text = str(err).strip()
    if text.startswith("Caught ") and "Original Traceback" in text:
        # The last line is "<module>.<Class>: <original message>".
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return text


def user_error(err: BaseException) -> ProdmatchError | None:
    """The ProdmatchError behind an exception, if any (Hydra wraps errors raised in constructors)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ProdmatchError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


DONE_MARKER = "done.json"
# Keys that name or group a run without changing its results: a resumed job may differ in them.
_VOLATILE_KEYS = ("group", "resume")


def config_fingerprint(cfg: DictConfig) -> str:
    """Hash of the resolved config minus naming/grouping keys: same fingerprint, same results."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in _VOLATILE_KEYS:
        data.pop(key, None)
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def finished_metrics(cfg: DictConfig) -> dict[str, float] | None:
    """The metrics of an earlier finished job with this config in this run dir, if there is one."""
    out = Path(cfg.paths.output_dir)
    done, metrics = out / DONE_MARKER, out / "metrics.json"
    if not (done.is_file() and metrics.is_file()):
        return None
    if json.loads(done.read_text()).get("config") != config_fingerprint(cfg):
        return None
    return json.loads(metrics.read_text())


def run_job(task: Callable[[DictConfig], dict[str, float]], cfg: DictConfig) -> dict[str, float]:
    """Run one Hydra job: expected errors become one line and a non-zero exit; W&B is always finished.

    With `resume=true` a job whose run dir already holds finished results of the same config returns them
    instead of recomputing (so an interrupted sweep with fixed job dirs picks up where it stopped).
    """
    from prodmatch.tracking import finish_wandb

    if cfg.get("resume"):
        earlier = finished_metrics(cfg)
        if earlier is not None:
            log.info("%s: reusing the finished run in %s", cfg.experiment_name, cfg.paths.output_dir)
            return earlier
    failed = True
    try:
        metrics = task(cfg)
        failed = False
    except Exception as exc:
        err = user_error(exc)
        if err is None:
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)  # the one line the user needs; no traceback
        raise SystemExit(1) from None
    finally:
        finish_wandb(failed)
    marker = Path(cfg.paths.output_dir) / DONE_MARKER
    marker.write_text(json.dumps({"config": config_fingerprint(cfg)}))
    return metrics


def retrieve(cfg: DictConfig, k: int | None = None):
    """Load the catalogs and run the configured retrieval (a trained checkpoint's encoder where given)."""
    from hydra.utils import instantiate
    from pytorch_lightning import seed_everything

    from prodmatch.encoders.base import EmbeddingCache
    from prodmatch.encoders.registry import EncoderRegistry

    seed_everything(cfg.seed, workers=True, verbose=False)
    pipeline = instantiate(cfg.retrieval, **({} if k is None else {"k": k}))
    encoders = EncoderRegistry(cfg.encoders)
    if cfg.ckpt_path:
        from prodmatch.models.loading import load_trained_encoder

        trained, modality = load_trained_encoder(cfg.ckpt_path)
        # The trained encoder stands in for the off-the-shelf one of its modality, and is also `model`.
        encoders = encoders.with_extra(model=trained, **{modality: trained})
    queries, database = instantiate(cfg.data).load(require_images=pipeline.needs_images)
    cache = EmbeddingCache(Path(cfg.paths.cache_dir) / "embeddings") if cfg.cache else None
    return pipeline.run(queries, database, encoders, cache)


def run_evaluate(cfg: DictConfig) -> dict[str, float]:
    """Evaluate off-the-shelf encoders (or a trained checkpoint's) and write the run's artifacts."""
    from prodmatch.retrieval.pipeline import retrieval_metrics, write_artifacts
    from prodmatch.tracking import build_loggers, log_examples, log_metrics

    loggers = build_loggers(cfg.logger)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    result = retrieve(cfg)
    metrics = retrieval_metrics(result)
    write_artifacts(result, metrics, cfg.paths.output_dir)
    log_metrics(loggers, metrics)
    log_examples(loggers, result, cfg.log_examples)
    print(format_summary(cfg, metrics, before=None))
    return metrics


def run_match(cfg: DictConfig) -> dict[str, float]:
    """Write every query card's top-N database matches with scores and key columns to `cfg.out`."""
    from prodmatch.errors import ConfigError
    from prodmatch.retrieval.pipeline import export_frame, retrieval_metrics

    if int(cfg.top_n) < 1:
        raise ConfigError(f"top_n={cfg.top_n} must be >= 1")
    result = retrieve(cfg, k=int(cfg.top_n))
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    export = export_frame(result)
    export.to_csv(out, index=False)
    print(f"{len(export)} matches of {len(result.queries)} query cards ({result.description}) -> {out}")
    return retrieval_metrics(result)


def run_train(cfg: DictConfig) -> dict[str, float]:
    """Fit the configured model on the database catalog; the retrieval callback scores it before and after."""
    from hydra.utils import instantiate
    from pytorch_lightning import seed_everything

    from prodmatch.encoders.registry import EncoderRegistry
    from prodmatch.tracking import build_loggers

    seed_everything(cfg.seed, workers=True, verbose=False)
    pipeline = instantiate(cfg.retrieval)
    model = instantiate(cfg.model)
    needs_images = pipeline.needs_images or model.modality == "image"
    queries, database = instantiate(cfg.data).load(require_images=needs_images)
    datamodule = instantiate(cfg.datamodule, database=database)

    callbacks_cfg = dict(cfg.get("callbacks") or {})
    retrieval_cfg = callbacks_cfg.pop("retrieval", None)
    callbacks = [instantiate(node) for node in callbacks_cfg.values() if node is not None]
    if retrieval_cfg is not None:
        retrieval_cb = instantiate(
            retrieval_cfg,
            pipeline=pipeline,
            queries=queries,
            database=database,
            encoders=EncoderRegistry(cfg.encoders),
            output_dir=cfg.paths.output_dir,
            cache_dir=str(Path(cfg.paths.cache_dir) / "embeddings"),
        )
        callbacks.append(retrieval_cb)
    loggers = build_loggers(cfg.logger)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    # evaluate.py / match.py rebuild the module from this and a checkpoint (see models/loading.py).
    OmegaConf.save(cfg.model, Path(cfg.paths.output_dir) / "model.yaml", resolve=True)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)

    # Read back what rank 0 wrote: with spawned DDP workers this process's callback never saw the metrics.
    metrics_path = Path(cfg.paths.output_dir) / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    if trainer.is_global_zero and metrics:
        print(format_summary(cfg, metrics, before="before_fit/"))
    return metrics


def format_summary(cfg: DictConfig, metrics: Mapping[str, Any], before: str | None) -> str:
    """A short human summary: Acc@10 overall and per target (before vs after fit for training runs)."""
    key = "retrieval/acc@10"
    targets = sorted(k[len(key) + 1 :] for k in metrics if k.startswith(key + "/"))
    lines = [f"{cfg.experiment_name} on {cfg.data.name}: {cfg.task_name} run in {cfg.paths.output_dir}"]
    if before is not None and before + key in metrics:
        lines.append(f"{'Acc@10':<34}{'before fit':>12}{'after fit':>12}")
        rows = [("overall", key)] + [(t, f"{key}/{t}") for t in targets]
        lines += [
            f"  {name:<32}{100 * metrics[before + k]:>11.2f}%{100 * metrics[k]:>11.2f}%" for name, k in rows
        ]
    else:
        lines.append(f"{'Acc@10':<34}{100 * metrics[key]:>11.2f}%")
        lines += [f"  {t:<32}{100 * metrics[f'{key}/{t}']:>11.2f}%" for t in targets]
    extras = [
        k for k in ("retrieval/ann_recall@10", "retrieval/sku_recall@10", "retrieval/sku_mrr") if k in metrics
    ]
    lines += [f"{k.split('/', 1)[1]:<34}{metrics[k]:>12.4f}" for k in extras]
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def train(cfg: DictConfig) -> float | None:
    """`python train.py`: train a model variant (the offline demo with no arguments)."""
    metrics = run_job(run_train, cfg)
    return metrics.get("retrieval/acc@10")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="match")
def match(cfg: DictConfig) -> None:
    """`python match.py experiment=... top_n=N`: top-N matches of every query card to a CSV."""
    run_job(run_match, cfg)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
def evaluate(cfg: DictConfig) -> float | None:
    """`python evaluate.py experiment=...`: off-the-shelf retrieval evaluation."""
    metrics = run_job(run_evaluate, cfg)
    return metrics.get("retrieval/acc@10")
