"""File identity that cannot be fooled cheaply, and models known by their weights, not their path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from prodmatch.errors import ConfigError
from prodmatch.utils import hashing
from tests.helpers.faults import replace_keeping_size_and_mtime


def _files(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / f"{i}.bin" for i in range(3)]
    for i, path in enumerate(paths):
        path.write_bytes(bytes([i]) * 1000)
    return paths


@pytest.mark.parametrize("in_place", [True, False], ids=["cp -p", "rsync -a"])
def test_a_file_replaced_with_the_same_size_and_mtime_is_another_file(tmp_path, in_place):
    paths = _files(tmp_path)
    before = hashing.stats_hash(paths)
    assert hashing.stats_hash(paths) == before
    replace_keeping_size_and_mtime(paths[1], b"\xff" * 1000, in_place=in_place)
    assert hashing.stats_hash(paths) != before  # its change time (and, renamed over, its inode) moved on


def test_content_identity_follows_the_bytes_alone(tmp_path):
    paths = _files(tmp_path)
    with hashing.file_identity("content"):
        before = hashing.files_identity(paths)
        copy = tmp_path / "copy"
        copy.mkdir()
        copies = [Path(shutil.copy(p, copy / p.name)) for p in paths]  # new inodes, same bytes
        assert hashing.files_identity(copies) == before
        replace_keeping_size_and_mtime(copies[0], b"\xee" * 1000)
        assert hashing.files_identity(copies) != before
    assert hashing.files_identity(paths) == hashing.stats_hash(paths)  # stat again outside the block


def test_data_identity_is_stat_or_content(tmp_path):
    assert hashing.check_identity("content") == "content"
    with pytest.raises(ConfigError, match=r"data.identity='inode' is not one of stat, content") as info:
        hashing.check_identity("inode")
    assert "\n" not in str(info.value)


def test_weights_are_known_by_their_bytes_not_their_path(tmp_path):
    ckpt = tmp_path / "run" / "last.ckpt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"weights-1" * 100)
    digest = hashing.weights_digest(ckpt)
    copy = tmp_path / "elsewhere.ckpt"
    shutil.copy(ckpt, copy)
    assert hashing.weights_digest(copy) == digest  # a copy elsewhere is the same model
    replace_keeping_size_and_mtime(ckpt, b"weights-2" * 100)  # retrained at the same path
    assert hashing.weights_digest(ckpt) != digest


def test_a_model_folder_is_known_by_its_files_names_and_bytes(tmp_path):
    model = tmp_path / "text-model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "sub" / "weights.bin").write_bytes(b"a" * 64)
    digest = hashing.weights_digest(model)
    moved = tmp_path / "moved"
    shutil.copytree(model, moved)
    assert hashing.weights_digest(moved) == digest
    replace_keeping_size_and_mtime(moved / "sub" / "weights.bin", b"b" * 64)
    assert hashing.weights_digest(moved) != digest
    (model / "sub" / "weights.bin").rename(model / "sub" / "other.bin")
    assert hashing.weights_digest(model) != digest  # names count too
