"""Reproduce the study's comparison: every off-the-shelf and fine-tuned experiment, then the results report.

`python -m prodmatch.reproduce [--profile synthetic|quick|sportdoma]` (what `make reproduce` runs). Each table
is one Hydra sweep with a fixed job dir per experiment and `resume=true`, so finished runs are reused and an
interrupted reproduction picks up where it stopped. All runs of one reproduction share one W&B group.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prodmatch.reporting.study import EXPERIMENTS, FINE_TUNED, OFF_THE_SHELF

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Profile:
    """What a reproduction runs on and how long it trains (Hydra overrides for both sweeps)."""

    note: str
    common: tuple[str, ...]
    train: tuple[str, ...] = ()


PROFILES = {
    # The default: offline on the synthetic demo catalog, sized for a 2-core CPU machine.
    "synthetic": Profile(
        note="synthetic demo catalog, models built locally with random weights (pretrained=false), CPU-sized "
        "training (5 epochs of 1500 pairs)",
        common=("data=synthetic", "pretrained=false"),
        train=("trainer.max_epochs=5", "datamodule.pairs_per_epoch=1500"),
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
        train=("trainer.max_epochs=1", "datamodule.pairs_per_epoch=64"),
    ),
    # The study itself: the user's real files, pretrained weights, the study's training settings.
    "sportdoma": Profile(
        note="real SportDoma catalog, pretrained ResNet18 (ImageNet) and rubert-tiny2, the study's settings",
        common=("data=sportdoma", "pretrained=true"),
    ),
}


def experiments(table: str) -> list[str]:
    """Experiment names of one results table, in the study's order."""
    return [e.name for e in EXPERIMENTS if e.table == table]


def sweep_command(
    script: str, names: Sequence[str], sweep_dir: Path, group: str, overrides: Sequence[str]
) -> list[str]:
    """One Hydra multirun over the experiments, one fixed job dir per experiment, resuming finished ones."""
    return [
        sys.executable,
        str(ROOT / script),
        "-m",
        f"experiment={','.join(names)}",
        f"group={group}",
        "resume=true",
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.sweep.subdir=${experiment_name}",
        *overrides,
    ]


def reproduce(profile_name: str, runs_dir: Path, reports_dir: Path, extra: Sequence[str] = ()) -> int:
    """Run both sweeps, then write the results table, chart and galleries; returns an exit status."""
    profile = PROFILES[profile_name]
    group = f"reproduce_{profile_name}"
    steps = [
        sweep_command(
            "evaluate.py", experiments(OFF_THE_SHELF), runs_dir / "evaluate", group, [*profile.common, *extra]
        ),
        sweep_command(
            "train.py",
            experiments(FINE_TUNED),
            runs_dir / "train",
            group,
            [*profile.common, *profile.train, *extra],
        ),
        [
            sys.executable,
            "-m",
            "prodmatch.reporting",
            "results",
            "--runs",
            str(runs_dir),
            "--out",
            str(reports_dir),
            "--note",
            profile.note,
        ],
        [
            sys.executable,
            "-m",
            "prodmatch.reporting",
            "gallery",
            "--runs",
            str(runs_dir),
            "--out",
            str(reports_dir / "galleries"),
        ],
    ]
    for cmd in steps:
        print("+ " + " ".join(cmd[1:]), flush=True)
        status = subprocess.call(cmd, cwd=ROOT)
        if status != 0:
            print(
                f"error: step failed with exit status {status}; rerun the same command to resume",
                file=sys.stderr,
            )
            return status
    print(f"results: {reports_dir / 'results.md'}, chart: {reports_dir / 'results.png'}")
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
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run, e.g. trainer=gpu")
    args = parser.parse_args(argv)
    runs = args.runs or ROOT / "multirun" / "reproduce" / args.profile
    out = args.out or (ROOT / "reports" if args.profile == "synthetic" else ROOT / "reports" / args.profile)
    return reproduce(args.profile, runs.resolve(), out.resolve(), args.overrides)


if __name__ == "__main__":
    sys.exit(main())
