"""Reproduce the study's comparison: every off-the-shelf and fine-tuned experiment, then the results report.

`python -m prodmatch.reproduce [--profile synthetic|quick|sportdoma]` (what `make reproduce` runs). Each table
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
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class Profile:
    """What a reproduction runs on and how long it trains (Hydra overrides for both sweeps)."""

    note: str
    common: tuple[str, ...]
    train: tuple[str, ...] = ()
    # the product-level table: its catalog (in place of `common`'s; None: `common`) and training length
    product: tuple[str, ...] | None = None
    product_train: tuple[str, ...] = ()
    # product rows whose training needs a longer budget than the table's to converge, each run as its own sweep
    # with these overrides in place of `product_train`'s for the same keys
    product_train_longer: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    product_note: str = ""  # the note of the product-level report of `--only product`


PROFILES = {
    # The default: offline on the synthetic demo catalog, sized for a 2-core CPU machine.
    "synthetic": Profile(
        note="synthetic demo catalog, models built locally with random weights (pretrained=false), CPU-sized "
        "training (5 epochs of 1500 pairs)",
        common=("data=synthetic", "pretrained=false"),
        train=("trainer.max_epochs=5", "datamodule.sampler.pairs_per_epoch=1500"),
        # the study-sized catalog (1,000 queries x ~13,700 cards); CPU-sized product training: 3 epochs of 60
        # batches (about 11,500 images, ~50 images/s on 2 cores), no before-fit evaluation (the untrained image
        # row is product_image)
        product=("data=synthetic_full", "pretrained=false"),
        product_train=(
            "trainer.max_epochs=3",
            "+trainer.limit_train_batches=60",
            "callbacks.retrieval.before_fit=false",
        ),
        # its category classifier reaches 0.98 validation accuracy after about 10 such epochs (a 3-epoch run ends at 0.93)
        product_train_longer={"product_fused": ("trainer.max_epochs=12",)},
        product_note="Product level only: the product-level sweeps on data=synthetic_full, models built locally "
        "with random weights, CPU-sized training (3 epochs of 60 batches; product_fused 12)",
    ),
    # A smoke run that still writes every row: the tiny synthetic catalog, one short epoch.
    "quick": Profile(
        note="QUICK SMOKE RUN: tiny synthetic catalog, random-weight models, one short epoch; not a result",
        common=(
            "data=synthetic",
            "pretrained=false",
            "paths.data_dir=${paths.root_dir}/data/quick",
            "data.synthetic.scale=tiny",
            "data.image_size=32",
        ),
        train=("trainer.max_epochs=1", "datamodule.sampler.pairs_per_epoch=64"),
        product_train=("trainer.max_epochs=1", "datamodule.batch_size=8"),
    ),
    # The study itself: the user's real files, pretrained weights, the study's training settings.
    "sportdoma": Profile(
        note="real SportDoma catalog, pretrained ResNet18 (ImageNet) and rubert-tiny2, the study's settings",
        common=("data=sportdoma", "pretrained=true"),
        # the real catalog has no SKU column: product-level figures need the synthetic one (or your SKUs)
        product=("data=synthetic_full", "pretrained=true"),
    ),
}


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
    """The reproduction's steps: the study's two sweeps, the product-level sweeps, then the results report and
    the galleries. ``only="product"``: the product-level sweeps alone, reported under ``reports_dir/product``."""
    from prodmatch.reporting.study import FINE_TUNED, OFF_THE_SHELF, table_experiments

    profile = PROFILES[profile_name]
    group = f"reproduce_{profile_name}"
    report = [sys.executable, "-m", "prodmatch.reporting"]
    product_steps = _product_steps(profile, runs_dir / "product", group, extra)
    if only == "product":
        runs, out = runs_dir / "product", reports_dir / "product"
        note = profile.product_note or profile.note
        return [
            *product_steps,
            [*report, "results", "--runs", str(runs), "--out", str(out), "--note", note],
            [*report, "gallery", "--runs", str(runs), "--out", str(out / "galleries")],
        ]
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
        [*report, "results", "--runs", str(runs_dir), "--out", str(reports_dir), "--note", profile.note],
        [*report, "gallery", "--runs", str(runs_dir), "--out", str(reports_dir / "galleries")],
    ]


def _product_steps(profile: Profile, runs: Path, group: str, extra: Sequence[str]) -> list[list[str]]:
    """The product-level sweeps: evaluate rows, train rows at the table's budget, each longer-trained row."""
    from prodmatch.reporting.study import PRODUCT_LEVEL, table_experiments

    product = profile.common if profile.product is None else profile.product
    trained = table_experiments(PRODUCT_LEVEL, task="train")
    longer = {name: more for name, more in profile.product_train_longer.items() if name in trained}
    runs_of = [
        ("evaluate", table_experiments(PRODUCT_LEVEL, task="evaluate"), product),
        ("train", [n for n in trained if n not in longer], [*product, *profile.product_train]),
        *(
            ("train", [name], [*product, *_replace(profile.product_train, more)])
            for name, more in longer.items()
        ),
    ]
    return [
        sweep_command(f"prodmatch.{task}", names, runs / task, group, [*overrides, *extra])
        for task, names, overrides in runs_of
        if names
    ]


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
    parser.add_argument("--profile", choices=sorted(PROFILES), default="synthetic")
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
    status = run_steps(plan(args.profile, runs.resolve(), out.resolve(), args.overrides, args.only))
    if status == 0:
        out = out / "product" if args.only == "product" else out
        print(f"results: {out / 'results.md'}, chart: {out / 'results.png'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
