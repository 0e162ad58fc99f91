"""The Python API: the evaluate, match and train tasks from a notebook or a script, each returning a
:class:`~prodmatch.tasks.run.Run`.

    import prodmatch as pm
    run = pm.evaluate("title_tfidf", queries="shop/company_data.csv", database="shop/comparable_data.csv",
                      overrides=["data.columns.title=name"])
    run.metrics["retrieval/acc@10"], run.run_dir, run.matches().head()

A call composes the entry point's config with Hydra's compose API (the same defaults, experiments and overrides as
the command line), runs the task in a run dir of its own under ``logs/<task>/runs/`` of the working directory
(``.hydra/`` with the config and overrides as a command-line run writes it) and leaves no Hydra state behind, so
calls do not leak into each other. A bad input raises its :class:`~prodmatch.errors.ProdmatchError` (one line)
instead of ending the process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir, initialize_config_module

# Hydra keeps no public constructor for the callbacks a job runs with (the run-dir lock, ...)
from hydra._internal.callbacks import Callbacks
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import run_job
from hydra.types import HydraContext

from prodmatch.errors import ConfigError
from prodmatch.tasks import evaluate as evaluate_task
from prodmatch.tasks import match as match_task
from prodmatch.tasks import train as train_task
from prodmatch.tasks.checks import check_config
from prodmatch.tasks.resolvers import register_resolvers
from prodmatch.tasks.run import Run
from prodmatch.tasks.wrapper import raising_errors
from prodmatch.utils.config import PACKAGED, config_path

__all__ = ["evaluate", "match", "train"]


def evaluate(
    experiment: str | None = None,
    *,
    queries: str | Path | None = None,
    database: str | Path | None = None,
    image_root: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> Run:
    """`python evaluate.py experiment=<experiment> <overrides>`; ``queries``/``database`` (CSV files) select your
    own data (``data=csv``), ``image_root`` the folder their img_ref paths are relative to."""
    return _run(
        "evaluate", evaluate_task.evaluate, experiment, _data(queries, database, image_root), overrides
    )


def match(
    experiment: str | None = None,
    *,
    queries: str | Path | None = None,
    database: str | Path | None = None,
    image_root: str | Path | None = None,
    k: int | None = None,
    overrides: Sequence[str] = (),
) -> Run:
    """`python match.py experiment=<experiment> retrieval.k=<k> <overrides>`: every query card's top-k matches;
    ``run.matches()`` is the export."""
    depth = [] if k is None else [f"retrieval.k={int(k)}"]
    return _run(
        "match", match_task.match, experiment, _data(queries, database, image_root), [*depth, *overrides]
    )


def train(
    experiment: str | None = None,
    *,
    queries: str | Path | None = None,
    database: str | Path | None = None,
    image_root: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> Run:
    """`python train.py experiment=<experiment> <overrides>` (the offline demo with no experiment); the run's
    checkpoints are under ``run.run_dir / "checkpoints"``."""
    return _run("train", train_task.train, experiment, _data(queries, database, image_root), overrides)


def _quote(value: str | Path) -> str:
    """A path as one Hydra override value, whatever characters it holds."""
    text = str(Path(value).expanduser().absolute())
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _data(queries: Any, database: Any, image_root: Any) -> list[str]:
    """The overrides that point a run at the user's CSVs (``data=csv``), or none."""
    if queries is None and database is None:
        if image_root is not None:
            return [f"data.image_root={_quote(image_root)}"]
        return []
    if queries is None or database is None:
        raise ConfigError("give both queries=<queries CSV> and database=<database CSV> (or neither)")
    out = ["data=csv", f"data.queries_csv={_quote(queries)}", f"data.database_csv={_quote(database)}"]
    return out + ([f"data.image_root={_quote(image_root)}"] if image_root is not None else [])


def _run(
    config_name: str,
    task: Callable[[Any], Run],
    experiment: str | None,
    data: list[str],
    overrides: Sequence[str],
) -> Run:
    """Compose ``config_name`` with the overrides, run ``task`` as Hydra runs a job, clear Hydra's state."""
    register_resolvers()
    chosen = [f"experiment={experiment}"] if experiment else []
    everything = [*data, *chosen, *map(str, overrides)]
    where = config_path()
    GlobalHydra.instance().clear()
    initialize = (
        initialize_config_module(PACKAGED[len("pkg://") :], version_base="1.3", job_name=config_name)
        if where == PACKAGED
        else initialize_config_dir(where, version_base="1.3", job_name=config_name)
    )
    outcome: dict[str, Any] = {}

    def job(cfg: Any) -> None:
        try:
            with raising_errors():
                outcome["run"] = task(cfg)
        except BaseException as exc:  # noqa: BLE001 - raised again below, once Hydra's state is cleared
            outcome["error"] = exc

    try:
        with initialize:
            cfg = compose(config_name, overrides=everything, return_hydra_config=True)
            check_config(cfg)
            context = HydraContext(
                config_loader=GlobalHydra.instance().config_loader(), callbacks=Callbacks(cfg)
            )
            run_job(job, cfg, "hydra.run.dir", None, context, configure_logging=False)
    finally:
        HydraConfig.instance().cfg = None
        GlobalHydra.instance().clear()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["run"]
