"""Reproduce the study's comparison: every off-the-shelf and fine-tuned experiment, then the results report.

`python -m prodmatch.reproduce [--profile synthetic|quick|sportdoma]` (what `make reproduce` runs); a profile is
``conf/reproduce/<profile>.yaml``, the overrides of each sweep. Each table
is one Hydra sweep with a fixed job dir per experiment and `resume=true`, so finished runs are reused and an
interrupted reproduction picks up where it stopped. All runs of one reproduction share one W&B group.
Everything is written under the working directory: `multirun/reproduce/<profile>/` and `reports/`.

SIGTERM or SIGINT (Ctrl+C) is passed on to the running step's whole process group, which is then waited for
(a training job saves `last.ckpt` on its way out); a second signal kills the group. The reproduction then
exits with 128 + the signal number and leaves no process behind.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import FrameType

from omegaconf import OmegaConf

from prodmatch.errors import ConfigError
from prodmatch.layout import CHECKPOINTS_DIR, LAST_CHECKPOINT_FILE
from prodmatch.reporting.study import FINE_TUNED, OFF_THE_SHELF, PRODUCT_LEVEL, table_experiments
from prodmatch.utils.config import config_files, config_path

SIGNALS = (signal.SIGTERM, signal.SIGINT)
PROFILE_GROUP = "reproduce"  # conf/reproduce/<profile>.yaml


@dataclass(frozen=True)
class Profile:
    """What a reproduction runs on and how long it trains: Hydra overrides for the sweeps, read from
    ``conf/reproduce/<name>.yaml`` (see those files for what each field does)."""

    note: str
    common: tuple[str, ...]
    train: tuple[str, ...] = ()
    product: tuple[str, ...] | None = None  # the product-level table's catalog (None: ``common``'s)
    product_train: tuple[str, ...] = ()
    product_train_longer: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    product_note: str = ""  # the note of the product-level report of `--only product`
    # the catalogs (data configs) of the product-level table, one table each (empty: `product`'s data alone)
    product_catalogs: tuple[str, ...] = ()


# Product rows evaluated from another row's trained checkpoint, not trained again: row -> (the evaluate experiment
# that reads a checkpoint, the train row whose last.ckpt it reads). product_fused's image net is
# product_image_supcon's (same recipe, budget and seed), so one training serves both rows.
FROM_CHECKPOINT: dict[str, tuple[str, str]] = {
    "product_fused": ("product_fused_checkpoint", "product_image_supcon"),
}


def profile_names(config_dir: str | None = None) -> list[str]:
    """The profiles ``conf/reproduce/`` holds, sorted."""
    return sorted(name for name, _ in config_files(config_dir or config_path(), PROFILE_GROUP))


def load_profile(name: str, config_dir: str | None = None) -> Profile:
    """The profile ``conf/reproduce/<name>.yaml``; its overrides stay as written (``${...}`` is Hydra's to resolve)."""
    texts = dict(config_files(config_dir or config_path(), PROFILE_GROUP))
    if name not in texts:
        raise ConfigError(f"no reproduce profile {name!r}; use one of {', '.join(sorted(texts))}")
    data = OmegaConf.to_container(OmegaConf.create(texts[name]), resolve=False)
    unknown = set(data) - {f.name for f in fields(Profile)}
    if unknown:
        raise ConfigError(f"reproduce/{name}.yaml: unknown keys {sorted(unknown)}")
    lists = {key: tuple(value) for key, value in data.items() if isinstance(value, list)}
    longer = {row: tuple(more) for row, more in (data.get("product_train_longer") or {}).items()}
    return Profile(**{**data, **lists, "product_train_longer": longer})


def sweep_command(
    module: str, names: Sequence[str], sweep_dir: Path, group: str, overrides: Sequence[str]
) -> list[str]:
    """One Hydra multirun over the experiments, one fixed job dir per experiment, resuming finished ones."""
    return [
        sys.executable,
        "-m",
        module,
        "-m",
        f"experiment={','.join(names)}",
        f"group={group}",
        "resume=true",
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.sweep.subdir=${experiment_name}",
        *overrides,
    ]


def plan(
    profile_name: str, runs_dir: Path, reports_dir: Path, extra: Sequence[str] = (), only: str | None = None
) -> list[list[str]]:
    """The reproduction's steps: the study's two sweeps, the product-level sweeps (per catalog), then the results
    reports and the galleries. ``only="product"``: the product-level sweeps alone, reported under
    ``reports_dir/product`` (``reports_dir/product/<catalog>`` for a profile with several catalogs)."""
    profile = load_profile(profile_name)
    group = f"reproduce_{profile_name}"
    report = [sys.executable, "-m", "prodmatch.reporting"]
    catalogs = _product_catalogs(profile, runs_dir / "product", reports_dir / "product")
    product_steps = [
        step
        for _, runs, _, data in catalogs
        for step in _product_steps(profile, runs, group, [*data, *extra])
    ]
    product_note = profile.product_note or profile.note
    if only == "product":
        reports = []
        for name, runs, out, _ in catalogs:
            title = ["--title", f"Product level, data={name}"] if name else []
            reports += [
                [*report, "results", "--runs", str(runs), "--out", str(out), "--note", product_note, *title],
                [*report, "gallery", "--runs", str(runs), "--out", str(out / "galleries")],
            ]
        return [*product_steps, *reports]
    # the study's report holds the first catalog's product table; each other catalog gets a report of its own
    study_runs = [str(runs_dir / "evaluate"), str(runs_dir / "train"), str(catalogs[0][1])]
    others = [
        [*report, "results", "--runs", str(runs), "--out", str(out), "--note", product_note,
         "--title", f"Product level, data={name}"]
        for name, runs, out, _ in catalogs[1:]
    ]  # fmt: skip
    return [
        sweep_command(
            "prodmatch.evaluate",
            table_experiments(OFF_THE_SHELF),
            runs_dir / "evaluate",
            group,
            [*profile.common, *extra],
        ),
        sweep_command(
            "prodmatch.train",
            table_experiments(FINE_TUNED),
            runs_dir / "train",
            group,
            [*profile.common, *profile.train, *extra],
        ),
        *product_steps,
        [*report, "results", "--runs", *study_runs, "--out", str(reports_dir), "--note", profile.note],
        *others,
        [*report, "gallery", "--runs", *study_runs, "--out", str(reports_dir / "galleries")],
    ]


def report_files(steps: Sequence[Sequence[str]]) -> list[Path]:
    """The results.md each reporting step of a plan writes."""
    return [Path(s[s.index("--out") + 1]) / "results.md" for s in steps if "results" in s and "--out" in s]


def _product_catalogs(profile: Profile, runs: Path, out: Path) -> list[tuple[str, Path, Path, list[str]]]:
    """(catalog name, its runs dir, its report dir, its data override) of each product-level table."""
    if not profile.product_catalogs:
        return [("", runs, out, [])]
    return [(name, runs / name, out / name, [f"data={name}"]) for name in profile.product_catalogs]


def _product_steps(profile: Profile, runs: Path, group: str, extra: Sequence[str]) -> list[list[str]]:
    """The product-level sweeps: evaluate rows, train rows at the table's budget, each longer-trained row, then
    the rows evaluated from a trained row's checkpoint."""
    product = profile.common if profile.product is None else profile.product
    trained = table_experiments(PRODUCT_LEVEL, task="train")
    reuse = {row: how for row, how in FROM_CHECKPOINT.items() if row in trained and how[1] in trained}
    trained = [n for n in trained if n not in reuse]
    longer = {name: more for name, more in profile.product_train_longer.items() if name in trained}
    runs_of = [
        ("evaluate", table_experiments(PRODUCT_LEVEL, task="evaluate"), product),
        ("train", [n for n in trained if n not in longer], [*product, *profile.product_train]),
        *(
            ("train", [name], [*product, *_replace(profile.product_train, more)])
            for name, more in longer.items()
        ),
    ]
    steps = [
        sweep_command(f"prodmatch.{task}", names, runs / task, group, [*overrides, *extra])
        for task, names, overrides in runs_of
        if names
    ]
    for row, (config, source) in reuse.items():
        ckpt = runs / "train" / source / CHECKPOINTS_DIR / LAST_CHECKPOINT_FILE
        overrides = [*product, f"experiment_name={row}", f"ckpt_path={ckpt}", *extra]
        steps.append(sweep_command("prodmatch.evaluate", [config], runs / "evaluate", group, overrides))
    return steps


def _replace(overrides: Sequence[str], new: Sequence[str]) -> list[str]:
    """``overrides`` with each key that ``new`` sets (``+key`` and ``key`` alike) replaced by its value."""

    def key(override: str) -> str:
        return override.split("=", 1)[0].lstrip("+")

    keys = {key(o) for o in new}
    return [*(o for o in overrides if key(o) not in keys), *new]


class _Forwarder:
    """Signal handler: pass the first signal on to the child's process group, kill the group on the next."""

    def __init__(self) -> None:
        self.child: subprocess.Popen | None = None
        self.received: int | None = None
        self.forwarded_to: int | None = None  # the child that got the first signal

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        if first:
            self.received = signum
        self.send(signum if first else signal.SIGKILL)

    def send(self, signum: int) -> None:
        if self.child is not None and self.child.poll() is None:
            self.forwarded_to = self.child.pid
            _kill_group(self.child.pid, signum)


def _kill_group(pgid: int, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(pgid, signum)


@contextmanager
def _forwarding() -> Iterator[_Forwarder]:
    """Install the forwarding handlers for the block and restore the previous ones after."""
    forwarder = _Forwarder()
    previous = {s: signal.signal(s, forwarder) for s in SIGNALS}
    try:
        yield forwarder
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_steps(steps: Sequence[Sequence[str]]) -> int:
    """Run the steps in order, each in its own process group; returns the first non-zero status.

    A signal stops the reproduction: the running step's group gets it and is waited for, whatever is left
    of the group is killed (no orphans), and the status is 128 + the signal number.
    """
    with _forwarding() as fwd:
        for cmd in steps:
            if fwd.received is not None:
                break
            print("+ " + " ".join(cmd[1:]), flush=True)
            # its own session: a terminal's Ctrl+C reaches the step once, through us, not twice
            fwd.child = subprocess.Popen(list(cmd), start_new_session=True)
            if fwd.received is not None and fwd.forwarded_to != fwd.child.pid:
                fwd.send(fwd.received)  # the signal came while the child was starting
            status = fwd.child.wait()
            if fwd.received is not None:
                _kill_group(fwd.child.pid, signal.SIGKILL)  # helpers the step left behind
                break
            if status != 0:
                print(
                    f"error: step failed with exit status {status}; rerun the same command to resume",
                    file=sys.stderr,
                )
                return status
    if fwd.received is not None:
        name = signal.Signals(fwd.received).name
        print(f"error: stopped by {name}; rerun the same command to resume", file=sys.stderr)
        return 128 + fwd.received
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prodmatch.reproduce", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--profile", choices=profile_names(), default="synthetic", help="conf/reproduce/<profile>.yaml"
    )
    parser.add_argument(
        "--runs", type=Path, default=None, help="sweep root (default multirun/reproduce/<profile>)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="report dir (default reports/, or reports/<profile>)"
    )
    parser.add_argument(
        "--only", choices=["product"], help="product: the product-level table alone (-> <out>/product/)"
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run, e.g. trainer=gpu")
    args = parser.parse_args(argv)
    cwd = Path.cwd()
    runs = args.runs or cwd / "multirun" / "reproduce" / args.profile
    out = args.out or (cwd / "reports" if args.profile == "synthetic" else cwd / "reports" / args.profile)
    steps = plan(args.profile, runs.resolve(), out.resolve(), args.overrides, args.only)
    status = run_steps(steps)
    if status == 0:
        print("results: " + ", ".join(str(p) for p in report_files(steps)))
    return status


if __name__ == "__main__":
    sys.exit(main())
