"""Where the Hydra configs are: the source tree's `conf/` in a checkout, the packaged copy when installed."""

from __future__ import annotations

from pathlib import Path

PACKAGED = "pkg://prodmatch.conf"


def config_path() -> str:
    """The config search path for the Hydra mains.

    A source checkout (editable install or PYTHONPATH) uses its own top-level `conf/`, so edits there apply at
    once; a regular install uses the copy the wheel carries as the package `prodmatch.conf`.
    """
    source = Path(__file__).resolve().parents[3] / "conf"
    return str(source) if (source / "train.yaml").is_file() else PACKAGED
