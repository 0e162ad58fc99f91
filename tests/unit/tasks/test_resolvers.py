from __future__ import annotations

import subprocess
import sys

from prodmatch.tasks.resolvers import data_name, resume_dir, run_token, train_view


def test_run_tokens_differ_between_processes_started_together():
    code = "from prodmatch.tasks.resolvers import run_token; print(run_token())"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(4)
    ]
    tokens = {p.communicate()[0].strip() for p in procs}
    assert len(tokens) == 4 and run_token() not in tokens


def test_a_training_run_resumed_from_its_checkpoint_keeps_its_run_dir(tmp_path):
    run = tmp_path / "runs" / "r1"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    ckpt = str(run / "checkpoints" / "last.ckpt")
    assert resume_dir("train", ckpt, "new") == str(run.resolve())
    assert resume_dir("evaluate", ckpt, "new") == "new"  # evaluating a checkpoint is a run of its own
    assert resume_dir("train", None, "new") == "new"
    assert resume_dir("train", str(tmp_path / "elsewhere.ckpt"), "new") == "new"


def test_train_view():
    assert train_view("image", "title") == "image" and train_view("text", "title_cat") == "title_cat"


def test_a_run_on_the_users_csvs_is_named_after_their_folder_or_the_queries_file():
    assert data_name("shop/company_data.csv", "shop/comparable_data.csv") == "shop"
    assert data_name("/a/q.csv", "/b/d.csv") == "q"  # apart: the queries file names it
    assert data_name("q.csv", None) == "q" and data_name(None, None) == "csv"
