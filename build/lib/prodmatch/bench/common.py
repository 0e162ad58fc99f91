"""What every benchmark shares: sizes, synthetic clustered vectors, timing, machine facts, results sections."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from prodmatch.utils.atomic import write_text


@dataclass
class BenchConfig:
    """Sizes of one benchmark run (defaults: the study's catalogs)."""

    queries: int = 1000
    db: int = 13700
    dim: int = 512
    text_dim: int = 312  # rubert-tiny2, the second modality in re-ranking
    k: int = 10
    rerank_k: int = 40
    n_trees: int = 50
    repeats: int = 3
    naive_queries: int = 20  # the per-item Python loop is slow: time a few queries and extrapolate
    loop_queries: int = 200
    n_targets: int = 8
    seed: int = 0
    search_k: int = 10000  # prodmatch's configured ANNOY search depth
    encode_images: int = 256  # ResNet18 forward passes for the batched-encoding comparison
    encode_size: int = 64  # the synthetic catalog's working image size


@dataclass
class Row:
    name: str
    size: str
    seconds: float
    note: str = ""


@dataclass
class BenchContext:
    """Shared data and results, so later benchmarks can quote ratios against earlier ones."""

    cfg: BenchConfig
    shared: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.cfg.seed)
        self.queries, self.db = clustered(rng, self.cfg.queries, self.cfg.db, self.cfg.dim)
        self.q_text, self.db_text = clustered(rng, self.cfg.queries, self.cfg.db, self.cfg.text_dim)
        self.q_targets = rng.integers(0, self.cfg.n_targets, self.cfg.queries).astype(str).astype(object)
        self.db_targets = rng.integers(0, self.cfg.n_targets, self.cfg.db).astype(str).astype(object)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(rng: np.random.Generator, n_q: int, n_db: int, dim: int, group_size: int = 40):
    """Unit vectors around product-group centres: embeddings cluster, and ANN recall depends on that."""
    n = n_q + n_db
    centres = rng.standard_normal((max(1, n // group_size), dim))
    x = unit(centres[rng.integers(0, len(centres), n)] + rng.standard_normal((n, dim)))
    return x[:n_q], x[n_q:]


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``repeats`` calls, and the last call's result."""
    times, out = [], None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    info = {
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu count": str(os.cpu_count()),
        "python": platform.python_version(),
    }
    info |= {name: version(name) for name in ("numpy", "torch", "annoy", "torchmetrics")}
    try:
        import torch

        info["torch threads"] = str(torch.get_num_threads())
    except ImportError:
        pass
    return info


def fmt_seconds(s: float) -> str:
    if np.isnan(s):
        return "-"
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def write_section(path: str | Path, name: str, text: str) -> str:
    """Put ``text`` into the ``name`` section of a results file, keeping every other section; return the file.

    Sections are delimited by ``<!-- bench:name -->`` / ``<!-- /bench:name -->`` lines, so the study-size
    table and each scale table can be rewritten on their own.
    """
    path = Path(path)
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{text.strip()}\n{end}"
    old = path.read_text() if path.is_file() else ""
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    new = (
        pattern.sub(lambda _: block, old) if pattern.search(old) else (old.rstrip() + "\n\n" + block).lstrip()
    )
    write_text(path, new.rstrip() + "\n")
    return new
