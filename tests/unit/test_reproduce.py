"""`make reproduce`: experiments from the study rows, outputs under the working directory, resuming finished
runs, signals passed on to the running sweep with no process left behind, and the quick reproduction end to end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from prodmatch import reproduce
from prodmatch.errors import ConfigError
from prodmatch.reporting.study import (
    FINE_TUNED,
    OFF_THE_SHELF,
    PRODUCT_LEVEL,
    experiments,
    table_experiments,
)
from tests.helpers.run import REPO_ROOT

CONF = REPO_ROOT / "conf"

# A stand-in for a sweep: it starts a helper in its own process group that ignores SIGTERM/SIGINT (as a
# stuck DataLoader worker might), records the signals it gets, and exits on one unless told to ignore them.
FAKE_SWEEP = """
import os, signal, subprocess, sys, time
out, mode = sys.argv[1], sys.argv[2]
helper = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(300)"])
def on_signal(signum, frame):
    with open(os.path.join(out, "signals"), "a") as fh:
        fh.write(f"{signum}\\n")
    if mode == "exit":
        sys.exit(128 + signum)
signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)
time.sleep(0.5)  # the helper has installed its handlers
with open(os.path.join(out, "pids.tmp"), "w") as fh:
    fh.write(f"{os.getpid()} {helper.pid}")
os.replace(os.path.join(out, "pids.tmp"), os.path.join(out, "pids"))
while True:
    time.sleep(0.05)
