"""Search benchmarks at the study's size, written as a markdown table (the ``search`` section of the file).

    python -m prodmatch.bench --out bench/results.md

Synthetic float32 unit vectors (~1k queries x ~13.7k database cards x 512-d, like ResNet18 image embeddings)
time exact search, ANNOY, the naive loops exact search replaces, metric computation and re-ranking. Every
figure is the median of a few ``time.perf_counter`` repeats within one run, so the ratios compare like with
like on one machine. Each benchmark is a function ``(ctx) -> list[Row]`` in :data:`BENCHES`; add new ones
(e.g. encoding throughput) there.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from prodmatch.bench.common import (
    BenchConfig,
    BenchContext,
    Row,
    fmt_seconds,
    machine_info,
    timed,
    unit,
    write_section,
)
from prodmatch.bench.encoding import bench_encoding
from prodmatch.layout import acc_key
from prodmatch.retrieval.fusion import rerank
from prodmatch.retrieval.index import AnnoyIndex, ExactIndex
from prodmatch.retrieval.metrics import ann_recall, metric_dict


def _size(cfg: BenchConfig, dim: int | None = None) -> str:
    return f"{cfg.queries} x {cfg.db} x {dim or cfg.dim}"


def bench_exact(ctx: BenchContext) -> list[Row]:
    cfg = ctx.cfg
    build_s, index = timed(lambda: ExactIndex().build(ctx.db), cfg.repeats)
    search_s, (ids, _) = timed(lambda: index.search(ctx.queries, cfg.k), cfg.repeats)
    ctx.shared |= {"exact_ids": ids, "exact_s": build_s + search_s, "exact_search_s": search_s}
    return [
        Row("ExactIndex build (normalise)", f"{cfg.db} x {cfg.dim}", build_s),
        Row(
            f"ExactIndex search top-{cfg.k}",
            _size(cfg),
            search_s,
            "torch matmul + topk, memory-bounded tiles",
        ),
    ]


def _naive_per_item(queries: np.ndarray, db: np.ndarray, k: int) -> np.ndarray:
    """The study's brute force: one Python-level cosine per (query, item) pair."""
    out = []
    for q in queries:
        sims = [float(np.dot(q, d) / (np.linalg.norm(q) * np.linalg.norm(d))) for d in db]
        out.append(sorted(range(len(sims)), key=sims.__getitem__, reverse=True)[:k])
    return np.asarray(out)


def _naive_per_query(queries: np.ndarray, db: np.ndarray, k: int) -> np.ndarray:
    """One matrix-vector product and a full argsort per query."""
    return np.stack([np.argsort(-(db @ q), kind="stable")[:k] for q in queries])


def bench_naive(ctx: BenchContext) -> list[Row]:
    cfg, rows = ctx.cfg, []
    exact_s = ctx.shared.get("exact_s")
    loops = (
        ("per-item Python loop (study)", _naive_per_item, cfg.naive_queries, 1),
        ("per-query numpy loop", _naive_per_query, cfg.loop_queries, cfg.repeats),
    )
    for name, fn, n, repeats in loops:
        n = min(n, cfg.queries)
        sub_s, ids = timed(lambda fn=fn, n=n: fn(ctx.queries[:n], ctx.db, cfg.k), repeats)
        full_s = sub_s * cfg.queries / n
        note = f"timed on {n} queries, extrapolated"
        if "exact_ids" in ctx.shared:
            same = np.array_equal(ids, ctx.shared["exact_ids"][:n])
            note += f"; same top-{cfg.k} as ExactIndex: {'yes' if same else 'no'}"
        if exact_s:
            note += f"; ExactIndex (build + search) is **{full_s / exact_s:,.0f}x** faster"
        rows.append(Row(f"naive {name}", _size(cfg), full_s, note))
    return rows


