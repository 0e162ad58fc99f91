"""Generating the synthetic catalog safely: temporary folder + rename, file lock, concurrent first use."""

from __future__ import annotations

import hashlib
import multiprocessing
import shutil
import threading
import time
from pathlib import Path

import pytest

from prodmatch.data import synthetic
from prodmatch.data.synthetic import generation
from prodmatch.errors import CatalogError
from prodmatch.utils.locks import file_lock


def _digest(root: Path) -> dict[str, str]:
    """sha256 of every file under root (CSVs, images and the marker), by relative path."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _leftovers(out: Path) -> list[str]:
    """Temporary or replaced folders of `out` still lying beside it."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


@pytest.fixture(scope="module")
def serial(tiny_data_dir: Path) -> Path:
    """The tiny catalog (seed 0) as one process generates it."""
    return tiny_data_dir / "synthetic"


# Starts staggered by less than one tiny generation (2-3 s): later callers meet a catalog being written.
_STAGGER_S = 0.4


def _ensure_in_child(out: str, start, index: int, results) -> None:
    """Runs in a spawned process: start with the others (staggered), ensure the catalog, report the outcome."""
    start.wait(300)  # every process has imported prodmatch by now
    time.sleep(index * _STAGGER_S)
    try:
        synthetic.ensure_catalog(out, seed=0, scale="tiny")
        results.put("ok")
    except BaseException as err:  # reported to the parent, which fails the test with it
        results.put(f"{type(err).__name__}: {err}")


def test_concurrent_threads_give_the_serial_catalog(serial: Path, tmp_path: Path) -> None:
    """The fast variant: threads of one process, each with its own lock handle, race on a cold folder."""
    out = tmp_path / "data" / "synthetic"
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        start.wait(30)
        time.sleep(index * _STAGGER_S)
        try:
            synthetic.ensure_catalog(out, seed=0, scale="tiny")
        except BaseException as err:  # collected: the test fails with it below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert _digest(out) == _digest(serial)
    assert _leftovers(out) == []


@pytest.mark.slow
@pytest.mark.parametrize("processes", [3])
def test_concurrent_first_use_gives_the_serial_catalog(serial: Path, tmp_path: Path, processes: int) -> None:
    """Spawned processes (each imports prodmatch afresh, about a minute on two busy cores) race on a cold folder."""
    out = tmp_path / "data" / "synthetic"  # cold: neither the folder nor its parent exists yet
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(processes), ctx.Queue()
    procs = [
        ctx.Process(target=_ensure_in_child, args=(str(out), start, i, results)) for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(300)
    outcomes = [results.get(timeout=10) for _ in procs]
    assert outcomes == ["ok"] * processes, outcomes
    assert all(proc.exitcode == 0 for proc in procs)
    assert _digest(out) == _digest(serial)
    assert _leftovers(out) == []


def test_a_waiting_process_finds_the_catalog_and_does_not_regenerate(
    serial: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "synthetic"
    calls: list[Path] = []
    monkeypatch.setattr(generation, "_generate_locked", lambda *args: calls.append(args[0]))
    outcome: list[object] = []
    with file_lock(out):  # another process is generating: this thread's call must wait for the lock
        waiter = threading.Thread(target=lambda: outcome.append(synthetic.ensure_catalog(out, 0, "tiny")))
        waiter.start()
        waiter.join(1.0)
        assert waiter.is_alive() and not outcome
        shutil.copytree(serial, out)  # ... and finishes
    waiter.join(60)
    assert outcome == [out] and calls == []


def test_a_failed_generation_leaves_the_old_catalog_and_no_temporary_folder(
    serial: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "synthetic"
    shutil.copytree(serial, out)
    before = _digest(out)

    def crash(folder: Path, *args: object) -> None:
        (folder / "company_data.csv").write_text("half", encoding="utf-8")
        raise KeyboardInterrupt

    monkeypatch.setattr(generation, "_write_files", crash)
    with pytest.raises(KeyboardInterrupt):
        synthetic.generate(out, seed=1, scale="tiny")
    assert _digest(out) == before
    assert _leftovers(out) == []


def test_leftovers_of_a_killed_generator_are_removed(serial: Path, tmp_path: Path) -> None:
    out = tmp_path / "synthetic"
    for name in (".synthetic.tmp-1-abcd", ".synthetic.old-2-ef01"):
        (tmp_path / name / "images").mkdir(parents=True)
    synthetic.ensure_catalog(out, seed=0, scale="tiny")
    assert _leftovers(out) == []
    assert _digest(out) == _digest(serial)


def test_a_folder_with_other_files_is_refused_and_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "documents"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"did not write \(notes.txt\)"):
        synthetic.generate(out, seed=0, scale="tiny")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["documents"]  # no lock file left beside it
    file_out = tmp_path / "a_file"
    file_out.write_text("x", encoding="utf-8")
    with pytest.raises(CatalogError, match="is a file, not a folder"):
        synthetic.ensure_catalog(file_out, seed=0, scale="tiny")
    assert file_out.read_text(encoding="utf-8") == "x"


def test_regeneration_keeps_what_the_generator_does_not_write(serial: Path, tmp_path: Path) -> None:
    placeholder_only = tmp_path / "fresh"
    placeholder_only.mkdir()
    (placeholder_only / ".gitkeep").touch()
    synthetic.ensure_catalog(placeholder_only, seed=0, scale="tiny")
    assert (placeholder_only / ".gitkeep").is_file()
    out = tmp_path / "synthetic"
    shutil.copytree(serial, out)
    (out / "README.md").write_text("about this folder", encoding="utf-8")
    (out / "images" / "stale.jpg").write_bytes(b"x")
    synthetic.generate(out, seed=1, scale="tiny")
    assert (out / "README.md").read_text(encoding="utf-8") == "about this folder"
    assert not (out / "images" / "stale.jpg").exists()
    assert synthetic.is_current(out, seed=1, scale="tiny")
