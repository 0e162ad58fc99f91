"""The locally built text model under concurrency: one build, published by one rename, never replaced."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest

from prodmatch.encoders.local_text import (
    build_local_sentence_model,
    is_published,
    local_model_dir,
    local_sentence_model,
)
from prodmatch.errors import ProdmatchError
from tests.unit.encoders.cards import CARDS, TINY_LOCAL

TEXTS = [f"{title} {chars}" for title, _, _, chars in CARDS]


def _vectors(cache_dir: Path) -> np.ndarray:
    model = local_sentence_model(TEXTS, cache_dir, "mean", seed=0, device="cpu", **TINY_LOCAL)
    return model.encode(TEXTS, normalize_embeddings=True, show_progress_bar=False)


def _worker(cache_dir: str, out: str, barrier) -> None:  # noqa: ANN001 - a multiprocessing Barrier
    barrier.wait()  # every process reaches the cold cache at the same moment
    np.save(out, _vectors(Path(cache_dir)))


def _run_concurrently(tmp_path: Path, n: int) -> None:
    serial = _vectors(tmp_path / "serial")
    # Separate processes, as separate prodmatch runs are. Forked from a server that has imported the libraries
    # once but never run torch (a fork of a process that has is unsafe), so they start in a fraction of a second.
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    barrier = ctx.Barrier(n)
    shared = tmp_path / "shared"
    outs = [tmp_path / f"out{i}.npy" for i in range(n)]
    procs = [ctx.Process(target=_worker, args=(str(shared), str(out), barrier)) for out in outs]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
    assert [proc.exitcode for proc in procs] == [0] * n
    for out in outs:
        np.testing.assert_array_equal(np.load(out), serial)
    model_dir = local_model_dir(TEXTS, shared, "mean", seed=0, **TINY_LOCAL)
    leftovers = sorted(
        p.name for p in shared.iterdir() if p.name not in (model_dir.name, model_dir.name + ".lock")
    )
    assert is_published(model_dir) and leftovers == []  # one model, no half-built temp dirs


def test_two_cold_runs_at_once_match_a_serial_build(tmp_path: Path):
    _run_concurrently(tmp_path, 2)


@pytest.mark.slow
def test_many_cold_runs_at_once_match_a_serial_build(tmp_path: Path):
    _run_concurrently(tmp_path, 5)


def test_a_published_model_is_never_replaced(tmp_path: Path):
    out_dir = tmp_path / "model"
    build_local_sentence_model(TEXTS, out_dir, "mean", **TINY_LOCAL)
    marker = out_dir / "modules.json"
    before = marker.stat().st_ino, marker.stat().st_mtime_ns
    # A second build (another seed: other weights) keeps the published dir as it is.
    build_local_sentence_model(TEXTS, out_dir, "mean", seed=1, **TINY_LOCAL)
    assert (marker.stat().st_ino, marker.stat().st_mtime_ns) == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # the second build's temp dir is gone


def test_an_incomplete_dir_in_the_way_is_an_error_not_deleted(tmp_path: Path):
    out_dir = tmp_path / "model"
    out_dir.mkdir()
    (out_dir / "config.json").write_text("{}")
    with pytest.raises(ProdmatchError, match="remove that dir"):
        build_local_sentence_model(TEXTS, out_dir, "mean", **TINY_LOCAL)
    assert (out_dir / "config.json").is_file()