def bench_annoy(ctx: BenchContext) -> list[Row]:
    cfg = ctx.cfg
    build_s, index = timed(lambda: AnnoyIndex(n_trees=cfg.n_trees, n_jobs=1).build(ctx.db), cfg.repeats)
    build_all_s, _ = timed(lambda: AnnoyIndex(n_trees=cfg.n_trees, n_jobs=-1).build(ctx.db), cfg.repeats)
    query_s, (ids, _) = timed(lambda: index.search(ctx.queries, cfg.k), cfg.repeats)
    rows = [
        Row(f"AnnoyIndex build, {cfg.n_trees} trees, n_jobs=1", f"{cfg.db} x {cfg.dim}", build_s),
        Row(f"AnnoyIndex build, {cfg.n_trees} trees, n_jobs=-1", f"{cfg.db} x {cfg.dim}", build_all_s),
    ]
    note = "one get_nns_by_vector call per query"
    if "exact_ids" in ctx.shared:
        recall = ann_recall(ids, ctx.shared["exact_ids"], cfg.k)
        note += f"; recall@{cfg.k} vs exact: **{recall:.3f}**"
        note += f"; ExactIndex search takes {ctx.shared['exact_search_s'] / query_s:.2f}x this time"
    rows.append(
        Row(f"AnnoyIndex query top-{cfg.k}, search_k=-1 (ANNOY's default)", _size(cfg), query_s, note)
    )
    # prodmatch's default (conf/retrieval/default.yaml): more nodes per query for a near-exact top-k.
    index.search_k = cfg.search_k
    deep_s, (deep_ids, _) = timed(lambda: index.search(ctx.queries, cfg.k), cfg.repeats)
    deep_note = f"{deep_s / query_s:.1f}x the default's query time"
    if "exact_ids" in ctx.shared:
        deep_note = (
            f"recall@{cfg.k} vs exact: **{ann_recall(deep_ids, ctx.shared['exact_ids'], cfg.k):.3f}**; "
            + deep_note
        )
    rows.append(
        Row(
            f"AnnoyIndex query top-{cfg.k}, search_k={cfg.search_k} (prodmatch's default)",
            _size(cfg),
            deep_s,
            deep_note,
        )
    )
    # Uniform random vectors have no neighbourhood structure: the worst case for ANN recall.
    rng = np.random.default_rng(cfg.seed + 1)
    uq, udb = (
        unit(rng.standard_normal((cfg.queries, cfg.dim))),
        unit(rng.standard_normal((cfg.db, cfg.dim))),
    )
    exact_u = ExactIndex().build(udb).search(uq, cfg.k)[0]
    ann_u = AnnoyIndex(n_trees=cfg.n_trees).build(udb).search(uq, cfg.k)[0]
    rows.append(
        Row(
            "AnnoyIndex recall, uniform random vectors",
            _size(cfg),
            float("nan"),
            f"recall@{cfg.k} vs exact: {ann_recall(ann_u, exact_u, cfg.k):.3f} (no cluster structure: worst case)",
        )
    )
    return rows


def bench_metrics(ctx: BenchContext) -> list[Row]:
    cfg = ctx.cfg
    ids = ctx.shared.get("exact_ids")
    if ids is None:
        ids = ExactIndex().build(ctx.db).search(ctx.queries, cfg.k)[0]
    skus = ctx.db_targets + "-" + (np.arange(cfg.db) % 97).astype(str)
    q_skus = skus[: cfg.queries]

    def compute() -> dict[str, float]:
        return metric_dict(
            ctx.q_targets,
            ctx.db_targets,
            ids,
            k=cfg.k,
            query_skus=q_skus,
            db_skus=skus,
            ann_ids=ids,
            exact_ids=ids,
        )

    metrics_s, out = timed(compute, cfg.repeats)
    rows = [Row("metric_dict (acc@k + per target, sku, ann recall)", f"{cfg.queries} x {cfg.k}", metrics_s)]
    reference = _torchmetrics_precision(ctx, ids)
    if reference is not None:
        tm_s, value = reference
        same = abs(value - out[acc_key(cfg.k)]) < 1e-6
        note = f"acc@{cfg.k} only; same value as metric_dict: {'yes' if same else 'no'}"
        rows.append(Row("torchmetrics RetrievalPrecision", f"{cfg.queries} x {cfg.k}", tm_s, note))
    return rows


