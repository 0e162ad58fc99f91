"""Where the Hydra configs are: the source tree's `conf/` in a checkout, the packaged copy when installed."""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prodmatch.errors import ConfigError

PACKAGED = "pkg://prodmatch.conf"


def config_path() -> str:
    """The config search path for the Hydra mains.

    A source checkout (editable install or PYTHONPATH) uses its own top-level `conf/`, so edits there apply at
    once; a regular install uses the copy the wheel carries as the package `prodmatch.conf`.
    """
    source = Path(__file__).resolve().parents[3] / "conf"
    return str(source) if (source / "train.yaml").is_file() else PACKAGED


def config_files(config_dir: str, group: str) -> Iterator[tuple[str, str]]:
    """(name, YAML text) of every ``<group>/*.yaml`` under a config dir: a folder or ``pkg://<package>``."""
    prefix = "pkg://"
    base: Any = (
        importlib.resources.files(config_dir[len(prefix) :])
        if config_dir.startswith(prefix)
        else Path(config_dir)
    )
    folder = base / group
    if not folder.is_dir():
        raise ConfigError(f"{config_dir}: no {group}/ folder; point the config path at prodmatch's conf/")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            yield entry.name[: -len(".yaml")], entry.read_text(encoding="utf-8")
