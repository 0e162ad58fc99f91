"""`python evaluate.py experiment=...`: retrieval with off-the-shelf encoders (or a trained checkpoint's).

Also `prodmatch-evaluate` once installed; `-m` sweeps several experiments. The task itself is
:func:`prodmatch.tasks.evaluate.evaluate`; this is its Hydra main.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from prodmatch.tasks.evaluate import evaluate
from prodmatch.tasks.instantiators import objective
from prodmatch.tasks.resolvers import register_resolvers
from prodmatch.utils.config import config_path

__all__ = ["evaluate", "main"]

register_resolvers()


@hydra.main(version_base="1.3", config_path=config_path(), config_name="evaluate")
def main(cfg: DictConfig) -> float | None:
    """Hydra main: returns the optimised metric (NaN for a failed sweep job)."""
    return objective(evaluate(cfg).metrics, cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
