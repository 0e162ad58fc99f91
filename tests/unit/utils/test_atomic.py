from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from prodmatch.utils import atomic
from tests.helpers.faults import no_room, temporaries


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


def test_a_write_reaches_the_disk_before_its_rename_and_the_rename_after(tmp_path, monkeypatch):
    """fsync of the data before the rename, of the folder after it: a power loss never leaves an empty or short
    file under the final name."""
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        atomic.os, "fsync", lambda fd: events.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd)
    )
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: events.append("rename") or real_replace(a, b))
    atomic.write_json(tmp_path / "metrics.json", {"a": 1})
    assert len(events) == 3 and events[1] == "rename"
    assert events[0].endswith(".tmp") and Path(events[0]).parent == tmp_path  # the temporary file's data
    assert events[2] == str(tmp_path)  # then the folder, which holds the rename


def test_no_room_for_a_write_names_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "disk" / "metrics.json"
    with no_room(path.parent):
        with pytest.raises(OSError) as info:
            atomic.write_json(path, {"a": 1})
        assert atomic.is_disk_full(info.value) and info.value.filename == str(path)
        assert temporaries(path.parent) == [] and not path.exists()


def test_a_memory_map_gets_its_space_before_anything_is_written_through_it(tmp_path):
    """No room is an OSError when the map is made, never a SIGBUS when a page of it is first written."""
    with no_room(tmp_path / "disk"):
        with pytest.raises(OSError) as info:
            atomic.allocated_memmap(tmp_path / "disk" / "x.npy", np.uint8, (1 << 20,))
        assert atomic.is_disk_full(info.value)
    array = atomic.allocated_memmap(tmp_path / "x.npy", np.float32, (64, 8))
    assert array.shape == (64, 8) and not array.any()
    assert os.stat(tmp_path / "x.npy").st_blocks * 512 >= array.nbytes  # allocated, not a sparse file


def test_where_the_filesystem_cannot_allocate_ahead_zeros_are_written(tmp_path, monkeypatch):
    def refuse(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, "not supported")

    monkeypatch.setattr(atomic.os, "posix_fallocate", refuse, raising=False)
    array = atomic.allocated_memmap(tmp_path / "x.npy", np.int64, (3000,))
    array[:] = np.arange(3000)
    array.flush()
    del array
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), np.arange(3000))
    assert os.stat(tmp_path / "x.npy").st_blocks * 512 >= 3000 * 8


def test_a_killed_writers_temporary_is_removed_and_a_live_ones_kept(tmp_path):
    code = (
        "import os, sys\n"
        "from prodmatch.utils.atomic import new_temporary\n"
        "new_temporary(sys.argv[1])\n"
        "os._exit(0)  # as if killed: nothing cleans up\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "metrics.json")], check=True)
    (orphan,) = temporaries(tmp_path)
    assert f"-{os.getpid()}." not in orphan.name
    mine = atomic.new_temporary(tmp_path / "matches.csv")  # a live writer's (this process)
    elsewhere = tmp_path / ".matches.csv.otherhost-1.abcd1234.tmp"  # another host's: its writer may be alive
    elsewhere.touch()
    assert atomic.remove_orphans(tmp_path) == 1
    assert temporaries(tmp_path) == sorted([mine, elsewhere])
