"""CLI: ``python -m prodmatch.data.synthetic --out DIR [--seed N] [--scale tiny|demo|full] [--profile default|hard]``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from prodmatch.data.synthetic.generation import generate
from prodmatch.data.synthetic.hard import DEFAULT, PROFILES
from prodmatch.data.synthetic.tables import SCALES
from prodmatch.errors import ProdmatchError


def summary(out: str | Path, seed: int, scale: str, seconds: float, profile: str = DEFAULT) -> str:
    """One line describing a generated catalog."""
    out = Path(out)
    company = pd.read_csv(out / "company_data.csv", usecols=["target"])
    database = pd.read_csv(out / "comparable_data.csv", usecols=["target", "dealer", "sku"])
    return (
        f"synthetic catalog (scale={scale}, seed={seed}, profile={profile}): {len(company)} queries, {len(database)} database cards "
        f"({database['sku'].nunique()} SKUs, {database['target'].nunique()} targets, "
        f"{database['dealer'].nunique()} shops), {len(company) + len(database)} images -> {out} ({seconds:.1f} s)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prodmatch.data.synthetic",
        description="Generate the synthetic demo catalog (company_data.csv, comparable_data.csv, images/).",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed -> identical files)")
    parser.add_argument("--scale", choices=sorted(SCALES), default="demo", help="catalog size")
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default=DEFAULT,
        help="default, or hard: the same catalog with marketplace effects on text and images (docs/CATALOGS.md)",
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        generate(args.out, args.seed, args.scale, args.profile)
    except ProdmatchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary(args.out, args.seed, args.scale, time.perf_counter() - start, args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
