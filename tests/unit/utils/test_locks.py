"""Run dirs are held by the live process that runs in them; a second one given the same dir stops with one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from prodmatch.tasks.run_lock import RunDirLock
from prodmatch.utils import locks
from prodmatch.utils.locks import RunDirInUseError, hold_run_dir, release_run_dir

_HOLD = (
    "import sys, time\n"
    "from prodmatch.utils.locks import hold_run_dir\n"
    "hold_run_dir(sys.argv[1])\n"
    "print('held', flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.fixture(autouse=True)
def _rank_zero(monkeypatch):
    """This process as a single run (or rank 0) sees it."""
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def held(tmp_path):
    """A run dir that another live process holds."""
    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    yield run_dir, holder
    holder.kill()
    holder.wait()


def test_a_run_dir_held_by_a_live_process_is_refused_and_free_once_it_is_gone(held):
    run_dir, holder = held
    with pytest.raises(RunDirInUseError) as info:
        hold_run_dir(run_dir)
    message = str(info.value)
    assert str(run_dir) in message and "hydra.run.dir" in message and "\n" not in message
    holder.kill()  # killed outright: the lock dies with its process, the dir is never blocked for good
    holder.wait()
    hold_run_dir(run_dir)
    hold_run_dir(run_dir)  # held already by this process: fine
    release_run_dir(run_dir)


def test_a_second_run_in_a_held_dir_stops_with_one_error_line(held, capsys):
    run_dir, _ = held
    with pytest.raises(SystemExit) as exc:
        RunDirLock()._hold(str(run_dir))
    assert exc.value.code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "in use by another live process" in line


def test_the_other_ranks_of_a_distributed_run_share_rank_zeros_dir(held, monkeypatch):
    run_dir, _ = held
    monkeypatch.setenv("LOCAL_RANK", "1")
    hold_run_dir(run_dir)  # a rank > 0 writes into rank 0's dir by design
    assert run_dir.resolve() not in locks._held


def test_holding_a_run_dir_removes_what_killed_writers_left(tmp_path):
    code = (
        "import os, sys\n"
        "from prodmatch.utils.atomic import new_temporary\n"
        "new_temporary(sys.argv[1])\n"
        "os._exit(0)\n"
    )
    run_dir = tmp_path / "run"
    subprocess.run([sys.executable, "-c", code, str(run_dir / "checkpoints" / "last.ckpt")], check=True)
    assert len(list(run_dir.rglob(".*.tmp"))) == 1
    hold_run_dir(run_dir)
    release_run_dir(run_dir)
    assert list(run_dir.rglob(".*.tmp")) == []
