"""Faults injected into real runs: full disks, torn and replaced files, retrained checkpoints, kills, run dirs
and checkpoints shared by two runs, an interrupted sweep. None may crash a run, leave a temporary file or change a
number (docs/RELIABILITY.md, guarantees 13-21). The core of each is also a fast unit test next to its module."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from prodmatch.encoders.rows import KEYS_SUFFIX
from tests.helpers.faults import (
    fill,
    no_room_env,
    replace_keeping_size_and_mtime,
    same_size_image,
    small_disk,
    temporaries,
)
from tests.helpers.run import OFFLINE_ENV, REPO_ROOT, cli_overrides, run_script

pytestmark = pytest.mark.slow

IMG = ["experiment=img", "logger=none"]
TRAIN = [
    "logger=none",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=1",
    "datamodule.sampler.pairs_per_epoch=48",
    "datamodule.batch_size=16",
    "log_examples=0",
]


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _scores(run_dir: Path) -> dict:
    """The retrieval figures of a run (timings left out)."""
    return {k: v for k, v in _metrics(run_dir).items() if k.startswith(("retrieval/", "match/", "seen/"))}


def _status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "job_status.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return None


def _logged(log: Path) -> bool:
    """Whether a job's task has logged its first line (its signal handlers are in place by then)."""
    return log.is_file() and log.stat().st_size > 0


def _errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def _wait_for(ready: Callable[[], object], proc: subprocess.Popen, timeout: float = 900) -> bool:
    """Poll ``ready`` (every 2 ms: a store's temporary file may live a fraction of a second) while ``proc`` runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if ready():
            return True
        time.sleep(0.002)
    return bool(ready())


def _start(script: str, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``start_script`` with its output in files: a long run never blocks on a full pipe (where it would also never
    reach the batch boundary at which a signal stops it)."""
    out = cwd / f".{script}.{time.monotonic_ns()}"
    command = [sys.executable, str(REPO_ROOT / script), *args]
    with open(f"{out}.out", "w") as stdout, open(f"{out}.err", "w") as stderr:
        proc = subprocess.Popen(command, cwd=cwd, env={**os.environ, **OFFLINE_ENV, **(env or {})},
                                stdout=stdout, stderr=stderr, text=True)  # fmt: skip
    proc.output_files = (Path(f"{out}.out"), Path(f"{out}.err"))
    return proc


def _finish(proc: subprocess.Popen, timeout: float = 900) -> subprocess.CompletedProcess:
    """Wait for a run :func:`_start` started; its exit status and output."""
    proc.wait(timeout=timeout)
    out, err = (path.read_text() for path in proc.output_files)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _copy_data(tiny_data_dir: Path, tmp_path: Path) -> Path:
    """A catalog of this test's own (its images get replaced)."""
    data = tmp_path / "data"
    shutil.copytree(tiny_data_dir / "synthetic", data / "synthetic")
    return data


