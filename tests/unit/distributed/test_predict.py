"""Embedding through Lightning's predict loop and through shards inside fit: the same rows as one encode call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodmatch.distributed.encoders import PredictLoopEncoder, ShardedEncoder
from prodmatch.distributed.predict import embed_with_trainer
from prodmatch.distributed.shards import STATUSES_FILE, VECTORS_FILE
from prodmatch.errors import ConfigError
from tests.helpers.embed_script import encoders
from tests.helpers.run import OFFLINE_ENV, REPO_ROOT

TEXTS = ["red bike", "blue bike", "green chair", "red chair", "a lamp"]
ONE_PROCESS = {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False}
UNREADABLE_ROW = 3  # rank 1's row when 5 rows are split over 2 processes


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Five small images; the fourth exists but does not decode."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    out = []
    for i in range(5):
        path = root / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (40 + 3 * i, 48, 3), dtype=np.uint8)).save(path)
        out.append(str(path))
    Path(out[UNREADABLE_ROW]).write_bytes(b"not an image")
    return out


@pytest.fixture(scope="module")
def expected(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(image rows, text rows) of one plain encode call each."""
    image, tfidf = encoders(TEXTS)
    return image.encode(paths).vectors, tfidf.encode(TEXTS).vectors


def _check_images(vectors: np.ndarray, expected: np.ndarray) -> None:
    assert np.isnan(vectors).all(axis=1).tolist() == [i == UNREADABLE_ROW for i in range(5)]
    np.testing.assert_allclose(vectors, expected, atol=1e-6)  # NaN rows compare equal


def test_one_process_predict_loop_gives_the_rows_of_encode(paths, expected, tmp_path: Path):
    image, tfidf = encoders(TEXTS)
    vectors = embed_with_trainer(image, paths, tmp_path / "images", ONE_PROCESS)
    assert isinstance(vectors, np.memmap) and not vectors.flags.writeable
    _check_images(vectors, expected[0])
    statuses = np.load(tmp_path / "images" / STATUSES_FILE)
    assert statuses.tolist() == [0, 0, 0, 2, 0]
    texts = embed_with_trainer(tfidf, TEXTS, tmp_path / "texts", ONE_PROCESS)
    np.testing.assert_allclose(texts, expected[1], atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "texts").iterdir()) == [VECTORS_FILE, STATUSES_FILE]


def test_predict_loop_encoder_counts_what_every_row_met(paths, expected, tmp_path: Path):
    image, _ = encoders(TEXTS)
    encoder = PredictLoopEncoder(image, ONE_PROCESS, tmp_path)
    assert (encoder.modality, encoder.dim, encoder.cache_key()) == ("image", 512, image.cache_key())
    result = encoder.encode(paths)
    _check_images(result.vectors, expected[0])
    assert result.counts == {"unreadable_image": 1}
    assert result.examples == {"unreadable_image": paths[UNREADABLE_ROW]}
    assert encoder.encode(paths[:2]).counts == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0", "1"]


def test_more_processes_than_rows_is_a_clear_error(paths, tmp_path: Path):
    image, _ = encoders(TEXTS)
    with pytest.raises(ConfigError, match="1 inputs cannot be split over 2 processes"):
        embed_with_trainer(
            image, paths[:1], tmp_path, {"accelerator": "cpu", "devices": 2, "strategy": "ddp"}
        )


class _ThreadGroup:
    """Two ranks as two threads: a real barrier, and rank 0's broadcast value handed to both."""

    def __init__(self, world: int) -> None:
        self._barrier = threading.Barrier(world, timeout=60)
        self._sent: object = None

    def barrier(self, name: str | None = None) -> None:
        self._barrier.wait()

    def broadcast(self, obj: object, src: int = 0) -> object:
        if threading.current_thread().name == "rank0":
            self._sent = obj
        self._barrier.wait()
        return self._sent


@pytest.mark.parametrize("modality", ["image", "text"])
def test_sharded_encoder_ranks_share_the_rows_and_all_get_them_in_order(
    paths, expected, tmp_path: Path, modality: str
):
    """The callback's path under DDP, with two ranks as threads: each embeds rows r::2 into its shard, rank 0
    merges, both read the same merged rows (and count the unreadable image once)."""
    group, results, errors = _ThreadGroup(2), {}, []
    ranks = []
    for _ in range(2):  # built here: seeding a network is not thread-safe (one global torch RNG)
        image, tfidf = encoders(TEXTS)
        image.embedder  # noqa: B018 - builds the network
        ranks.append((image, paths) if modality == "image" else (tfidf, TEXTS))

    def rank(r: int) -> None:
        try:
            inner, inputs = ranks[r]
            encoder = ShardedEncoder(inner, group, r, 2, tmp_path)
            result = encoder.encode(inputs)
            results[r] = (np.array(result.vectors), dict(result.counts))
        except BaseException as err:  # noqa: BLE001 - reported by the test thread
            errors.append(err)

    threads = [threading.Thread(target=rank, args=(r,), name=f"rank{r}") for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for vectors, stats in results.values():
        if modality == "image":
            _check_images(vectors, expected[0])
            assert stats == {"unreadable_image": 1}
        else:
            np.testing.assert_allclose(vectors, expected[1], atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "0").iterdir()) == [VECTORS_FILE, STATUSES_FILE]


def test_two_cpu_processes_give_the_rows_of_one_process(paths, expected, tmp_path: Path):
    """`strategy=ddp` on 2 CPU processes (gloo), as a user's script runs it: Lightning starts the script again for
    rank 1, its sampler gives rank 0 rows 0, 2, 4 and rank 1 rows 1, 3; the merged rows equal one process's."""
    spec = {
        "out_dir": str(tmp_path),
        "trainer": {"accelerator": "cpu", "devices": 2, "strategy": "ddp", "enable_progress_bar": False},
        "paths": paths,
        "texts": TEXTS,
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    script = REPO_ROOT / "tests" / "helpers" / "embed_script.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "spec.json")],
        env={**os.environ, **OFFLINE_ENV},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in proc.stderr
    _check_images(np.load(tmp_path / "images" / VECTORS_FILE), expected[0])
    assert np.load(tmp_path / "images" / STATUSES_FILE).tolist() == [0, 0, 0, 2, 0]
    np.testing.assert_allclose(np.load(tmp_path / "texts" / VECTORS_FILE), expected[1], atol=1e-6)
