"""The evaluation task: run the configured retrieval (off-the-shelf encoders or a trained checkpoint's), score
it and record it in the run dir."""

from __future__ import annotations

import time

from omegaconf import DictConfig

from prodmatch.retrieval.evaluation import record, score
from prodmatch.retrieval.result import RetrievalResult
from prodmatch.tasks import instantiators as inst
from prodmatch.tasks.run import Run
from prodmatch.tasks.summary import format_summary, run_title
from prodmatch.tasks.wrapper import task_wrapper


def retrieve(cfg: DictConfig, k: int | None = None) -> tuple[RetrievalResult, list]:
    """The configured retrieval's result (with its config as provenance) and the run's loggers; ``k`` replaces
    ``retrieval.k``."""
    config = inst.resolved(cfg)
    loggers = inst.loggers(cfg, config)
    pipeline = inst.build(cfg.retrieval, **({} if k is None else {"k": k}))
    encoders = inst.evaluation_encoders(cfg, pipeline)
    views = [channel.view for channel in pipeline.channels]
    queries, database = inst.load_catalogs(cfg, pipeline.needs_images, views)
    result = pipeline.run(queries, database, encoders, inst.embedding_cache(cfg), strict=cfg.data.strict)
    result.config = config
    return result, loggers


@task_wrapper
def evaluate(cfg: DictConfig) -> Run:
    """Run, score and record the configured retrieval; prints the summary."""
    result, loggers = retrieve(cfg)
    t0 = time.perf_counter()
    metrics = score(result)
    result.timings["score_s"] = time.perf_counter() - t0  # saved with the result: the run's stage timings
    if inst.records_results(cfg):
        record(result, metrics, cfg.paths.output_dir, loggers, cfg.log_examples)
        print(format_summary(run_title(cfg, result.search.get("index")), metrics, result.k))
    return Run(cfg.paths.output_dir, metrics, result)