def _evaluate(data: Path, root: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [*cli_overrides(data, root), *IMG, "data.synthetic=null", f"hydra.run.dir={run_dir}", *extra]
    return run_script("evaluate.py", args, root)


# ---------------------------------------------------------------------------------------------------- disks full
def test_a_disk_filling_up_under_the_caches_falls_back_and_changes_no_number(tiny_data_dir, tmp_path):
    """The pixel store's disk fills up while the store is written (a SIGBUS before), and the
    embedding cache's has no room at all (an OSError traceback before)."""
    reference = tmp_path / "reference"
    _ok(_evaluate(tiny_data_dir, tmp_path, reference, "cache=false"))
    disks, run = tmp_path / "disks", tmp_path / "run"
    px, cache = disks / "pixels", disks / "cache"
    with small_disk(px, 8192) as mounted, small_disk(cache, 256):
        if mounted:
            fill(cache)
        args = [*cli_overrides(tiny_data_dir, tmp_path), *IMG, "data.synthetic=null", f"hydra.run.dir={run}"]
        args += [f"encoders.image.pixel_cache={px}", f"paths.cache_dir={cache}"]
        proc = _start("evaluate.py", args, tmp_path, env=no_room_env(disks, mounted))
        if mounted:
            assert _wait_for(lambda: temporaries(px), proc), "the store is written through a temporary file"
            fill(px)  # the disk fills up while the store is written
        done = _ok(_finish(proc))
        logged = done.stdout + done.stderr
        said = [line for line in logged.splitlines() if "pixel store" in line]
        assert len(said) == 1 and "not written" in said[0]  # the later store of the run is not tried
        assert len([line for line in logged.splitlines() if "embedding cache: cannot write" in line]) == 1
        assert "no space left on the disk" in logged
        assert temporaries(disks) == []
    assert _scores(run) == _scores(reference)


def test_no_room_for_the_run_dir_is_one_error_line_and_a_failed_status(tiny_data_dir, tmp_path):
    """An artifact that cannot be written (here metrics.json, matches.csv, result/) is one error line and a
    failed job_status.json, never a traceback or a signal death."""
    run = tmp_path / "run"
    with small_disk(run, 4096) as mounted:
        if not mounted:
            pytest.skip("filling the run dir mid-run needs a tmpfs; the unit test injects ENOSPC instead")
        args = [*cli_overrides(tiny_data_dir, tmp_path), *IMG, "cache=false", f"hydra.run.dir={run}"]
        proc = _start("evaluate.py", args, tmp_path)
        assert _wait_for(lambda: _logged(run / "evaluate.log"), proc), "the job is under way"
        started = _status(run)
        fill(run)
        err = _finish(proc).stderr
        assert proc.returncode == 1, err[-3000:]
        (line,) = _errors(err)
        assert "no space left on the disk" in line and str(run) in line
        assert _status(run) == "failed"
        assert "Traceback" not in err
        assert temporaries(run) == []
    assert started == "running"  # recorded as it started: a job killed outright is never taken for "ok"


# ------------------------------------------------------------------------------------------ torn, replaced files
def _vector_files(folder: Path) -> list[Path]:
    """The vectors files of the embedding cache's segments (not their keys files)."""
    return sorted(p for p in folder.rglob("*.npy") if not p.name.endswith(KEYS_SUFFIX))


def test_torn_and_empty_entries_are_misses_that_change_no_number(tiny_data_dir, tmp_path):
    """What a power loss can leave (an empty or short entry) is one warning and is written again."""
    px = tmp_path / "px"
    first = tmp_path / "first"
    _ok(_evaluate(tiny_data_dir, tmp_path, first, f"encoders.image.pixel_cache={px}"))
    entries = _vector_files(tmp_path / "cache" / "embeddings")  # the segments of the row stores
    crops = sorted(p for p in px.glob("pixels-*.npy") if not p.name.endswith(".status.npy"))
    assert len(entries) == 2 and len(crops) == 2
    entries[0].write_bytes(b"")
    entries[1].write_bytes(entries[1].read_bytes()[:100])
    crops[0].write_bytes(b"")
    again = tmp_path / "again"
    proc = _ok(_evaluate(tiny_data_dir, tmp_path, again, f"encoders.image.pixel_cache={px}"))
    logged = proc.stdout + proc.stderr
    assert logged.count("unreadable") >= 3, logged[-3000:]
    assert _scores(again) == _scores(first)
    assert all(p.stat().st_size > 1000 for p in _vector_files(tmp_path / "cache" / "embeddings"))
    assert temporaries(tmp_path) == []


def test_images_replaced_with_the_same_size_and_mtime_change_the_numbers_as_they_should(
    tiny_data_dir, tmp_path
):
    """Images replaced keeping their size and mtime (cp -p, rsync -a, touch -r, an archive) are not
    served from the pixel store, the embedding cache or a finished run (resume=true)."""
    data = _copy_data(tiny_data_dir, tmp_path)
    px, fixed = tmp_path / "px", tmp_path / "fixed"
    _ok(_evaluate(data, tmp_path, fixed, f"encoders.image.pixel_cache={px}", "resume=true"))
    before = _scores(fixed)
    images = sorted((data / "synthetic").rglob("*.jpg"))
    for i, path in enumerate(images[::3]):  # a third of the images, half of them in place, half renamed over
        replace_keeping_size_and_mtime(
            path, same_size_image(path, (37 * i % 256, 90, 160)), in_place=i % 2 == 0
        )
    resumed = _ok(_evaluate(data, tmp_path, fixed, f"encoders.image.pixel_cache={px}", "resume=true"))
    assert "catalog changed" in resumed.stdout + resumed.stderr
    cached = tmp_path / "cached"
    _ok(_evaluate(data, tmp_path, cached, f"encoders.image.pixel_cache={px}"))
    fresh = tmp_path / "fresh"
    _ok(_evaluate(data, tmp_path, fresh, "cache=false"))
    assert _scores(fresh) != before, "the replacement changes what is scored"
    assert _scores(fixed) == _scores(cached) == _scores(fresh)


# ------------------------------------------------------------------------------------------ trained checkpoints
@pytest.fixture(scope="module")
def trained(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(root, run A, run B): two finished one-epoch training runs of different seeds."""
    root = tmp_path_factory.mktemp("trained")
    runs = []
    for name, seed in (("a", 42), ("b", 7)):
        run = root / name
        args = [*cli_overrides(tiny_data_dir, root), *TRAIN, "trainer.max_epochs=1", f"seed={seed}"]
        _ok(run_script("train.py", [*args, f"hydra.run.dir={run}"], root))
        runs.append(run)
    return root, runs[0], runs[1]


def test_a_checkpoint_retrained_at_the_same_path_is_evaluated_again(tiny_data_dir, trained, tmp_path):
    """`resume=true` once keyed a checkpoint by its path: a retrained one there reused stale metrics."""
    _, run_a, run_b = trained
    ckpt = tmp_path / "model" / "last.ckpt"
    ckpt.parent.mkdir()
    shutil.copy2(run_a / "checkpoints" / "last.ckpt", ckpt)
    fixed = tmp_path / "fixed"
    args = [f"ckpt_path={ckpt}", "resume=true", "cache=false"]
    _ok(_evaluate(tiny_data_dir, tmp_path, fixed, *args))
    before = _scores(fixed)
    reused = _ok(_evaluate(tiny_data_dir, tmp_path, fixed, *args))
    assert "reusing the finished run" in reused.stdout + reused.stderr
    stamp = ckpt.stat()
    shutil.copyfile(run_b / "checkpoints" / "last.ckpt", ckpt)  # retrained, copied over it in place ...
    os.utime(ckpt, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # ... keeping its mtime
    again = _ok(_evaluate(tiny_data_dir, tmp_path, fixed, *args))
    assert "weights changed" in again.stdout + again.stderr
    fresh = tmp_path / "fresh"
    _ok(
        _evaluate(
            tiny_data_dir, tmp_path, fresh, f"ckpt_path={run_b / 'checkpoints' / 'last.ckpt'}", "cache=false"
        )
    )
    assert _scores(fixed) == _scores(fresh) != before


def test_another_runs_checkpoint_with_another_model_config_starts_a_new_run(tiny_data_dir, trained):
    """`ckpt_path=<another run's last.ckpt>` with a different model config once wrote into
    the other run's dir. Now it is a new run that records where it was initialised from."""
    root, run_a, _ = trained
    untouched = {p.name: p.stat().st_mtime_ns for p in run_a.iterdir() if p.is_file()}
    ckpt = run_a / "checkpoints" / "last.ckpt"
    args = [*cli_overrides(tiny_data_dir, root), *TRAIN, "trainer.max_epochs=2", "model.optimizer.lr=0.005"]
    _ok(run_script("train.py", [*args, f"ckpt_path={ckpt}"], root))
    assert {p.name: p.stat().st_mtime_ns for p in run_a.iterdir() if p.is_file()} == untouched
    (new,) = [p.parent for p in (root / "logs" / "train" / "runs").glob("*/initialised_from.json")]
    record = json.loads((new / "initialised_from.json").read_text())
    assert record["ckpt_path"] == str(ckpt.resolve()) and record["run_dir"] == str(run_a.resolve())
    assert _status(new) == "ok" and (new / "checkpoints" / "last.ckpt").is_file()


# ------------------------------------------------------------------------------------------- kills, two writers
def test_a_run_killed_while_writing_then_run_again_equals_the_serial_result(tiny_data_dir, tmp_path):
    """SIGKILL in the middle of the pixel store's write: the rerun removes what the killed writer left and gives
    the numbers of a run that was never interrupted."""
    serial = tmp_path / "serial"
    _ok(_evaluate(tiny_data_dir, tmp_path, serial, "cache=false"))
    px = tmp_path / "px"
    args = [*cli_overrides(tiny_data_dir, tmp_path), *IMG, f"encoders.image.pixel_cache={px}"]
    proc = _start("evaluate.py", [*args, f"hydra.run.dir={tmp_path / 'killed'}"], tmp_path)
    assert _wait_for(lambda: temporaries(px), proc), "the store is written through a temporary file"
    proc.send_signal(signal.SIGKILL)
    _finish(proc, timeout=60)
    assert temporaries(px), "killed mid-write: nothing could clean up"
    again = tmp_path / "again"
    _ok(run_script("evaluate.py", [*args, f"hydra.run.dir={again}"], tmp_path))
    assert temporaries(tmp_path) == []
    assert _scores(again) == _scores(serial)


def test_two_training_runs_into_one_run_dir(tiny_data_dir, tmp_path):
    """A second train.py given a live run's hydra.run.dir once overwrote its .hydra/ and files.
    Now it stops with one line before writing anything there."""
    run = tmp_path / "run"
    args = [*cli_overrides(tiny_data_dir, tmp_path), *TRAIN, f"hydra.run.dir={run}"]
    first = _start("train.py", [*args, "trainer.max_epochs=500"], tmp_path)
    try:
        assert _wait_for(lambda: _logged(run / "train.log"), first), "the first run is under way"
        config = (run / ".hydra" / "config.yaml").read_text()
        second = run_script("train.py", [*args, "trainer.max_epochs=1"], tmp_path)
        assert second.returncode == 1
        (line,) = _errors(second.stderr)
        assert "in use by another live process" in line and str(run) in line
        assert (run / ".hydra" / "config.yaml").read_text() == config and _status(run) == "running"
    finally:
        first.send_signal(signal.SIGTERM)
        _finish(first, timeout=600)
    assert first.returncode == 128 + signal.SIGTERM and _status(run) == "interrupted"


# ------------------------------------------------------------------------------------------ an interrupted sweep
def _job(sweep: Path, num: int) -> Path:
    """A sweep job's dir, `<number>_<overrides>` (the number alone until the job has started)."""
    return next(iter(sorted(sweep.glob(f"{num}_*"))), sweep / str(num))


def test_an_interrupted_optuna_sweep_exits_non_zero_and_a_rerun_continues_it(tiny_data_dir, tmp_path):
    """SIGTERM during a trial ends the sweep with 128 + signal (the study is in memory: no best trial is
    claimed). The same command again with the same hydra.sweep.dir and resume=true reuses the finished trials,
    reruns the interrupted one and finishes the study as one run without the interruption would."""
    sweep = tmp_path / "study"
    args = [
        "hparams_search=demo_optuna",
        "hydra.sweeper.n_trials=3",
        f"hydra.sweep.dir={sweep}",
        "resume=true",
        *cli_overrides(tiny_data_dir, tmp_path, root=False),
        *TRAIN,
        "callbacks.retrieval.before_fit=false",
        "trainer.max_epochs=3",
    ]
    proc = _start("train.py", args, tmp_path)
    assert _wait_for(lambda: _logged(_job(sweep, 1) / "train.log"), proc), "the second trial is under way"
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    err = _finish(proc, timeout=600).stderr
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert (_status(_job(sweep, 0)), _status(_job(sweep, 1))) == ("ok", "interrupted")
    assert not list(sweep.glob("2_*")) and not (sweep / "best_trial.yaml").exists()
    assert temporaries(sweep) == []
    first_value = _metrics(_job(sweep, 0))["retrieval/acc@10"]

    rerun = _ok(run_script("train.py", args, tmp_path))
    assert "reusing the finished run" in rerun.stdout + rerun.stderr
    assert [_status(_job(sweep, i)) for i in range(3)] == ["ok", "ok", "ok"]
    assert _metrics(_job(sweep, 0))["retrieval/acc@10"] == first_value
    assert "best trial of 3 (3 finished, 0 failed)" in rerun.stdout
