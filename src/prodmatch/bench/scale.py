"""Index backends at scale: build time, query time, recall@k against exact, peak RSS, ratio to bare torch.

    python -m prodmatch.bench --scale --db 1000000 --dim 256 --queries 10000 \\
        --backends exact,faiss_ivfflat,faiss_ivfpq,faiss_ivfpq_refine,annoy,faiss_hnsw --json bench/scale_1000000.json --markdown bench/results.md

Seeded clustered unit vectors (product groups of ~40 cards). First the bare-torch baseline (matmul + topk
over query chunks within the same memory budget) runs and writes the exact top-k; then every backend runs in
its own process (so peaks do not mix), builds, searches all queries and, with ``--sweep`` (the default),
searches the first ``--sweep-queries`` queries at several settings of its search knob (ANNOY ``search_k``,
HNSW ``ef_search``, IVF-PQ ``nprobe``) for the recall-vs-queries/s plot. A backend that fails (a missing
package, out of memory) keeps its row in the JSON with the error line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prodmatch.bench.common import fmt_seconds, machine_info, write_section
from prodmatch.bench.scale_worker import ScaleSpec
from prodmatch.utils.atomic import atomic_path, write_json

BACKENDS = ("exact", "annoy", "faiss_hnsw", "faiss_ivfflat", "faiss_ivfpq", "faiss_ivfpq_refine", "milvus")
BACKENDS += ("milvus_ivfflat",)
KNOBS = {
    "annoy": "search_k",
    "faiss_hnsw": "ef_search",
    "faiss_ivfflat": "nprobe",
    "faiss_ivfpq": "nprobe",
    "faiss_ivfpq_refine": "nprobe",
    "milvus": "ef",
    "milvus_ivfflat": "nprobe",
}
DATA = ("clusters", "catalog")


def run_worker(name: str, spec: ScaleSpec, tmp: Path, timeout: float | None = None) -> dict[str, Any]:
    """One measurement in a fresh interpreter; its JSON row, or ``{"error": ...}`` when it failed."""
    out = tmp / f"{name}.json"
    spec_json = json.dumps(asdict(spec) | {"out": str(out)})
    cmd = [sys.executable, "-m", "prodmatch.bench.scale_worker", name, spec_json]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"backend": name, "error": f"did not finish within {timeout:.0f} s"}
    if proc.returncode != 0 or not out.is_file():
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        return {"backend": name, "error": lines[-1] if lines else f"exit code {proc.returncode}"}
    row = json.loads(out.read_text())
    row.pop("spec", None)  # the run's spec is stored once, without this run's temporary paths
    return row


def run_scale(
    spec: ScaleSpec,
    backends: list[str],
    timeout: float | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The baseline, then every backend; ratios to bare torch and to exact are taken within this run.

    ``on_row`` gets the result so far after each backend (the CLI writes it, so a long run that is stopped
    keeps the rows it finished).
    """
    result: dict[str, Any] = {
        "spec": asdict(spec) | {"truth": None, "vectors": None},  # no temporary or cache paths in results
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "backends": {},
    }
    with tempfile.TemporaryDirectory(prefix="prodmatch-scale-") as tmp:
        spec.truth = str(Path(tmp) / "truth.npy")
        result["torch"] = baseline = run_worker("torch", spec, Path(tmp), timeout)
        if "error" in baseline:
            raise SystemExit(f"error: the bare-torch baseline failed: {baseline['error']}")
        for name in backends:
            row = result["backends"][name] = run_worker(name, spec, Path(tmp), timeout)
            row["run_date"] = result["date"]
            if "error" not in row:
                row["baseline_query_s"] = baseline["query_s"]
                row["ratio_to_torch"] = row["query_s"] / baseline["query_s"]
                exact_s = result["backends"].get("exact", {}).get("query_s")
                if exact_s:
                    row["exact_query_s"] = exact_s
                    row["ratio_to_exact"] = row["query_s"] / exact_s
            if on_row:
                on_row(result)
    spec.truth = None
    return result


