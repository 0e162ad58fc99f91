"""Experiment tracking: the configured Lightning loggers (W&B, CSV), example tables and the W&B run's end."""

from prodmatch.tracking.loggers import build_loggers, finish_wandb, log_metrics
from prodmatch.tracking.wandb_tables import example_rows, log_examples, log_per_target

__all__ = ["build_loggers", "example_rows", "finish_wandb", "log_examples", "log_metrics", "log_per_target"]
