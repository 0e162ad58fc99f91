"""Shards: the row split is Lightning's, the merge puts every row once in input order, failures are loud."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DistributedSampler

from prodmatch.distributed.shards import (
    STATUSES_FILE,
    VECTORS_FILE,
    Shard,
    load_merged,
    merge_on_rank_zero,
    merge_shards,
    rank_rows,
)
from tests.helpers.faults import filler, no_room, small_disk

DIM = 4


def _vectors(n: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, DIM)).astype(np.float32)


def _write(folder: Path, rank: int, n: int, world: int, rows: list[int], batch: int = 2) -> None:
    """Rank ``rank``'s shard holding ``rows`` of _vectors(n), in batches, status = row % 3."""
    vectors, shard = _vectors(n), Shard(folder, rank, n, world, DIM)
    for start in range(0, len(rows), batch):
        idx = rows[start : start + batch]
        shard.write(idx, vectors[idx], [i % 3 for i in idx])
    shard.close()


@pytest.mark.parametrize(("n", "world"), [(5, 2), (6, 2), (7, 3), (3, 3), (4, 1)])
def test_rank_rows_are_the_split_of_lightnings_predict_sampler(n: int, world: int):
    for rank in range(world):
        sampler = UnrepeatedDistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=False)
        assert list(rank_rows(n, rank, world)) == list(sampler)


@pytest.mark.parametrize(("n", "world"), [(7, 2), (7, 3), (6, 2), (2, 3)])
def test_merge_puts_every_row_once_in_input_order(tmp_path: Path, n: int, world: int):
    for rank in range(world):
        _write(tmp_path, rank, n, world, list(rank_rows(n, rank, world)))
    merge_shards(tmp_path, n, DIM, world)
    vectors, statuses = load_merged(tmp_path)
    assert isinstance(vectors, np.memmap) and not vectors.flags.writeable
    np.testing.assert_array_equal(vectors, _vectors(n))
    np.testing.assert_array_equal(statuses, np.arange(n) % 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [VECTORS_FILE, STATUSES_FILE]


def test_merge_keeps_one_copy_of_rows_a_padded_sampler_repeats(tmp_path: Path):
    n, world = 7, 2  # DistributedSampler pads rank 1 with row 0 again: 8 rows for 7 inputs
    shares = [list(DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=False)) for r in range(2)]
    assert sum(len(s) for s in shares) == 8
    for rank, rows in enumerate(shares):
        _write(tmp_path, rank, n, world, rows)
    merge_shards(tmp_path, n, DIM, world)
    np.testing.assert_array_equal(load_merged(tmp_path)[0], _vectors(n))


def test_merge_fails_on_a_row_in_no_shard(tmp_path: Path):
    _write(tmp_path, 0, 5, 2, [0, 2, 4])
    _write(tmp_path, 1, 5, 2, [1])  # row 3 never written
    with pytest.raises(RuntimeError, match=r"1 of 5 rows are in no shard \(e.g. row 3\)"):
        merge_shards(tmp_path, 5, DIM, 2)
    assert not (tmp_path / VECTORS_FILE).exists()


def test_merge_fails_on_a_missing_shard(tmp_path: Path):
    _write(tmp_path, 0, 5, 2, [0, 2, 4])
    with pytest.raises(RuntimeError, match="shard of rank 1 is missing"):
        merge_shards(tmp_path, 5, DIM, 2)


def test_a_shard_refuses_more_rows_than_a_distributed_split_gives(tmp_path: Path):
    shard = Shard(tmp_path, 0, 5, 2, DIM)  # at most 3 rows
    shard.write([0, 1], _vectors(2), [0, 0])
    with pytest.raises(RuntimeError, match="more than 3 rows"):
        shard.write([2, 3], _vectors(2), [0, 0])


class _Group:
    """A process group of one rank as the merge sees it: ``sent`` is what rank 0 would broadcast."""

    def __init__(self, sent: object = None) -> None:
        self.sent = sent
        self.barriers = 0

    def barrier(self, name: str | None = None) -> None:
        self.barriers += 1

    def broadcast(self, obj: object, src: int = 0) -> object:
        return obj if self.sent is None else self.sent


def test_a_failed_merge_is_raised_on_every_rank(tmp_path: Path):
    _write(tmp_path, 0, 5, 2, [0, 2, 4])  # rank 1's shard is missing: rank 0's merge fails
    group = _Group()
    with pytest.raises(RuntimeError, match="merging the embedding shards .* failed: the shard of rank 1"):
        merge_on_rank_zero(tmp_path, 5, DIM, 0, 2, group)
    assert group.barriers == 1
    # Rank 1 merges nothing; it learns of the failure from rank 0's broadcast instead of waiting forever.
    with pytest.raises(RuntimeError, match="failed: boom"):
        merge_on_rank_zero(tmp_path, 5, DIM, 1, 2, _Group(sent="boom"))


def test_no_room_for_a_shard_or_its_merge_is_an_oserror_never_a_sigbus(tmp_path: Path):
    """The shards are memory maps: their space is allocated before a row goes through them."""
    from prodmatch.utils.atomic import is_disk_full

    folder = tmp_path / "disk"
    with no_room(folder):
        with pytest.raises(OSError) as info:
            Shard(folder, 0, 50_000, 1, DIM)
        assert is_disk_full(info.value)
    written = tmp_path / "written"
    with small_disk(written, 512), filler(written) as fill_up:
        _write(written, 0, 4, 1, [0, 1, 2, 3])
        fill_up()  # the disk is full by the time rank 0 merges
        with pytest.raises(OSError, match="merging the embedding shards") as info:
            merge_on_rank_zero(written, 4, DIM, 0, 1, _Group())
    assert is_disk_full(info.value)  # the task's one error line, not a bug's traceback
