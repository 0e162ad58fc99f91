"""The wheel runs as an installed package: its configs travel inside it and runs write only into the cwd."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers.run import OFFLINE_ENV, REPO_ROOT

TINY = ["data.synthetic.scale=tiny", "data.image_size=32", "num_workers=0", "encoders.tfidf.dim=64"]


def test_package_list_covers_every_package_on_disk():
    import tomllib
    from setuptools import find_packages

    listed = set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert listed == {*find_packages(str(REPO_ROOT / "src")), "prodmatch.conf"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv outside the repo holding only the built wheel (dependencies come from this environment)."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            root,
            REPO_ROOT,
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = root.glob("prodmatch-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    # The dependencies, not prodmatch: a .pth line adds this environment's site-packages after the venv's own.
    deps = [p for p in site.getsitepackages() if "site-packages" in p]
    (purelib / "deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", purelib, wheel],
        check=True,
        capture_output=True,
    )
    return venv


def _run(venv: Path, script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run one of the wheel's console scripts (prodmatch-train, ...) with the fresh venv's interpreter."""
    (console,) = [p for p in venv.rglob(f"prodmatch-{script}") if p.parent.name == "bin"]
    env = {**os.environ, **OFFLINE_ENV, "PYTHONPATH": ""}
    return subprocess.run(
        [str(venv / "bin" / "python"), str(console), *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=1800,
    )  # fmt: skip


@pytest.mark.slow
def test_installed_wheel_evaluates_and_trains_in_an_empty_folder(installed, tmp_path):
    check = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import prodmatch, pathlib; print(prodmatch.__file__)"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""}, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert str(installed) in check.stdout, "the wheel's prodmatch is the one imported"
    work = tmp_path / "empty"
    work.mkdir()
    proc = _run(installed, "evaluate", ["experiment=title_cat_tfidf", *TINY], work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = _run(
        installed, "train", ["trainer.max_epochs=1", "datamodule.sampler.pairs_per_epoch=32", *TINY], work
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p.name for p in work.iterdir()} <= {"data", "logs", "multirun"}
    assert list((work / "logs" / "evaluate" / "runs").glob("*/metrics.json"))
    assert list((work / "logs" / "train" / "runs").glob("*/checkpoints/last.ckpt"))