"""


# --------------------------------------------------------------------------------------------- the plan
def test_every_experiment_config_is_a_study_row_of_the_right_table() -> None:
    # Configs with a study block are report rows; the others (demo, product_ntxent, ...) are runs of their own.
    configs = {p.stem for p in (CONF / "experiment").glob("*.yaml") if "\nstudy:" in p.read_text()}
    assert {"img", "ft_img_class", "title_cat_tfidf"} <= configs and "demo" not in configs
    assert {e.name for e in experiments(str(CONF))} == configs
    # Rows run through train pick a model, rows run through evaluate do not (off-the-shelf encoders).
    for e in experiments(str(CONF)):
        assert ("override /model" in (CONF / "experiment" / f"{e.name}.yaml").read_text()) == (
            e.task == "train"
        )
    assert {e.task for e in experiments(str(CONF)) if e.table == PRODUCT_LEVEL} == {"evaluate", "train"}


def test_everything_resolves_against_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    planned: list[list[str]] = []
    monkeypatch.setattr(reproduce, "run_steps", lambda steps: planned.extend(steps) or 0)
    monkeypatch.chdir(tmp_path)
    assert reproduce.main(["--profile", "quick", "trainer.max_epochs=2"]) == 0
    evaluate, train, product_evaluate, product_train, product_fused, report, gallery = planned
    runs = tmp_path / "multirun" / "reproduce" / "quick"
    trained = [n for n in table_experiments(PRODUCT_LEVEL, task="train") if n != "product_fused"]
    for step, task, names in (
        (product_evaluate, "evaluate", table_experiments(PRODUCT_LEVEL, task="evaluate")),
        (product_train, "train", trained),
    ):
        assert step[:4] == [sys.executable, "-m", f"prodmatch.{task}", "-m"]
        assert f"experiment={','.join(names)}" in step
        assert f"hydra.sweep.dir={runs / 'product' / task}" in step and step[-1] == "trainer.max_epochs=2"
    # product_fused is not trained again: product_image_supcon's checkpoint is its image net
    ckpt = runs / "product" / "train" / "product_image_supcon" / "checkpoints" / "last.ckpt"
    assert product_fused[:4] == [sys.executable, "-m", "prodmatch.evaluate", "-m"]
    assert {
        "experiment=product_fused_checkpoint",
        "experiment_name=product_fused",
        f"ckpt_path={ckpt}",
    } <= set(product_fused)
    assert evaluate[:4] == [sys.executable, "-m", "prodmatch.evaluate", "-m"]
    assert train[:4] == [sys.executable, "-m", "prodmatch.train", "-m"]
    assert f"experiment={','.join(table_experiments(OFF_THE_SHELF))}" in evaluate
    assert f"experiment={','.join(table_experiments(FINE_TUNED))}" in train
    assert f"hydra.sweep.dir={runs / 'evaluate'}" in evaluate and f"hydra.sweep.dir={runs / 'train'}" in train
    assert "resume=true" in train and "group=reproduce_quick" in train and train[-1] == "trainer.max_epochs=2"
    assert (
        report[1:4] == ["-m", "prodmatch.reporting", "results"]
        and str(tmp_path / "reports" / "quick") in report
    )
    assert str(tmp_path / "reports" / "quick" / "galleries") in gallery and str(runs / "product") in gallery
    assert not any(str(Path(reproduce.__file__).parent) in arg for step in planned for arg in step)


def test_only_product_runs_the_product_sweeps_of_both_catalogs_and_reports_them_apart(
    tmp_path: Path, monkeypatch
) -> None:
    planned: list[list[str]] = []
    monkeypatch.setattr(reproduce, "run_steps", lambda steps: planned.extend(steps) or 0)
    monkeypatch.chdir(tmp_path)
    assert reproduce.main(["--only", "product"]) == 0
    sweeps, reports = planned[:6], planned[6:]
    root = tmp_path / "multirun" / "reproduce" / "synthetic" / "product"
    trained = [n for n in table_experiments(PRODUCT_LEVEL, task="train") if n != "product_fused"]
    assert {"product_image_supcon", "product_image_label_free"} <= set(trained)
    for i, catalog in enumerate(("synthetic_full", "synthetic_hard")):
        product_evaluate, product_train, product_fused = sweeps[3 * i : 3 * i + 3]
        runs = root / catalog
        assert all(f"data={catalog}" in step for step in (product_evaluate, product_train, product_fused))
        assert f"hydra.sweep.dir={runs / 'evaluate'}" in product_evaluate
        # every row at its experiment's own recipe: no budget override
        assert f"experiment={','.join(trained)}" in product_train
        assert not any(a.startswith(("trainer.", "+trainer.")) for a in product_train)
        ckpt = runs / "train" / "product_image_supcon" / "checkpoints" / "last.ckpt"
        assert f"ckpt_path={ckpt}" in product_fused and "experiment_name=product_fused" in product_fused
        report, gallery = reports[2 * i : 2 * i + 2]
        assert report[report.index("--runs") + 1] == str(runs)
        assert report[report.index("--out") + 1] == str(tmp_path / "reports" / "product" / catalog)
        assert report[report.index("--note") + 1].startswith("Product level only")
        assert report[report.index("--title") + 1] == f"Product level, data={catalog}"
        assert gallery[gallery.index("--out") + 1] == str(
            tmp_path / "reports" / "product" / catalog / "galleries"
        )
    assert reproduce.report_files(planned) == [
        tmp_path / "reports" / "product" / c / "results.md" for c in ("synthetic_full", "synthetic_hard")
    ]


def test_profiles_are_configs_read_as_written(tmp_path: Path) -> None:
    assert reproduce.profile_names(str(CONF)) == ["quick", "sportdoma", "synthetic"]
    quick = reproduce.load_profile("quick", str(CONF))
    assert "paths.data_dir=${paths.root_dir}/data/quick" in quick.common  # Hydra resolves it, not the loader
    assert quick.product is None and quick.train == (
        "trainer.max_epochs=1",
        "datamodule.sampler.pairs_per_epoch=64",
    )
    (tmp_path / "reproduce").mkdir()
    (tmp_path / "reproduce" / "odd.yaml").write_text("note: x\ncommon: []\ntrian: []\n")
    with pytest.raises(ConfigError, match="trian"):
        reproduce.load_profile("odd", str(tmp_path))


def test_unknown_profile_is_rejected() -> None:
    with pytest.raises(SystemExit):
        reproduce.main(["--profile", "nope"])


def test_resume_reuses_a_finished_run_and_reruns_a_changed_one(tmp_path: Path) -> None:
    """What `resume=true` in the sweeps relies on: same config and catalog reuse, a changed config reruns."""
    from prodmatch.tasks.resume import mark_done, reusable_metrics

    for name in ("q.csv", "db.csv"):
        (tmp_path / name).write_text("title,target\na,b\n")
    cfg = OmegaConf.create(
        {"experiment_name": "x", "group": "g1", "retrieval": {"k": 10}, "paths": {"output_dir": str(tmp_path)},
         "data": {"queries_csv": str(tmp_path / "q.csv"), "database_csv": str(tmp_path / "db.csv")}}
    )  # fmt: skip
    (tmp_path / "metrics.json").write_text(json.dumps({"retrieval/acc@10": 0.5}))
    mark_done(cfg)
    assert reusable_metrics(OmegaConf.merge(cfg, {"group": "g2"})) == {"retrieval/acc@10": 0.5}
    assert reusable_metrics(OmegaConf.merge(cfg, {"retrieval": {"k": 5}})) is None
    (tmp_path / "db.csv").write_text("title,target\na,c\n")
    assert reusable_metrics(cfg) is None


# --------------------------------------------------------------------------------------------- steps, signals
def test_steps_run_in_order_and_stop_at_the_first_failure(tmp_path: Path) -> None:
    log = tmp_path / "log"
    step = [sys.executable, "-c", f"open({str(log)!r}, 'a').write('{{}}\\n'); raise SystemExit({{}})"]
    steps = [[*step[:2], step[2].format(name, status)] for name, status in (("a", 0), ("b", 3), ("c", 0))]
    assert reproduce.run_steps(steps) == 3
    assert log.read_text().split() == ["a", "b"]


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for a parent that never reaps it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _start(tmp_path: Path, mode: str) -> tuple[subprocess.Popen, int, int]:
    """A reproduction whose only step is the fake sweep; returns it with the sweep's and helper's pids."""
    code = (
        "import sys\nfrom prodmatch.reproduce import run_steps\n"
        f"sys.exit(run_steps([[sys.executable, '-c', {FAKE_SWEEP!r}, {str(tmp_path)!r}, {mode!r}]]))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "pids").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the fake sweep did not start"
        time.sleep(0.05)
    sweep, helper = map(int, (tmp_path / "pids").read_text().split())
    return proc, sweep, helper


def _gone(*pids: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(_alive(p) for p in pids)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_reaches_the_sweep_and_leaves_no_orphan(tmp_path: Path, signum: int) -> None:
    proc, sweep, helper = _start(tmp_path, "exit")
    try:
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signum
        assert (tmp_path / "signals").read_text().split() == [str(int(signum))]  # passed on once
        assert _gone(sweep, helper), "the sweep's helper outlived the reproduction"
        assert f"stopped by {signal.Signals(signum).name}" in err
    finally:
        for pid in (helper, sweep):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_second_signal_kills_a_sweep_that_does_not_stop(tmp_path: Path) -> None:
    proc, sweep, helper = _start(tmp_path, "ignore")
    try:
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while not (tmp_path / "signals").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the reproduction must wait for the sweep it signalled"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == 128 + signal.SIGTERM
        assert _gone(sweep, helper)
    finally:
        for pid in (helper, sweep):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_reproduce_quick_writes_every_row(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "prodmatch.reproduce",
        "--profile",
        "quick",
        f"paths.data_dir={tmp_path}/data",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, out = tmp_path / "multirun" / "reproduce" / "quick", tmp_path / "reports" / "quick"
    table = (out / "results.md").read_text()
    for exp in experiments():
        row = next(line for line in table.splitlines() if line.startswith(f"| `{exp.name}` |"))
        assert "not run" not in row, exp.name
        metrics = json.loads(next(runs.glob(f"*/{exp.name}/metrics.json")).read_text())
        assert f"{100 * metrics['retrieval/acc@10']:.2f}" in row
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "galleries" / "compare.html").is_file()
    rerun = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert rerun.returncode == 0
    assert (rerun.stdout + rerun.stderr).count("reusing the finished run") == len(experiments())
