"""evaluate.py end to end on the tiny synthetic catalog: artifacts, W&B, CSV, exit behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from prodmatch.evaluate import evaluate
from prodmatch.match import match
from prodmatch.retrieval.artifacts import MATCH_COLUMNS
from tests.helpers.run import cli_overrides, run_script, wandb_exit_codes


def _check_contract(out: Path, queries_targets: set[str]) -> dict[str, float]:
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["retrieval/acc@10"] <= 1.0
    assert {f"retrieval/acc@10/{t}" for t in queries_targets} <= set(metrics)
    assert {"retrieval/ann_recall@10", "retrieval/sku_recall@10", "retrieval/sku_mrr"} <= set(metrics)
    matches = pd.read_csv(out / "matches.csv")
    assert tuple(matches.columns)[: len(MATCH_COLUMNS)] == MATCH_COLUMNS  # the contract's columns come first
    return metrics


@pytest.mark.parametrize(
    "experiment",
    ["title_cat_tfidf", "img", "title", "img40_title_cat_rerank", "img_title"],
)
def test_evaluate_experiment_writes_contract_artifacts(compose_cfg, tiny_catalogs, tmp_path, experiment):
    cfg = compose_cfg("evaluate", [f"experiment={experiment}"])
    metrics = evaluate(cfg).metrics
    assert cfg.experiment_name == experiment
    written = _check_contract(tmp_path, set(tiny_catalogs[0].targets))
    assert written == pytest.approx(metrics)
    # One W&B run, finished cleanly, offline inside the run dir; the CSV logger holds the same numbers.
    assert wandb_exit_codes(tmp_path) == [0]
    csv_metrics = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    assert csv_metrics["retrieval/acc@10"].dropna().iloc[-1] == pytest.approx(metrics["retrieval/acc@10"])


PRODUCT_KEYS = {
    "retrieval/acc@10", "retrieval/sku_recall@10", "retrieval/sku_mrr", "retrieval/sku_full_recall@10",
    "retrieval/sku_map@10", "match/precision", "match/recall", "match/f1", "match/threshold",
}  # fmt: skip


def test_evaluate_product_protocol_reports_unseen_and_seen_products(compose_cfg, tmp_path):
    cfg = compose_cfg("evaluate", ["experiment=title_tfidf", "retrieval.protocol=product", "logger=none"])
    metrics = evaluate(cfg).metrics
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert PRODUCT_KEYS | {f"seen/{key}" for key in PRODUCT_KEYS} <= set(written)
    assert written == pytest.approx(metrics)
    assert 0 < written["match/threshold"] <= 1 and written["split/test"] > 0
    matches = pd.read_csv(tmp_path / "matches.csv")
    assert tuple(matches.columns)[: len(MATCH_COLUMNS) + 1] == (*MATCH_COLUMNS, "query_split")
    assert matches.groupby("query_idx")["query_split"].first().eq("test").sum() == written["split/test"]


@pytest.mark.parametrize("experiment", ["product_color_hist", "product_title_tfidf"])
def test_product_baselines_write_the_product_keys(compose_cfg, tmp_path, experiment):
    cfg = compose_cfg("evaluate", [f"experiment={experiment}", "logger=none"])
    metrics = evaluate(cfg).metrics
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert PRODUCT_KEYS | {f"seen/{key}" for key in PRODUCT_KEYS} <= set(written)
    assert written == pytest.approx(metrics) and 0 <= written["retrieval/sku_recall@10"] <= 1
    matches = pd.read_csv(tmp_path / "matches.csv")
    assert tuple(matches.columns)[: len(MATCH_COLUMNS) + 1] == (*MATCH_COLUMNS, "query_split")


def test_evaluate_is_reproducible_and_uses_the_cache(compose_cfg, tmp_path):
    cfg = compose_cfg("evaluate", ["experiment=title", "logger=none"])
    first = evaluate(cfg).metrics
    cached = list((tmp_path / "cache" / "embeddings").rglob("*.npy"))
    assert cached, "embeddings must be cached"
    second = evaluate(cfg).metrics
    assert first == second


def test_text_only_run_never_needs_images(compose_cfg, tiny_data_dir, tmp_path):
    # A copy of the catalog without its images folder: text experiments still run.
    src = tiny_data_dir / "synthetic"
    dst = tmp_path / "noimg" / "synthetic"
    dst.mkdir(parents=True)
    for name in ("company_data.csv", "comparable_data.csv"):
        (dst / name).write_bytes((src / name).read_bytes())
    cfg = compose_cfg(
        "evaluate",
        ["experiment=title_tfidf", "logger=none", f"paths.data_dir={dst.parent}", "data.synthetic=null"],
    )
    metrics = evaluate(cfg).metrics
    assert metrics["retrieval/acc@10"] > 0


def test_evaluate_cli_writes_run_dir_under_logs(tiny_data_dir, tmp_path):
    args = cli_overrides(tiny_data_dir, tmp_path)
    proc = run_script("evaluate.py", [*args, "experiment=title_cat_tfidf"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dirs = list((tmp_path / "logs" / "evaluate" / "runs").iterdir())
    assert len(run_dirs) == 1
    out = run_dirs[0]
    assert (out / ".hydra" / "config.yaml").is_file()
    _check_contract(out, set())
    assert "Acc@10" in proc.stdout


def test_missing_column_is_one_line_error_and_nonzero_exit(tiny_data_dir, tmp_path):
    src = tiny_data_dir / "synthetic"
    bad = tmp_path / "bad"
    bad.mkdir()
    pd.read_csv(src / "company_data.csv").drop(columns=["title"]).to_csv(
        bad / "company_data.csv", index=False
    )
    (bad / "comparable_data.csv").write_bytes((src / "comparable_data.csv").read_bytes())
    args = [
        f"paths.root_dir={tmp_path}",
        f"data.queries_csv={bad}/company_data.csv",
        f"data.database_csv={bad}/comparable_data.csv",
        f"data.image_root={src}",
        "data.synthetic=null",
        "experiment=title_tfidf",
        "logger=none",
    ]
    proc = run_script("evaluate.py", args, cwd=tmp_path)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "'title'" in errors[0] and "company_data.csv" in errors[0]
    assert "Traceback" not in proc.stderr


def test_unknown_experiment_fails_loudly(tmp_path):
    proc = run_script(
        "evaluate.py", ["experiment=no_such_experiment", f"paths.root_dir={tmp_path}"], cwd=tmp_path
    )
    assert proc.returncode != 0
    assert "no_such_experiment" in proc.stderr


def test_misspelled_key_fails_loudly(tmp_path):
    proc = run_script("evaluate.py", ["retrieval.kk=5", f"paths.root_dir={tmp_path}"], cwd=tmp_path)
    assert proc.returncode != 0
    assert "kk" in proc.stderr


def test_unreachable_pretrained_weights_is_one_clear_line(tiny_data_dir, tmp_path):
    args = cli_overrides(tiny_data_dir, tmp_path)
    proc = run_script(
        "evaluate.py",
        [
            *args,
            "experiment=title",
            "pretrained=true",
            "encoders.text.model_name_or_path=no-such-org/no-such-model",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "no-such-org/no-such-model" in errors[0] and "pretrained=false" in errors[0]
    assert "Traceback" not in proc.stderr


def test_match_exports_the_top_k_with_key_columns_in_matches_csv(
    compose_cfg, tiny_catalogs, tmp_path, capsys
):
    cfg = compose_cfg("match", ["experiment=title_cat_tfidf", "retrieval.k=3"])
    run = match(cfg)
    export = pd.read_csv(tmp_path / "matches.csv")
    queries, database = tiny_catalogs
    assert len(export) == 3 * len(queries)
    assert set(run.metrics) >= {"retrieval/acc@3", "retrieval/sku_mrr"}  # scored at the depth it exports
    printed = capsys.readouterr().out
    assert "Acc@3" in printed and f"{3 * len(queries)} matches of {len(queries)} query cards" in printed
    assert not list(tmp_path.glob("*matches*.csv"))[1:]  # one export
    assert {
        "query_idx",
        "query_title",
        "rank",
        "score",
        "db_idx",
        "db_title",
        "db_price",
        "db_dealer",
        "db_img_ref",
        "db_sku",
    } <= set(export.columns)
    assert export.groupby("query_idx")["rank"].max().eq(3).all()
    db_csv = pd.read_csv(database.image_root / "comparable_data.csv")
    assert (
        db_csv["dealer"].to_numpy(dtype=object)[export["db_idx"]]
        == export["db_dealer"].to_numpy(dtype=object)
    ).all()


def test_match_rejects_a_bad_k(compose_cfg):
    cfg = compose_cfg("match", ["experiment=title_tfidf", "retrieval.k=0"])
    with pytest.raises(SystemExit):
        match(cfg)


def test_corrupt_image_found_while_encoding_is_dropped_and_counted(tiny_data_dir, tmp_path):
    """A file that exists but does not decode is met in a DataLoader worker: the card is dropped and counted,
    the run goes on; data.strict=true makes it one error line naming the file; the load check drops it early."""
    import shutil

    data_dir = tmp_path / "data"
    shutil.copytree(tiny_data_dir / "synthetic", data_dir / "synthetic")
    ref = pd.read_csv(data_dir / "synthetic" / "company_data.csv")["img_ref"].iloc[3]
    (data_dir / "synthetic" / ref).write_bytes(b"not an image")
    run_dir = tmp_path / "run"
    args = [
        *cli_overrides(data_dir, tmp_path),
        "experiment=img",
        "logger=none",
        "cache=false",
        "num_workers=1",
        f"hydra.run.dir={run_dir}",
    ]
    proc = run_script("evaluate.py", args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["data/dropped/unreadable_image"] == 1
    assert (
        len(pd.read_csv(run_dir / "matches.csv")["query_idx"].unique()) == 48
    )  # 49 query cards, one dropped

    proc = run_script("evaluate.py", [*args, "data.strict=true"], cwd=tmp_path)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and Path(ref).name in errors[0] and "data.strict" in errors[0]
    assert "Traceback" not in proc.stderr

    proc = run_script("evaluate.py", [*args, "data.check_images=decode"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1 dropped (unreadable_image: 1 [rows 3])" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("data", "folder", "scale"),
    [
        ("synthetic", "synthetic", "demo"),
        ("synthetic_full", "synthetic_full", "full"),
        ("synthetic_hard", "synthetic_hard", "full"),
        ("sportdoma", "sportdoma", None),
    ],
)
def test_data_configs_point_at_their_own_folder(compose_cfg, data, folder, scale):
    cfg = compose_cfg("evaluate", [f"data={data}"], tiny=False)
    for key in ("queries_csv", "database_csv"):
        assert Path(cfg.data[key]).parent.name == folder
    assert Path(cfg.data.image_root).name == folder
    assert (cfg.data.synthetic.scale if cfg.data.synthetic else None) == scale
    if data == "synthetic_hard":
        assert cfg.data.synthetic.profile == "hard" and cfg.data.synthetic.seed == 0


def test_real_data_missing_is_one_line_naming_where_files_go(compose_cfg, tmp_path, capsys):
    cfg = compose_cfg(
        "evaluate",
        ["data=sportdoma", f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path}", "logger=none"],
        tiny=False,
    )
    with pytest.raises(SystemExit):
        evaluate(cfg)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "company_data.csv: file not found" in err[0] and "data.queries_csv" in err[0]


@pytest.mark.slow
@pytest.mark.parametrize("script", ["evaluate.py", "match.py"])
def test_embedding_through_the_predict_loop_on_two_cpu_processes_matches_one_process(
    tiny_data_dir, tmp_path, script
):
    """`embed_trainer=ddp_cpu`: Lightning's predict loop in 2 processes, shards merged in catalog order. Metrics,
    the dropped unreadable image (rank 1's row) and its count equal a one-process run's; one W&B run (evaluate)
    and one match export equal to the one-process one (match)."""
    import shutil

    import numpy as np

    data_dir = tmp_path / "data"
    shutil.copytree(tiny_data_dir / "synthetic", data_dir / "synthetic")
    ref = pd.read_csv(data_dir / "synthetic" / "company_data.csv")["img_ref"].iloc[3]
    (data_dir / "synthetic" / ref).write_bytes(b"not an image")
    args = [*cli_overrides(data_dir, tmp_path), "experiment=img", "cache=false"]
    if script == "match.py":
        args.append("logger=wandb")
    metrics = {}
    for name, extra in (("one", []), ("ddp", ["embed_trainer=ddp_cpu"])):
        run_dir = tmp_path / name
        proc = run_script(script, [*args, *extra, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        metrics[name] = json.loads((run_dir / "metrics.json").read_text())
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in proc.stdout + proc.stderr
    assert metrics["ddp"]["data/dropped/unreadable_image"] == 1
    assert metrics["ddp"].keys() == metrics["one"].keys()
    for key, value in metrics["one"].items():
        assert metrics["ddp"][key] == pytest.approx(value, abs=1e-9), key
    queries = np.load(tmp_path / "ddp" / "embeddings" / "image" / "0" / "embeddings.npy", mmap_mode="r")
    assert np.flatnonzero(np.isnan(queries).all(axis=1)).tolist() == [3]
    assert wandb_exit_codes(tmp_path / "ddp") == [0]  # rank 1 ran the task too, but recorded nothing
    if script == "match.py":
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "ddp" / "matches.csv"),
            pd.read_csv(tmp_path / "one" / "matches.csv"),
        )
