"""`python train.py`: train a model variant (the offline demo with no arguments); `-m` sweeps variants.

Also `prodmatch-train` once installed. The task itself is :func:`prodmatch.tasks.train.train`; this is its
Hydra main, which returns the optimised metric to a sweeper.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from prodmatch.tasks.instantiators import objective
from prodmatch.tasks.resolvers import register_resolvers
from prodmatch.tasks.train import train
from prodmatch.utils.config import config_path

__all__ = ["main", "train"]

register_resolvers()


@hydra.main(version_base="1.3", config_path=config_path(), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra main: returns the optimised metric (NaN for a failed sweep job)."""
    return objective(train(cfg).metrics, cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
