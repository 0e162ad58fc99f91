"""The Hydra callback that reports the best trial of a study, written to the sweep dir and printed.

:class:`BestTrialReport` is registered by the `hparams_search` configs (`hydra.callbacks.best_trial`). It reads what
the jobs left in their dirs (`metrics.json`, `job_status.json`, `.hydra/`), so it works the same whether the jobs
ran in this process (basic launcher) or in submitit workers, where this process never sees a job's return value.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from prodmatch.layout import (
    BEST_TRIAL_FILE,
    HYDRA_CONFIG_FILE,
    HYDRA_DIR,
    HYDRA_OVERRIDES_FILE,
    HYDRA_RUNTIME_FILE,
    METRICS_FILE,
    OPTUNA_RESULTS_FILE,
    STATUS_FILE,
    acc_key,
    is_breakdown,
)
from prodmatch.utils.atomic import write_text

log = logging.getLogger("prodmatch")

DEFAULT_METRIC = acc_key(10)


@dataclass
class Trial:
    """One job of a sweep as its dir records it; `value` is None for a failed or unfinished job."""

    job_dir: Path
    num: int
    overrides: list[str]
    metrics: dict[str, float] = field(default_factory=dict)
    value: float | None = None


def _job_num(job_dir: Path) -> int:
    """The Hydra job number (`hydra.job.num`), or -1 when the job dir does not record it."""
    hydra_yaml = job_dir / HYDRA_DIR / HYDRA_RUNTIME_FILE
    if not hydra_yaml.is_file():
        return -1
    num = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.job.num", default=-1)
    return int(num) if isinstance(num, int) else -1


def _read_json(path: Path) -> dict[str, Any]:
    """A job's JSON record; {} when it is missing, empty or torn (a job killed while writing it)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _finished(job_dir: Path) -> bool:
    """Whether the job recorded its end as ok (a failed, interrupted or still running job has no value)."""
    status = job_dir / STATUS_FILE
    return not status.is_file() or _read_json(status).get("status") == "ok"


def read_trial(job_dir: Path, metric: str) -> Trial:
    """The trial a job dir records: its overrides, its metrics and the value of `metric` (finite, or None)."""
    overrides = [str(o) for o in OmegaConf.load(job_dir / HYDRA_DIR / HYDRA_OVERRIDES_FILE)]
    metrics = _read_json(job_dir / METRICS_FILE)
    value = metrics.get(metric)
    finite = isinstance(value, (int, float)) and math.isfinite(value) and _finished(job_dir)
    return Trial(job_dir, _job_num(job_dir), overrides, metrics, float(value) if finite else None)


def collect_trials(sweep_dir: Path, metric: str) -> list[Trial]:
    """Every job under the sweep dir (any dir holding `.hydra/overrides.yaml`), in job-number order."""
    job_dirs = {p.parent.parent for p in sweep_dir.rglob(f"{HYDRA_DIR}/{HYDRA_OVERRIDES_FILE}")}
    return sorted((read_trial(d, metric) for d in job_dirs), key=lambda t: (t.num, str(t.job_dir)))


def best_of(trials: list[Trial], direction: str = "maximize") -> Trial | None:
    """The finished trial with the best value; ties go to the lowest job number, as Optuna's best trial."""
    finished = [t for t in trials if t.value is not None]
    if not finished:
        return None
    sign = -1.0 if direction == "maximize" else 1.0
    return min(finished, key=lambda t: (sign * t.value, t.num))


def summary_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The overall metrics (no per-category or per-count breakdowns), for the printed summary."""
    return {k: v for k, v in metrics.items() if not is_breakdown(k)}


def best_trial_record(best: Trial, trials: list[Trial], sweep_dir: Path, metric: str, direction: str) -> dict:
    """What best_trial.yaml holds: the trial's value, overrides, metrics and config, and the study's counts."""
    config_path = best.job_dir / HYDRA_DIR / HYDRA_CONFIG_FILE
    finished = sum(t.value is not None for t in trials)
    return {
        "optimized_metric": metric,
        "direction": direction,
        "value": best.value,
        "job_num": best.num,
        "job_dir": str(best.job_dir.relative_to(sweep_dir)),
        "overrides": best.overrides,
        "trials": {"total": len(trials), "finished": finished, "failed": len(trials) - finished},
        "metrics": best.metrics,
        "config": OmegaConf.to_container(OmegaConf.load(config_path)) if config_path.is_file() else None,
    }


def format_best(record: dict[str, Any], out: Path) -> str:
    """The printed summary of the best trial."""
    counts = record["trials"]
    lines = [
        f"best trial of {counts['total']} ({counts['finished']} finished, {counts['failed']} failed): "
        f"job {record['job_num']}, {record['optimized_metric']} = {record['value']:.4f}",
        f"  overrides: {' '.join(record['overrides'])}",
    ]
    lines += [f"  {k:<40}{v:>10.4f}" for k, v in sorted(summary_metrics(record["metrics"]).items())]
    lines.append(f"  config and all metrics: {out}")
    return "\n".join(lines)


class BestTrialReport(Callback):
    """At the end of a multirun: writes `<sweep dir>/best_trial.yaml` and prints the best trial's metrics."""

    def __init__(self, filename: str = BEST_TRIAL_FILE) -> None:
        self.filename = filename

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        metric = str(config.get("optimized_metric") or DEFAULT_METRIC)
        direction = str(OmegaConf.select(config, "hydra.sweeper.direction", default="maximize"))
        trials = collect_trials(sweep_dir, metric)
        best = best_of(trials, direction)
        if best is None:
            print(f"no trial of {len(trials)} finished with a value of {metric}; see {sweep_dir}")
            return
        record = best_trial_record(best, trials, sweep_dir, metric, direction)
        out = write_text(sweep_dir / self.filename, OmegaConf.to_yaml(OmegaConf.create(record)))
        self._check_sweeper_agrees(sweep_dir, best)
        print(format_best(record, out))

    @staticmethod
    def _check_sweeper_agrees(sweep_dir: Path, best: Trial) -> None:
        """Warn when the sweeper's own best value differs (e.g. a study stored across several sweeps)."""
        results = sweep_dir / OPTUNA_RESULTS_FILE
        if not results.is_file():
            return
        value = OmegaConf.load(results).get("best_value")
        if isinstance(value, (int, float)) and not math.isclose(value, best.value, rel_tol=1e-9):
            log.warning(
                "%s names a best value of %s; this sweep dir's best is %s",
                OPTUNA_RESULTS_FILE,
                value,
                best.value,
            )
