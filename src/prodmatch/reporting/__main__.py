"""Command line: ``python -m prodmatch.reporting results|gallery ...``.

python -m prodmatch.reporting results --runs multirun logs --out reports/
python -m prodmatch.reporting gallery --runs multirun logs --queries 0 500 621 626 --out reports/galleries/
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from prodmatch.errors import ProdmatchError
from prodmatch.reporting.pages import write_galleries
from prodmatch.reporting.render import write_results
from prodmatch.reporting.results import default_note
from prodmatch.reporting.runs import collect_runs
from prodmatch.reporting.study import STUDY_QUERY_IDS

DEFAULT_RUNS = (Path("multirun"), Path("logs"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m prodmatch.reporting", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    runs_help = "folders searched recursively for run dirs (metrics.json + result/result.json)"

    res = sub.add_parser("results", help="results table (markdown) + bar chart beside the study's figures")
    res.add_argument("--runs", nargs="+", type=Path, default=list(DEFAULT_RUNS), help=runs_help)
    res.add_argument(
        "--out", type=Path, default=Path("reports"), help="writes OUT/results.md and OUT/results.png"
    )
    res.add_argument("--title", default="prodmatch results vs the study")
    res.add_argument("--note", default=None, help="which data the figures come from (default: from the runs)")
    res.add_argument(
        "--all-runs", action="store_true", help="keep every run, not only the latest per experiment"
    )

    gal = sub.add_parser(
        "gallery", help="HTML pages of the top-k for chosen queries, per run and side by side"
    )
    gal.add_argument("--runs", nargs="+", type=Path, default=list(DEFAULT_RUNS), help=runs_help)
    gal.add_argument(
        "--queries", nargs="+", type=int, default=list(STUDY_QUERY_IDS), help="query CSV row positions"
    )
    gal.add_argument("--out", type=Path, default=Path("reports/galleries"))
    gal.add_argument("--experiments", nargs="+", default=None, help="only these experiment names")
    gal.add_argument("-k", type=int, default=None, help="results shown per query (default: each run's k)")
    gal.add_argument(
        "--queries-csv", type=Path, default=None, help="the runs' queries csv moved here since they ran"
    )
    gal.add_argument(
        "--database-csv", type=Path, default=None, help="the runs' database csv moved here since they ran"
    )
    gal.add_argument(
        "--image-root", type=Path, default=None, help="the runs' image root moved here since they ran"
    )
    return parser


def _results(args: argparse.Namespace) -> None:
    runs = collect_runs(args.runs, latest_only=not args.all_runs)
    note = args.note or default_note(runs)
    write_results(runs, args.out / "results.md", args.out / "results.png", args.title, note)
    print(f"wrote {args.out / 'results.md'} and {args.out / 'results.png'}")


def _gallery(args: argparse.Namespace) -> None:
    if args.k is not None and args.k < 1:
        raise ProdmatchError(f"-k {args.k}: must be at least 1")
    runs = collect_runs(args.runs)
    if args.experiments:
        runs = runs.loc[runs["experiment"].isin(args.experiments)]
        if runs.empty:
            raise ProdmatchError(
                f"none of the experiments {args.experiments} has a run under {', '.join(map(str, args.runs))}; "
                "check --experiments against the experiment names in the results table"
            )
    pages = write_galleries(
        runs, args.out, args.queries, args.k,
        queries_csv=args.queries_csv, database_csv=args.database_csv, image_root=args.image_root,
    )  # fmt: skip
    print(f"wrote {len(pages)} gallery pages to {args.out} (side by side: {args.out / 'compare.html'})")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; expected problems print one line and return 2."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        {"results": _results, "gallery": _gallery}[args.command](args)
    except ProdmatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
