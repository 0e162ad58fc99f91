"""Shared fixtures: a tiny synthetic catalog, and Hydra configs composed as the entry points compose them."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from omegaconf import DictConfig, open_dict

from tests.helpers.run import REPO_ROOT, tiny_overrides

SHARED_SAMPLE = REPO_ROOT.parent / "shared" / "data" / "sportdoma_sample" / "company_data.csv"

# Tests never reach the network: W&B stays offline and the hubs are asked nothing.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `paths.data_dir` holding the tiny synthetic catalog under synthetic/ (generated once per session)."""
    from prodmatch.data.synthetic import ensure_catalog

    data_dir = tmp_path_factory.mktemp("data")
    ensure_catalog(data_dir / "synthetic", seed=0, scale="tiny")
    return data_dir


@pytest.fixture(scope="session")
def tiny_catalogs(tiny_data_dir: Path):
    """(queries, database) of the tiny synthetic catalog, images checked."""
    from prodmatch.data.catalog import load_catalog

    root = tiny_data_dir / "synthetic"
    return (
        load_catalog(root / "company_data.csv", root),
        load_catalog(root / "comparable_data.csv", root),
    )


@pytest.fixture
def compose_cfg(tiny_data_dir: Path, tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose `train`/`evaluate` like the Hydra main does, on the tiny catalog, output in tmp_path."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from prodmatch.tasks.resolvers import register_resolvers

    register_resolvers()

    def _compose(config_name: str, overrides: Sequence[str] = (), tiny: bool = True) -> DictConfig:
        GlobalHydra.instance().clear()
        base = tiny_overrides(tiny_data_dir, tmp_path) if tiny else []
        with initialize_config_dir(str(REPO_ROOT / "conf"), version_base="1.3"):
            cfg = compose(config_name, overrides=[*base, *overrides], return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(tmp_path)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]  # a Hydra main's task function never sees this node either
        return cfg

    yield _compose
    GlobalHydra.instance().clear()
