"""Shared fixtures: a tiny synthetic catalog, and Hydra configs composed as the entry points compose them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from omegaconf import DictConfig, open_dict

REPO_ROOT = Path(__file__).resolve().parents[1]
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


def tiny_overrides(data_dir: Path, out_dir: Path) -> list[str]:
    """Overrides that point a run at the tiny catalog, a private output dir, and small fast settings."""
    return [
        f"paths.root_dir={out_dir}",
        f"paths.data_dir={data_dir}",
        f"paths.output_dir={out_dir}",
        f"paths.cache_dir={out_dir}/cache",
        "data.synthetic.scale=tiny",
        "data.image_size=32",
        "num_workers=0",
        "encoders.text.local.vocab_size=2000",
        "encoders.tfidf.dim=64",
    ]


def cli_overrides(data_dir: Path, out_dir: Path, root: bool = True) -> list[str]:
    """`tiny_overrides` for a real entry-point run: Hydra picks the run dir (and, with root=False, the root)."""
    drop = ("paths.output_dir",) if root else ("paths.output_dir", "paths.root_dir")
    return [a for a in tiny_overrides(data_dir, out_dir) if not a.startswith(drop)]


def run_script(
    script: str, args: Sequence[str], cwd: Path, timeout: int = 900
) -> subprocess.CompletedProcess:
    """Run one of the root entry points (train.py, evaluate.py, ...) as a user would, offline."""
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wandb_exit_codes(run_dir: Path) -> list[int]:
    """Exit codes W&B recorded for the offline runs under run_dir (one per finished run)."""
    codes = []
    for log in sorted(run_dir.glob("wandb/offline-run-*/logs/debug.log")):
        codes += [
            int(line.rsplit(":", 1)[1]) for line in log.read_text().splitlines() if "got exitcode:" in line
        ]
    return codes


@pytest.fixture
def compose_cfg(tiny_data_dir: Path, tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose `train`/`evaluate` like the Hydra main does, on the tiny catalog, output in tmp_path."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    import prodmatch.cli  # noqa: F401  (registers the config resolvers)

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