def _torchmetrics_precision(ctx: BenchContext, ids: np.ndarray) -> tuple[float, float] | None:
    """(median seconds, value) of torchmetrics' Acc@k over the same lists, or None without torchmetrics."""
    try:
        import torch
        from torchmetrics.retrieval import RetrievalPrecision
    except ImportError:  # optional comparison
        return None
    cfg = ctx.cfg
    relevant = torch.as_tensor(ctx.db_targets[ids] == ctx.q_targets[:, None]).reshape(-1)
    preds = torch.arange(cfg.k, 0, -1, dtype=torch.float32).repeat(cfg.queries)  # positive: k .. 1
    indexes = torch.arange(cfg.queries).repeat_interleave(cfg.k)
    seconds, value = timed(
        lambda: RetrievalPrecision(top_k=cfg.k)(preds, relevant, indexes=indexes), cfg.repeats
    )
    return seconds, float(value)


def bench_fusion(ctx: BenchContext) -> list[Row]:
    cfg = ctx.cfg
    rng = np.random.default_rng(cfg.seed)
    cand = np.stack([rng.choice(cfg.db, cfg.rerank_k, replace=False) for _ in range(cfg.queries)])
    seconds, _ = timed(lambda: rerank(cand, ctx.q_text, ctx.db_text, cfg.k), cfg.repeats)
    size = f"{cfg.queries} x {cfg.rerank_k} candidates x {cfg.text_dim}"
    return [Row(f"rerank top-{cfg.rerank_k} -> top-{cfg.k}", size, seconds, "gather + einsum + stable sort")]


BenchFn = Callable[[BenchContext], list[Row]]
BENCHES: list[BenchFn] = [bench_exact, bench_naive, bench_annoy, bench_metrics, bench_fusion, bench_encoding]


def run_benches(cfg: BenchConfig, benches: list[BenchFn] | None = None) -> list[Row]:
    ctx = BenchContext(cfg)
    return [row for bench in (benches or BENCHES) for row in bench(ctx)]


def to_markdown(rows: list[Row], cfg: BenchConfig, info: dict[str, str]) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# prodmatch search and encoding benchmarks",
        "",
        f"`python -m prodmatch.bench`, {stamp}. Synthetic clustered float32 unit vectors: {cfg.queries} queries, "
        f"{cfg.db} database items, {cfg.dim}-d ({cfg.text_dim}-d for the re-ranking modality), top-{cfg.k}. "
        f"Times are medians of {cfg.repeats} repeat(s) in one run; ratios compare figures from this run.",
        "",
        "| benchmark | size | time | notes |",
        "| --- | --- | ---: | --- |",
        *(f"| {r.name} | {r.size} | {fmt_seconds(r.seconds)} | {r.note} |" for r in rows),
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()) + ".",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results.md"), help="markdown file to write")
    parser.add_argument("--queries", type=int, default=defaults.queries)
    parser.add_argument("--db", type=int, default=defaults.db)
    parser.add_argument("--dim", type=int, default=defaults.dim)
    parser.add_argument("--repeats", type=int, default=defaults.repeats)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--encode-images", type=int, default=defaults.encode_images)
    args = parser.parse_args(argv)
    cfg = BenchConfig(
        queries=args.queries,
        db=args.db,
        dim=args.dim,
        repeats=args.repeats,
        seed=args.seed,
        encode_images=args.encode_images,
    )
    text = to_markdown(run_benches(cfg), cfg, machine_info())
    write_section(args.out, "search", text)
    print(text)
    return text


if __name__ == "__main__":
    main()
