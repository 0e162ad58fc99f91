"""GPU check (`make gpu-check`): train the demo in bf16 + channels_last, embed the full synthetic catalog, time faiss-gpu.

Prints and writes (`<out>/gpu_check.json`, `<out>/gpu_check.md`): the card, training images/s and the share of
step time spent waiting on data (target < 10 %), embedding images/s over the full synthetic catalog in fp32 and
in bf16 + channels_last, and faiss-gpu build/search figures when faiss has GPU support. Without a CUDA GPU it
stops at once with one error line. Extra arguments are Hydra overrides for the training run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parents[1]
DATA_WAIT_TARGET = 0.10
TRAIN_TIMEOUT_S = 300


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def gpu_info() -> dict[str, Any]:
    """The card and software versions; one error line when there is no usable GPU."""
    import torch

    if not torch.cuda.is_available():
        fail(
            "no CUDA GPU visible to PyTorch (torch.cuda.is_available() is False); run `make gpu-check` on a "
            "machine with an NVIDIA GPU and a CUDA build of torch"
        )
    if not torch.cuda.is_bf16_supported():
        fail(
            f"{torch.cuda.get_device_name(0)} has no bf16 support (needs Ampere or newer); "
            "train with trainer=gpu (16-mixed) instead"
        )
    props = torch.cuda.get_device_properties(0)
    return {
        "card": props.name,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
    }


def cpu_info() -> dict[str, Any]:
    """The stand-in for gpu_info in a CPU smoke run."""
    import torch

    return {
        "card": "CPU (smoke run)",
        "memory_gib": 0.0,
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": None,
        "python": platform.python_version(),
    }


def ensure_catalog(data_dir: Path, name: str, scale: str) -> float:
    """Generate a synthetic catalog when missing (as `make data` does); the seconds it took (0: present)."""
    out = data_dir / name
    if (out / "comparable_data.csv").is_file():
        return 0.0
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "prodmatch.data.synthetic", "--out", str(out), "--scale", scale]
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.perf_counter() - start


def train(out: Path, workers: int, overrides: list[str], cpu: bool = False) -> dict[str, Any]:
    """The demo on the GPU in bf16 + channels_last with the throughput callback; its figures.

    ``cpu``: the same run on the CPU trainer (the check's own smoke test on a machine without a GPU).
    """
    run_dir = out / "train"
    channels_last = not cpu
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        "trainer=default" if cpu else "trainer=gpu_bf16",
        f"num_workers={workers}",
        "logger=csv",
        f"hydra.run.dir={run_dir}",
        "callbacks=[default,throughput,channels_last]" if channels_last else "callbacks=[default,throughput]",
        *overrides,
    ]
    print("training:", " ".join(cmd[1:]), flush=True)
    start = time.perf_counter()
    env = {**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=TRAIN_TIMEOUT_S)
    if proc.returncode != 0:
        fail(f"the training run failed (exit {proc.returncode}); its log is {run_dir}/train.log")
    figures = json.loads((run_dir / "throughput.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        **figures,
        "channels_last": channels_last,
        "wall_s": time.perf_counter() - start,
        "acc@10_before_fit": metrics.get("before_fit/retrieval/acc@10"),
        "acc@10_after_fit": metrics.get("retrieval/acc@10"),
        "checkpoint": str(run_dir / "checkpoints" / "last.ckpt"),
    }


def embed(
    checkpoint: str, root: Path, workers: int, batch_size: int, device: str = "cuda"
) -> tuple[dict[str, Any], Any]:
    """Images/s embedding a catalog (the full synthetic one) with the trained backbone; (figures, vectors)."""
    import numpy as np
    import torch

    from prodmatch.data.catalog import load_catalog
    from prodmatch.encoders.image_embedder import ImageBatchEmbedder
    from prodmatch.models.loading import load_trained_module

    module = load_trained_module(checkpoint).to(device)
    queries = load_catalog(root / "company_data.csv", root).image_paths()
    database = load_catalog(root / "comparable_data.csv", root).image_paths()
    n_images = len(queries) + len(database)

    def encoder() -> ImageBatchEmbedder:
        return ImageBatchEmbedder(
            module.backbone,
            512,
            module.hparams.image_size,
            batch_size=batch_size,
            num_workers=workers,
            progress=False,
        )

    encoder().encode(queries)  # warm-up: cuDNN autotuning, the page cache, worker start-up paths
    figures: dict[str, Any] = {"images": n_images, "batch_size": batch_size, "num_workers": workers}
    vectors = {}
    for mode in ("fp32", "bf16_channels_last"):
        if mode == "bf16_channels_last":
            module.backbone.to(memory_format=torch.channels_last)  # cuDNN follows the weights' layout
        autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=mode != "fp32")
        _synchronize(device)
        start = time.perf_counter()
        with autocast:
            q, d = encoder().encode(queries).vectors, encoder().encode(database).vectors
        _synchronize(device)
        seconds = time.perf_counter() - start
        figures[f"{mode}_s"] = seconds
        figures[f"{mode}_images_per_s"] = n_images / seconds
        vectors[mode] = (q, d)
    q, d = vectors["fp32"]
    qb, db = vectors["bf16_channels_last"]
    finite = np.isfinite(d).all(axis=1)  # unreadable images are NaN rows in both passes
    figures["bf16_vs_fp32_min_cosine"] = float(np.min(np.sum(d[finite] * db[finite], axis=1)))
    return figures, (q, d)


def _synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def faiss_figures(queries: Any, database: Any, n_scale: int, seed: int = 0) -> dict[str, Any]:
    """faiss-gpu: flat search over the catalog, then flat and IVF-PQ over `n_scale` catalog-like vectors."""
    try:
        import faiss
    except ImportError:
        return {"skipped": "faiss is not installed (pip install faiss-gpu-cu12, or conda's faiss-gpu)"}
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        return {"skipped": "this faiss build has no GPU support (faiss-cpu); install faiss-gpu to time it"}
    import numpy as np

    res = faiss.StandardGpuResources()
    out: dict[str, Any] = {"faiss": faiss.__version__, "k": 10}
    out["catalog_flat"] = _time_flat(res, database, queries)
    # Catalog-like vectors at scale: database embeddings plus noise, re-normalised (real clusters, not noise).
    rng = np.random.default_rng(seed)
    base = database[rng.integers(0, len(database), n_scale)]
    big = base + 0.05 * rng.standard_normal(base.shape, dtype=np.float32)
    big /= np.linalg.norm(big, axis=1, keepdims=True)
    flat = _time_flat(res, big, queries)
    out[f"flat_{n_scale}"] = {k: v for k, v in flat.items() if k != "ids"}
    out[f"ivfpq_{n_scale}"] = _time_ivfpq(res, big, queries, flat["ids"])
    out["catalog_flat"].pop("ids")
    return out


def _time_flat(res: Any, database: Any, queries: Any, k: int = 10) -> dict[str, Any]:
    import faiss

    start = time.perf_counter()
    index = faiss.GpuIndexFlatIP(res, database.shape[1])
    index.add(database)
    build = time.perf_counter() - start
    start = time.perf_counter()
    _, ids = index.search(queries, k)
    search = time.perf_counter() - start
    return {
        "n": len(database),
        "build_s": build,
        "search_s": search,
        "queries_per_s": len(queries) / search,
        "ids": ids,
    }


def _time_ivfpq(res: Any, database: Any, queries: Any, exact_ids: Any, k: int = 10) -> dict[str, Any]:
    import faiss
    import numpy as np

    nlist, m, nprobe = 4096, 64, 32
    options = faiss.GpuClonerOptions()
    options.useFloat16 = True  # 64 sub-quantizers need float16 lookup tables on the GPU
    cpu_index = faiss.index_factory(database.shape[1], f"IVF{nlist},PQ{m}", faiss.METRIC_INNER_PRODUCT)
    index = faiss.index_cpu_to_gpu(res, 0, cpu_index, options)
    start = time.perf_counter()
    index.train(database[: min(len(database), 64 * nlist)])
    index.add(database)
    build = time.perf_counter() - start
    faiss.GpuParameterSpace().set_index_parameter(index, "nprobe", nprobe)
    start = time.perf_counter()
    _, ids = index.search(queries, k)
    search = time.perf_counter() - start
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(ids, exact_ids, strict=True)])
    return {
        "n": len(database),
        "index": f"IVF{nlist},PQ{m} nprobe={nprobe}",
        "build_s": build,
        "search_s": search,
        "queries_per_s": len(queries) / search,
        "recall@10_vs_flat": float(recall),
    }


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def report(result: dict[str, Any]) -> str:
    """A markdown summary for the console and docs/SCALING.md."""
    gpu, tr, em = result["gpu"], result["train"], result["embed"]
    met = "met" if tr["data_wait_share"] < DATA_WAIT_TARGET else "MISSED"
    lines = [
        f"GPU check on {gpu['card']} ({gpu['memory_gib']} GiB), {gpu['cpu_cores']} CPU cores, "
        f"torch {gpu['torch']} / CUDA {gpu['cuda']}",
        "",
        "| measure | value |",
        "| --- | ---: |",
        f"| training images/s (demo, bf16-mixed, channels_last={tr['channels_last']}) | {tr['images_per_s']:.0f} |",
        f"| share of step time waiting on data (target < 10 %: {met}) | {100 * tr['data_wait_share']:.1f} % |",
        f"| mean step / mean data wait | {tr['mean_step_ms']:.1f} ms / {tr['mean_wait_ms']:.1f} ms |",
        f"| demo Acc@10 before → after fit | {_num(tr['acc@10_before_fit'])} → {_num(tr['acc@10_after_fit'])} |",
        f"| embedding images/s, fp32 ({em['images']} images) | {em['fp32_images_per_s']:.0f} |",
        f"| embedding images/s, bf16 + channels_last | {em['bf16_channels_last_images_per_s']:.0f} |",
    ]
    fa = result["faiss"]
    if "skipped" in fa:
        lines.append(f"| faiss-gpu | skipped: {fa['skipped']} |")
    else:
        for key, fig in fa.items():
            if isinstance(fig, dict):
                extra = f", recall@10 {fig['recall@10_vs_flat']:.3f}" if "recall@10_vs_flat" in fig else ""
                lines.append(
                    f"| faiss-gpu {key}: build / search {fig['build_s']:.2f} s / {fig['search_s']:.3f} s | "
                    f"{fig['queries_per_s']:.0f} queries/s{extra} |"
                )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "logs" / "gpu_check" / time.strftime("%Y-%m-%d_%H-%M-%S")
    )
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    parser.add_argument("--workers", type=int, default=min(12, max(1, (os.cpu_count() or 2) - 2)))
    parser.add_argument("--embed-batch-size", type=int, default=512)
    parser.add_argument("--faiss-vectors", type=int, default=1_000_000)
    parser.add_argument("--embed-catalog", default="synthetic_full", help="catalog folder under --data-dir")
    parser.add_argument(
        "--cpu-smoke", action="store_true", help="run every step on the CPU (tests the check without a GPU)"
    )
    args, overrides = parser.parse_known_args()

    device = "cpu" if args.cpu_smoke else "cuda"
    result: dict[str, Any] = {"gpu": cpu_info() if args.cpu_smoke else gpu_info()}
    args.out.mkdir(parents=True, exist_ok=True)
    result["data_generation_s"] = {
        name: ensure_catalog(args.data_dir, name, scale)
        for name, scale in (("synthetic", "demo"), (args.embed_catalog, "full"))
    }
    result["train"] = train(
        args.out, args.workers, [f"paths.data_dir={args.data_dir}", *overrides], cpu=args.cpu_smoke
    )
    result["embed"], (queries, database) = embed(
        result["train"]["checkpoint"],
        args.data_dir / args.embed_catalog,
        args.workers,
        args.embed_batch_size,
        device,
    )
    result["faiss"] = (
        faiss_figures(queries, database, args.faiss_vectors)
        if not args.cpu_smoke
        else {"skipped": "CPU smoke run"}
    )
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    summary = report(result)
    (args.out / "gpu_check.md").write_text(summary + "\n")
    print(summary)
    print(f"\nfigures: {args.out / 'gpu_check.json'}")


if __name__ == "__main__":
    main()
