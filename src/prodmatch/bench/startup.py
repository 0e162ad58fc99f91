"""What a user waits for in a cached evaluation: start-up against retrieval work.

    python -m prodmatch.bench --startup [--json PATH] [--markdown bench/results.md] [--logger csv]
        [--experiment title_cat_tfidf] [--data synthetic_full] [--repeats 3] [override ...]

Runs ``python -m prodmatch.evaluate experiment=E data=D logger=L`` as a user would, in fresh processes from the
current folder (its ``data/`` holds the catalog; the first run generates it and fills the embedding cache and
is not timed), then ``--repeats`` timed runs, and reports the median of

- ``wall_s``: the whole process, from the parent (interpreter start, imports, config, catalogs, retrieval,
  artifacts, exit);
- ``retrieval_s``: the retrieval work, from the run's own stage timings saved with its result
  (``result/result.json``): embedding (a cache lookup here), search, the sampled ANN-recall check and scoring;
- ``retrieval_share`` = retrieval_s / wall_s, per run, then the median;
- ``peak_rss_mb``: the evaluate process's peak resident memory (``wait4``);
- ``import_s``: importing the entry point (``import prodmatch.evaluate``) in a fresh interpreter;
- ``heavy_modules``: which of torch, pytorch_lightning and wandb the entry point's import pulls in (none).

Extra ``key=value`` arguments go to every evaluate run (e.g. the tiny catalog's paths in the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prodmatch.bench.common import machine_info, write_section
from prodmatch.layout import RESULT_DIR, RESULT_META_FILE
from prodmatch.utils.atomic import write_json

__all__ = ["RETRIEVAL_STAGES", "main", "measure"]

# The run's stage timings that are retrieval work (result.json "timings"); weight_search_s only with
# concat_weights=auto.
RETRIEVAL_STAGES = ("embed_s", "weight_search_s", "search_s", "recall_s", "score_s")
HEAVY_MODULES = ("torch", "pytorch_lightning", "wandb")


def _run(args: Sequence[str], log: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one child process; its output goes to ``log``."""
    with log.open("w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise SystemExit(f"error: {' '.join(args)} exited {proc.returncode}:\n{tail}")
    return wall, usage.ru_maxrss / 1024  # Linux: kilobytes


def import_cost() -> tuple[float, list[str]]:
    """(seconds to import the evaluate entry point, heavy modules that import pulled in), in a fresh process."""
    code = (
        "import json, sys, time\n"
        "t = time.perf_counter()\n"
        "import prodmatch.evaluate\n"
        "t = time.perf_counter() - t\n"
        f"print(json.dumps([t, [m for m in {list(HEAVY_MODULES)!r} if m in sys.modules]]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, modules = json.loads(out.stdout.strip().splitlines()[-1])
    return float(seconds), list(modules)


def stage_timings(run_dir: Path) -> dict[str, float]:
    """The retrieval stages a run timed itself (saved with its result)."""
    meta = json.loads((run_dir / RESULT_DIR / RESULT_META_FILE).read_text(encoding="utf-8"))
    timings = meta.get("timings", {})
    return {k: float(timings[k]) for k in RETRIEVAL_STAGES if k in timings}


def measure(
    experiment: str, data: str, logger: str, repeats: int, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """Warm the caches with one evaluate run, then time ``repeats`` more (see the module docstring)."""
    import_s, heavy = import_cost()
    base = [sys.executable, "-m", "prodmatch.evaluate", f"experiment={experiment}", f"data={data}"]
    base += [f"logger={logger}", *overrides]
    runs = []
    with tempfile.TemporaryDirectory(prefix="prodmatch-startup-") as tmp:
        for i in range(repeats + 1):
            run_dir = Path(tmp) / f"run{i}"
            wall, rss = _run([*base, f"hydra.run.dir={run_dir}"], Path(tmp) / f"run{i}.log")
            if i == 0:
                continue  # generates the catalog when missing and fills the cache: not what is measured
            stages = stage_timings(run_dir)
            runs.append({"wall_s": wall, "peak_rss_mb": rss, "retrieval_s": sum(stages.values()), **stages})
    median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    share = statistics.median(r["retrieval_s"] / r["wall_s"] for r in runs)
    return {
        "experiment": experiment,
        "data": data,
        "logger": logger,
        "repeats": repeats,
        "import_s": round(import_s, 3),
        "heavy_modules": heavy,
        "wall_s": round(median["wall_s"], 3),
        "retrieval_s": round(median["retrieval_s"], 3),
        "retrieval_share": round(share, 3),
        "peak_rss_mb": round(median["peak_rss_mb"], 1),
        "stages": {k: round(v, 3) for k, v in median.items() if k in RETRIEVAL_STAGES},
        "machine": machine_info(),
    }


def format_result(r: dict[str, Any]) -> str:
    stages = ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items())
    return "\n".join(
        [
            f"cached evaluate experiment={r['experiment']} data={r['data']} logger={r['logger']} "
            f"(median of {r['repeats']})",
            f"  wall {r['wall_s']:.2f} s, retrieval {r['retrieval_s']:.2f} s ({stages})",
            f"  retrieval_share {r['retrieval_share']:.2f}, peak RSS {r['peak_rss_mb']:.0f} MB",
            f"  import prodmatch.evaluate {r['import_s']:.2f} s, heavy modules: {r['heavy_modules'] or 'none'}",
        ]
    )


def to_markdown(r: dict[str, Any], command: str) -> str:
    stages = ", ".join(f"{k.removesuffix('_s')} {v:.2f} s" for k, v in r["stages"].items())
    machine = ", ".join(f"{k} {v}" for k, v in r["machine"].items())
    return "\n".join(
        [
            f"## Start-up of a cached evaluate (logger={r['logger']})",
            "",
            f"`{command}`: `experiment={r['experiment']} data={r['data']}`, median of {r['repeats']} runs after "
            f"one warm-up run; {machine}.",
            "",
            "| wall | retrieval work | retrieval_share | peak RSS | import prodmatch.evaluate |",
            "| ---: | ---: | ---: | ---: | ---: |",
            f"| {r['wall_s']:.2f} s | {r['retrieval_s']:.2f} s | **{r['retrieval_share']:.2f}** | "
            f"{r['peak_rss_mb']:.0f} MB | {r['import_s']:.2f} s |",
            "",
            f"Retrieval work by stage: {stages}. Modules the entry point's import pulls in among torch, "
            f"pytorch_lightning, wandb: {', '.join(r['heavy_modules']) or 'none'}.",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prodmatch.bench --startup", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--experiment", default="title_cat_tfidf")
    parser.add_argument(
        "--data", default="synthetic_full", help="the data config (synthetic_full: study size)"
    )
    parser.add_argument("--logger", default="csv", help="csv | none | wandb")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    parser.add_argument("--markdown", type=Path, default=None, help="also write a section of this file")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides for every evaluate run")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    result = measure(args.experiment, args.data, args.logger, args.repeats, args.overrides)
    print(format_result(result))
    if args.json is not None:
        write_json(args.json, result)
    if args.markdown is not None:
        command = "python -m prodmatch.bench --startup " + " ".join(sys.argv[1:] if argv is None else argv)
        write_section(args.markdown, f"startup-{args.logger}", to_markdown(result, command.strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
