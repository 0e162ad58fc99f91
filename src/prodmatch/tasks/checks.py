"""Config checks that need no data: run before the heavy imports and before a run dir or a W&B run exists.

:func:`check_config` raises a :class:`~prodmatch.errors.ConfigError` (one line naming the key and the fix);
:class:`EarlyConfigCheck` runs it from Hydra at the start of a run or a sweep, the Python API before composing a
job. What needs the data (columns, images) is checked when the catalogs are read.
"""

from __future__ import annotations

import difflib
import importlib.util
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from prodmatch.errors import ConfigError, one_line
from prodmatch.utils.config import config_files, config_path

INDEX_GROUP = "/".join(("retrieval", "index"))  # a config group (conf/retrieval/index/), not a metric key
# the package each index backend imports, and how to install it
_INDEX_PACKAGES: dict[str, tuple[str, str]] = {
    "AnnoyIndex": ("annoy", "pip install annoy"),
    "FaissIndex": ("faiss", "pip install 'prodmatch[faiss]'"),
    "MilvusIndex": ("pymilvus", "pip install 'prodmatch[milvus]'"),
}


def _select(cfg: DictConfig, key: str) -> Any:
    """A config value, or None when it is missing or needs what is not there yet (Hydra's runtime values)."""
    try:
        return OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
    except Exception:  # noqa: BLE001 - an interpolation that cannot be resolved this early is not checked here
        return None


def index_backends() -> list[str]:
    """The index backend choices (conf/retrieval/index/)."""
    return [name for name, _ in config_files(config_path(), INDEX_GROUP)]


def check_index(cfg: DictConfig) -> None:
    """`retrieval.index` is a backend of conf/retrieval/index/ whose package is installed."""
    node = OmegaConf.select(cfg, "retrieval.index", throw_on_resolution_failure=False)
    names = index_backends()
    if node is not None and not isinstance(node, DictConfig):
        value = str(node)
        if value in names:
            hint = f"choose it with {INDEX_GROUP}={value}"
        else:
            close = difflib.get_close_matches(value, names, n=1, cutoff=0.5) or [names[0]]
            hint = f"choose one with {INDEX_GROUP}=<name>, e.g. {INDEX_GROUP}={close[0]}"
        raise ConfigError(
            f"retrieval.index={value} is not a backend choice; {hint} (backends: {', '.join(names)})"
        )
    target = str(_select(cfg, "retrieval.index._target_") or "")
    package, install = _INDEX_PACKAGES.get(target.rsplit(".", 1)[-1], (None, ""))
    if package is not None and importlib.util.find_spec(package) is None:
        choice = _select(cfg, f"hydra.runtime.choices.{INDEX_GROUP}") or target
        others = ", ".join(n for n in names if n != choice)
        raise ConfigError(
            f"{INDEX_GROUP}={choice} needs the {package} package, which is not installed: {install} "
            f"(or choose another backend: {others})"
        )


def check_added_keys(cfg: DictConfig) -> None:
    """A `+key=value` whose first part is a near miss of a config key is a typo (`+retreival.k=20`), not a key
    of its own: Hydra would add it and the run would ignore it."""
    overrides = _select(cfg, "hydra.overrides.task") or []
    groups = set(_select(cfg, "hydra.runtime.choices") or {})  # `+mining=title_tfidf` adds a config group
    added: dict[str, set[str]] = {}
    for override in map(str, overrides):
        if override.startswith("+") and not override.startswith("++") and "=" in override:
            if override[1:].split("=", 1)[0] in groups:
                continue
            path = override[1:].split("=", 1)[0].split(".")
            added.setdefault(path[0], set()).add(path[1] if len(path) > 1 else "")
    for top, children in added.items():
        node = cfg.get(top)
        new = not isinstance(node, DictConfig) or set(node.keys()) <= children
        others = [k for k in cfg if k not in added and k != "hydra"]
        close = difflib.get_close_matches(top, others, n=1, cutoff=0.75)
        if new and close:
            raise ConfigError(
                f"+{top}...: {top} is not a config key; did you mean {close[0]} (without the +)?"
            )


def check_data(cfg: DictConfig) -> None:
    """`data=csv` names both CSV files."""
    if _select(cfg, "hydra.runtime.choices.data") != "csv":
        return
    missing = [k for k in ("queries_csv", "database_csv") if not _select(cfg, f"data.{k}")]
    if missing:
        keys = " ".join(f"data.{k}=<your {k.split('_')[0]} CSV>" for k in missing)
        raise ConfigError(f"data=csv needs {keys}")


def check_config(cfg: DictConfig) -> None:
    """Every check that needs no data (see the module docstring)."""
    check_added_keys(cfg)
    check_data(cfg)
    check_index(cfg)


class EarlyConfigCheck(Callback):
    """Hydra callback: :func:`check_config` before a run (or a sweep) starts; a failure is one line and exit 1."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config)  # the overrides every job shares; each job's own values are checked as it runs

    @staticmethod
    def _check(config: DictConfig) -> None:
        try:
            check_config(config)
        except ConfigError as err:
            print(f"error: {one_line(err)}", file=sys.stderr)
            raise SystemExit(1) from None