def merge_results(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` plus the rows of ``old`` (same sizes) for backends ``new`` did not run. Every row keeps the
    date, baseline and exact-search time of its own run, so its ratios never mix two runs' machine load."""
    sizes = ("db", "dim", "queries", "k", "seed", "data")
    if any(_spec(old, key) != _spec(new, key) for key in sizes):
        raise SystemExit(
            "error: --add-to needs the same --db/--dim/--queries/--k/--seed/--data as the results it adds to: "
            + ", ".join(f"{key}={_spec(old, key)}" for key in sizes)
        )
    old_exact_s = old["backends"].get("exact", {}).get("query_s")
    kept = {}
    for name, row in old["backends"].items():
        if name in new["backends"]:
            continue
        row = dict(row)
        row.setdefault("run_date", old["date"])
        if "error" not in row:
            row.setdefault("baseline_query_s", old["torch"]["query_s"])
            if old_exact_s and name != "exact":
                row.setdefault("exact_query_s", old_exact_s)
        kept[name] = row
    rows = kept | new["backends"]
    order = {name: i for i, name in enumerate(BACKENDS)}
    return new | {"backends": dict(sorted(rows.items(), key=lambda item: order.get(item[0], len(order))))}


def _spec(result: dict[str, Any], key: str) -> Any:
    """A spec value; results written before ``--data`` existed used clustered vectors."""
    return result["spec"].get(key, "clusters" if key == "data" else None)


def data_note(result: dict[str, Any]) -> str:
    """What the vectors are, for the table's header."""
    if _spec(result, "data") != "catalog":
        return "Seeded clustered unit vectors (product groups of about 40 cards)."
    info = result.get("data_info", {})
    return (
        f"Catalog vectors: word + char_wb TF-IDF of synthetic card titles from {info.get('seeds', '?')} generator "
        f"seeds ({info.get('scale', 'full')} scale, no images), one SVD to {result['spec']['dim']} dimensions, "
        "L2-normalised; queries are held-out cards of the same seeds' products (another shop's listing), "
        f"{info.get('mean_duplicates_per_query', float('nan')):.1f} same-product database cards per query on "
        f"average ({info.get('share_of_queries_with_one', float('nan')):.0%} of queries have at least one)."
    )


def section_name(result: dict[str, Any]) -> str:
    """The results-file section of this run's table: one per data kind and size."""
    data = _spec(result, "data")
    return f"scale-{result['spec']['db']}" if data == "clusters" else f"scale-{data}-{result['spec']['db']}"


def best_point(row: dict[str, Any], k: int, target: float = 0.99) -> dict[str, Any] | None:
    """The fastest swept setting with recall@k >= target, if any."""
    good = [p for p in row.get("sweep", []) if p[f"recall@{k}"] >= target]
    return max(good, key=lambda p: p["queries_per_s"]) if good else None


def to_markdown(result: dict[str, Any], plot: str | None = None) -> str:
    spec, base, k = result["spec"], result["torch"], result["spec"]["k"]
    size = f"{spec['db']:,} x {spec['dim']}"
    catalog = _spec(result, "data") == "catalog"
    lines = [
        f"## Index backends at {size}{', catalog vectors' if catalog else ''}, {spec['queries']:,} queries",
        "",
        f"`python -m prodmatch.bench --scale{' --data catalog' if catalog else ''} --db {spec['db']} "
        f"--dim {spec['dim']} --queries {spec['queries']} "
        f"--backends {','.join(_in_order(result['backends']))}`, {result['date']}{_earlier_runs(result)}, exact budget "
        f"{spec['max_memory_mb']:g} MB. {data_note(result) + ' ' if catalog else ''}"
        f"Bare torch (matmul + topk): {fmt_seconds(base['query_s'])}, peak RSS {base['peak_rss_mb']:,.0f} MB. "
        "Peak RSS includes the generated vectors each process holds." + _ties_note(base, k),
        "",
        f"| backend | setting | build | query | queries/s | recall@{k} | peak RSS | query / torch "
        f"| fastest setting with recall@{k} >= 0.99 (share of exact's time per query) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    exact_row = result["backends"].get("exact", {})
    for name in _in_order(result["backends"]):
        row = result["backends"][name]
        date = row.get("run_date", result["date"])
        label = name if date == result["date"] else f"{name} ({date})"
        if "error" in row:
            lines.append(f"| {label} | failed: {row['error']} | | | | | | | |")
            continue
        same_run = exact_row.get("run_date", result["date"]) == date  # never a ratio across two runs
        exact_s = row.get("exact_query_s") or (exact_row.get("query_s") if same_run else None)
        setting = ", ".join(f"{key}={value}" for key, value in row.get("params", {}).items()) or "-"
        best, best_text = best_point(row, k), "-"
        if best:
            # per query, against exact search of the same run, else against that run's bare torch
            base_s, base = (exact_s, "") if exact_s else (row.get("baseline_query_s"), " of bare torch")
            share = 1 / best["queries_per_s"] / (base_s / spec["queries"]) if base_s else float("nan")
            best_text = f"{KNOBS[name]}={best[KNOBS[name]]}: {best[f'recall@{k}']:.3f} ({share:.2g}x{base})"
        elif row.get("sweep"):
            best_text = f"none up to {KNOBS[name]}={row['sweep'][-1][KNOBS[name]]}"
        lines.append(
            f"| {label} | {setting} | {fmt_seconds(row['build_s'])} | {fmt_seconds(row['query_s'])} "
            f"| {row['queries_per_s']:,.0f} | {row[f'recall@{k}']:.3f} | {row['peak_rss_mb']:,.0f} MB "
            f"| {_torch_ratio(row)} | {best_text} |"
        )
    if plot:
        lines += ["", f"![recall@{k} vs queries/s at {size}]({Path(plot).name})"]
    return "\n".join(lines) + "\n"


def _in_order(backends: dict[str, Any]) -> list[str]:
    """Backend names in the order of BACKENDS (the JSON file keeps its keys sorted)."""
    order = {name: i for i, name in enumerate(BACKENDS)}
    return sorted(backends, key=lambda name: order.get(name, len(order)))


def _ties_note(base: dict[str, Any], k: int) -> str:
    """How recall treats ties at the cut (results from before the tie-aware truth have no such figure)."""
    if "truth" not in base:
        return ""
    return (
        f" Recall@{k} counts a card tied with the exact {k}th (to float32 error: duplicate titles) as found; "
        f"{base['truth']['ties_at_cut']:.1%} of the queries have such ties."
    )


def _earlier_runs(result: dict[str, Any]) -> str:
    """The note for rows merged in from earlier runs (``--add-to``), or nothing."""
    dates = sorted(
        {row.get("run_date", result["date"]) for row in result["backends"].values()} - {result["date"]}
    )
    if not dates:
        return ""
    return (
        f" (rows marked with a date come from an earlier run of the same sizes, {', '.join(dates)}; each row's "
        "ratios are to bare torch and exact search timed in its own run)"
    )


def _torch_ratio(row: dict[str, Any]) -> str:
    """Query time over bare torch's; for exact also the back-to-back figure from its own process."""
    text = f"{row['ratio_to_torch']:.2f}x"
    if "ratio_to_torch_same_process" in row:
        text += f" ({row['ratio_to_torch_same_process']:.2f}x alternating in one process)"
    return text


def plot_sweeps(result: dict[str, Any], path: Path) -> None:
    """Recall@k against queries/s (log) per backend: the ann-benchmarks picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec, k = result["spec"], result["spec"]["k"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, row in result["backends"].items():
        if "error" in row:
            continue
        points = row.get("sweep") or [
            {f"recall@{k}": row[f"recall@{k}"], "queries_per_s": row["queries_per_s"]}
        ]
        ax.plot([p[f"recall@{k}"] for p in points], [p["queries_per_s"] for p in points], "o-", label=name)
    base = result["torch"]
    ax.plot([1.0], [base["queries_per_s"]], "k*", markersize=10, label="bare torch")
    ax.set(xlabel=f"recall@{k} vs exact", ylabel="queries / s", yscale="log")
    data = ", catalog vectors" if _spec(result, "data") == "catalog" else ""
    ax.set_title(f"{spec['db']:,} x {spec['dim']}{data}, top-{k}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data",
        choices=DATA,
        default="clusters",
        help="clusters: seeded vectors around product-group centres; catalog: title TF-IDF + SVD of synthetic "
        "catalogs (prodmatch.bench.catalog_vectors)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path("data/cache/bench"),
        help="where --data catalog keeps its vectors",
    )
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help="comma-separated: " + ",".join(BACKENDS)
    )
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument(
        "--render-only", action="store_true", help="measure nothing: redraw table and plot from --json"
    )
    parser.add_argument(
        "--markdown", type=Path, help="results file whose scale section for this size to rewrite"
    )
    parser.add_argument("--plot", type=Path, help="recall-vs-queries/s PNG (default: the JSON path as .png)")
    parser.add_argument("--max-memory-mb", type=float, default=1024, help="exact search and baseline budget")
    parser.add_argument("--no-sweep", dest="sweep", action="store_false", help="skip the search-knob sweeps")
    parser.add_argument("--sweep-queries", type=int, default=1_000)
    parser.add_argument("--timeout", type=float, help="seconds allowed per backend process")
    parser.add_argument(
        "--add-to",
        action="store_true",
        help="keep the --json file's rows for backends not run now (same sizes; each keeps its own run's ratios)",
    )
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        raise SystemExit(f"error: unknown backend(s) {', '.join(unknown)}; pick from {','.join(BACKENDS)}")
    if args.render_only:
        result = json.loads(args.json.read_text())
    else:
        spec = ScaleSpec(args.db, args.dim, args.queries, args.k, args.seed, args.max_memory_mb)
        spec.sweep, spec.sweep_queries, spec.data = args.sweep, args.sweep_queries, args.data
        earlier = json.loads(args.json.read_text()) if args.add_to and args.json.is_file() else None
        if earlier:  # refuse a size mismatch before minutes of baseline, not after
            merge_results(earlier, {"spec": asdict(spec), "backends": {}})

        info = _prepare_data(spec, args.cache_dir)

        def merged(partial: dict[str, Any]) -> dict[str, Any]:
            partial = partial | ({"data_info": info} if info else {})
            return merge_results(earlier, partial) if earlier else partial

        result = merged(
            run_scale(
                spec, backends, args.timeout, on_row=lambda partial: write_json(args.json, merged(partial))
            )
        )
        write_json(args.json, result)
    plot = None
    if args.sweep:
        plot = args.plot or args.json.with_suffix(".png")
        plot_sweeps(result, plot)
    text = to_markdown(result, str(plot) if plot else None)
    if args.markdown:
        write_section(args.markdown, section_name(result), text)
    print(text)
    return result


def _prepare_data(spec: ScaleSpec, cache_dir: Path) -> dict[str, Any] | None:
    """For ``--data catalog``: make (or find) the cached vectors, point the workers at them, describe them."""
    if spec.data != "catalog":
        return None
    # imported on use: making catalog vectors loads the generator and scikit-learn
    from prodmatch.bench.catalog_vectors import CatalogSpec, catalog_vectors

    path, info = catalog_vectors(CatalogSpec(spec.db, spec.queries, spec.dim, spec.seed), cache_dir)
    spec.vectors = str(path)
    return info


if __name__ == "__main__":
    main()
