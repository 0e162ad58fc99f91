"""Running the entry points as a user would, offline, and reading what a run left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


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


OFFLINE_ENV = {"WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}


def run_script(
    script: str, args: Sequence[str], cwd: Path, timeout: int = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run one of the root entry points (train.py, evaluate.py, ...) as a user would, offline (``env``: more
    environment variables)."""
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / script), *args],
        cwd=cwd,
        env={**os.environ, **OFFLINE_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_script(
    script: str, args: Sequence[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start an entry point in the background (for runs at once, or a signal mid-run); output is piped."""
    return subprocess.Popen(
        [sys.executable, str(REPO_ROOT / script), *args],
        cwd=cwd,
        env={**os.environ, **OFFLINE_ENV, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wandb_exit_codes(run_dir: Path) -> list[int]:
    """Exit codes W&B recorded for the offline runs under run_dir (one per finished run)."""
    codes = []
    for log in sorted(run_dir.glob("wandb/offline-run-*/logs/debug.log")):
        codes += [
            int(line.rsplit(":", 1)[1]) for line in log.read_text().splitlines() if "got exitcode:" in line
        ]
    return codes
