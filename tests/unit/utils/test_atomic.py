from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from prodmatch.utils import atomic


def test_write_replaces_whole_file_with_the_usual_permissions(tmp_path):
    path = tmp_path / "out" / "metrics.json"
    atomic.write_json(path, {"a": 1})
    atomic.write_json(path, {"a": 2})
    assert path.read_text().strip().endswith("}") and '"a": 2' in path.read_text()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0600
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temporary left behind


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "matches.csv"
    atomic.write_text(path, "old\n")
    with pytest.raises(RuntimeError), atomic.atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["matches.csv"]


def test_save_npy_round_trips_without_pickles(tmp_path):
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    atomic.save_npy(tmp_path / "x.npy", arr)
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy", allow_pickle=False), arr)
