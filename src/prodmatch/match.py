"""`python match.py experiment=... retrieval.k=N`: every query card's top-N database matches, in matches.csv.

Also `prodmatch-match` once installed. The task itself is :func:`prodmatch.tasks.match.match`; this is its
Hydra main.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from prodmatch.tasks.match import match
from prodmatch.tasks.resolvers import register_resolvers
from prodmatch.utils.config import config_path

__all__ = ["main", "match"]

register_resolvers()


@hydra.main(version_base="1.3", config_path=config_path(), config_name="match")
def main(cfg: DictConfig) -> None:
    """Hydra main."""
    match(cfg)


if __name__ == "__main__":
    main()
