"""train.py end to end on the tiny catalog: callback metrics, artifacts, checkpoints, sweeps, W&B runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from prodmatch.callbacks.retrieval import SHARDS_DIR
from prodmatch.evaluate import evaluate
from prodmatch.train import train
from tests.helpers.run import cli_overrides, run_script, wandb_exit_codes

# A few steps only: these tests check wiring and contracts, not learning (tests/unit/models does that).
FAST = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=1",
    "datamodule.sampler.pairs_per_epoch=48",
    "datamodule.batch_size=16",
    "log_examples=2",
    "trainer.log_every_n_steps=1",
]


def _check_train_artifacts(out: Path, targets: set[str]) -> dict[str, float]:
    metrics = json.loads((out / "metrics.json").read_text())
    for prefix in ("", "before_fit/"):
        assert 0 <= metrics[f"{prefix}retrieval/acc@10"] <= 1
        assert {f"{prefix}retrieval/acc@10/{t}" for t in targets} <= set(metrics)
        assert {f"{prefix}retrieval/ann_recall@10", f"{prefix}retrieval/sku_recall@10"} <= set(metrics)
    assert (out / "checkpoints" / "last.ckpt").is_file()
    import torch

    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["prodmatch_model_config"]["_target_"].startswith("prodmatch.models.")
    assert len(pd.read_csv(out / "matches.csv")) > 0
    return metrics


@pytest.mark.parametrize("model", ["resnet_contrastive", "resnet_class", "sbert"])
def test_train_writes_metrics_and_a_checkpoint_that_evaluates_identically(
    compose_cfg, tiny_catalogs, tmp_path, model
):
    cfg = compose_cfg("train", [f"model={model}", *FAST])
    returned = train(cfg).metrics
    metrics = _check_train_artifacts(tmp_path, set(tiny_catalogs[0].targets))
    assert returned == pytest.approx(metrics)
    assert wandb_exit_codes(tmp_path) == [0]
    # no monitor: last.ckpt only, no best
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last.ckpt"]
    csv = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    assert {"train/loss", "val/loss", "before_fit/retrieval/acc@10", "retrieval/acc@10"} <= set(csv.columns)

    # evaluate.py on the last checkpoint embeds exactly as the callback did at fit end.
    view = "image" if model.startswith("resnet") else "title"
    eval_dir = tmp_path / "eval"
    eval_cfg = compose_cfg(
        "evaluate",
        [
            f"ckpt_path={tmp_path}/checkpoints/last.ckpt",
            f"experiment={'img' if view == 'image' else 'title'}",
            "logger=none",
            "cache=false",
            f"paths.output_dir={eval_dir}",
        ],
    )
    evaluated = evaluate(eval_cfg).metrics
    for key in ("retrieval/acc@10", "retrieval/sku_mrr"):
        assert evaluated[key] == pytest.approx(metrics[key], abs=1e-9), key


def test_evaluate_of_a_bad_checkpoint_path_is_a_clear_error(compose_cfg, tmp_path):
    cfg = compose_cfg("evaluate", [f"ckpt_path={tmp_path}/missing.ckpt", "logger=none"])
    with pytest.raises(SystemExit):
        evaluate(cfg)


def test_failed_job_marks_its_wandb_run_failed(compose_cfg, tmp_path):
    cfg = compose_cfg("evaluate", ["retrieval.channels=[{encoder: clip, view: title}]"])
    with pytest.raises(SystemExit):
        evaluate(cfg)
    assert wandb_exit_codes(tmp_path) == [1]


def test_resume_from_checkpoint(compose_cfg, tmp_path):
    import torch

    cfg = compose_cfg("train", ["model=resnet_cos", *FAST, "logger=none"])
    train(cfg)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    first = torch.load(ckpt, map_location="cpu", weights_only=True)
    resumed = compose_cfg(
        "train",
        ["model=resnet_cos", *FAST, "trainer.max_epochs=2", "logger=none", f"ckpt_path={ckpt}"],
    )
    train(resumed)
    second = torch.load(ckpt, map_location="cpu", weights_only=True)
    # Exactly one more epoch of steps, not a restart (Lightning stamps `epoch` differently at epoch and train end).
    assert second["global_step"] == 2 * first["global_step"] and second["epoch"] > first["epoch"]


def test_sweep_runs_one_job_and_one_finished_wandb_run_per_model(tiny_data_dir, tmp_path):
    # As a user types it: no path overrides besides the data, run from the project dir (here tmp_path).
    args = cli_overrides(tiny_data_dir, tmp_path, root=False)
    proc = run_script(
        "train.py",
        [
            "-m",
            "model=resnet_contrastive,resnet_cos",
            *args,
            *FAST,
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted((tmp_path / "multirun").glob("*/*/*/metrics.json"))
    assert len(jobs) == 2
    groups = set()
    for metrics_path in jobs:
        job = metrics_path.parent
        _check_train_artifacts(job, set())
        assert wandb_exit_codes(job) == [0]
        # The W&B run's config (logged at init) names its group: one group for the whole sweep.
        debug = next(job.glob("wandb/offline-run-*/logs/debug.log")).read_text()
        groups.add(re.search(r"'group': '([^']+)'", debug).group(1))
    assert len(groups) == 1
    assert len({j.parent.parent for j in jobs}) == 1, "both jobs live in one sweep dir"
    import torch

    losses = {
        torch.load(j.parent / "checkpoints" / "last.ckpt", weights_only=True)["prodmatch_model_config"][
            "loss"
        ]["_target_"]
        for j in jobs
    }
    assert losses == {
        "prodmatch.models.losses.ContrastiveLoss",
        "prodmatch.models.losses.CosineSimilarityLoss",
    }


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_matches_single_process_evaluation(tiny_data_dir, tmp_path):
    """The callback's shards (each rank embeds its rows to disk, rank 0 merges them in catalog order) give the
    metrics one process gets from the same weights; the shard folder is gone afterwards."""
    args = cli_overrides(tiny_data_dir, tmp_path)
    proc = run_script("train.py", ["trainer=ddp_cpu", *args, *FAST, "logger=csv"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    ddp_metrics = json.loads((run_dir / "metrics.json").read_text())
    assert not (run_dir / SHARDS_DIR).exists()
    proc = run_script(
        "evaluate.py",
        [
            *args,
            f"ckpt_path={run_dir}/checkpoints/last.ckpt",
            "experiment=img",
            "logger=none",
            "cache=false",
            f"paths.output_dir={tmp_path}/eval",
            f"hydra.run.dir={tmp_path}/eval",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for key, value in single.items():
        assert ddp_metrics[key] == pytest.approx(value, abs=1e-9), key


def test_product_experiment_scores_unseen_and_seen_products_before_and_after_fit(compose_cfg, tmp_path):
    fast = [a for a in FAST if "pairs_per_epoch" not in a]  # a setting of the pairs sampler only
    cfg = compose_cfg("train", ["experiment=product_arcface", *fast, "logger=none"])
    train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for prefix in ("", "before_fit/"):
        for key in ("retrieval/sku_mrr", "retrieval/sku_map@10", "match/f1", "match/threshold"):
            assert {f"{prefix}{key}", f"{prefix}seen/{key}"} <= set(metrics), key
    assert "query_split" in pd.read_csv(tmp_path / "matches.csv").columns


def test_fused_product_experiment_reproduces_from_its_checkpoint(compose_cfg, tmp_path):
    """product_fused trains the SupCon image net, then fuses its embedding with the title and whole-card TF-IDF
    at weights chosen on validation; evaluating its checkpoint with product_fused_checkpoint gives the same
    figures."""
    fast = [a for a in FAST if "pairs_per_epoch" not in a]  # a setting of the pairs sampler only
    cfg = compose_cfg("train", ["experiment=product_fused", *fast, "logger=none"])
    train(cfg)
    trained = json.loads((tmp_path / "metrics.json").read_text())
    channels = ("image", "title:tfidf_word", "text_all:tfidf_word")
    weights = [trained[f"fusion/weight/{c}"] for c in channels]
    assert sum(weights) == pytest.approx(1.0)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    cfg = compose_cfg(
        "evaluate",
        [
            "experiment=product_fused_checkpoint",
            f"ckpt_path={ckpt}",
            "logger=none",
            f"paths.output_dir={tmp_path / 'eval'}",
        ],
    )
    again = evaluate(cfg).metrics
    for key in ("retrieval/sku_recall@10", "retrieval/sku_mrr", "match/f1", "seen/retrieval/sku_mrr"):
        assert again[key] == pytest.approx(trained[key], abs=1e-9), key
    assert [again[f"fusion/weight/{c}"] for c in channels] == pytest.approx(weights)


@pytest.mark.slow
def test_fused_product_trains_the_same_net_as_the_supcon_experiment(compose_cfg, tmp_path):
    """make reproduce-product evaluates product_fused from product_image_supcon's checkpoint instead of training
    it again: both experiments train bit-identical weights (the fused channels change evaluation only)."""
    fast = [a for a in FAST if "pairs_per_epoch" not in a]
    nets = []
    for name in ("product_image_supcon", "product_fused"):
        out = tmp_path / name
        train(compose_cfg("train", [f"experiment={name}", *fast, "logger=none", f"paths.output_dir={out}"]))
        nets.append(torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True))
    first, second = (n["state_dict"] for n in nets)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_a_finished_training_run_is_reused_by_resume(compose_cfg, tmp_path):
    """train.py settles datamodule.modality=auto in place; the done marker is the config as composed, so the
    same run again is reused rather than retrained."""
    overrides = ["model=resnet_cos", *FAST, "logger=none", "resume=true"]
    first = train(compose_cfg("train", overrides)).metrics
    stamp = (tmp_path / "metrics.json").stat().st_mtime_ns
    assert train(compose_cfg("train", overrides)).metrics == pytest.approx(first)
    assert (tmp_path / "metrics.json").stat().st_mtime_ns == stamp


def test_callback_also_evaluates_every_n_epochs(compose_cfg, tmp_path, monkeypatch):
    from prodmatch.callbacks.retrieval import RetrievalCallback
    from prodmatch.encoders.image_embedder import ImageBatchEmbedder

    calls = []
    real = RetrievalCallback.evaluate
    monkeypatch.setattr(
        RetrievalCallback,
        "evaluate",
        lambda self, *a, **kw: calls.append(kw["stage"]) or real(self, *a, **kw),
    )
    decoding_passes = []  # (evaluation, images) of each pass that decodes JPEGs
    real_loader = ImageBatchEmbedder.loader
    monkeypatch.setattr(
        ImageBatchEmbedder,
        "loader",
        lambda self, paths, device: (
            decoding_passes.append((len(calls), len(paths))) or real_loader(self, paths, device)
        ),
    )
    cfg = compose_cfg(
        "train",
        [
            "model=resnet_cos",
            *FAST,
            "trainer.max_epochs=2",
            "logger=csv",
            "callbacks.retrieval.every_n_epochs=1",
        ],
    )
    train(cfg)
    csv = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    per_epoch = csv["epoch/retrieval/acc@10"].dropna()
    assert len(per_epoch) == 2
    # The last periodic evaluation sees the same weights as the fit-end one.
    final = json.loads((tmp_path / "metrics.json").read_text())["retrieval/acc@10"]
    assert per_epoch.iloc[-1] == pytest.approx(final)
    # ... so the fit-end figures are that evaluation's, not a second embedding of the catalogs
    assert calls == ["before_fit/", "epoch/", "epoch/"]
    # Only the first evaluation decodes the images (queries, database); the later ones read the pixel store.
    assert [evaluation for evaluation, _ in decoding_passes] == [1, 1]
    assert len(list((tmp_path / "cache" / "pixels").glob("pixels-32-*.status.npy"))) == 2


def test_a_fit_from_scratch_sets_an_earlier_attempts_checkpoints_aside(compose_cfg, tmp_path):
    """An unfinished job run again in its own dir: checkpoints/last.ckpt is the new fit's, not the earlier one's
    (Lightning alone would write last-v1.ckpt beside it)."""
    import torch

    base = ["model=resnet_cos", *FAST, "logger=none"]
    ckpts = tmp_path / "checkpoints"
    train(compose_cfg("train", [*base, "seed=1"]))
    first = torch.load(ckpts / "last.ckpt", weights_only=True)["state_dict"]
    train(compose_cfg("train", [*base, "seed=2"]))
    assert not list(ckpts.glob("*-v1.ckpt"))
    (aside,) = ckpts.glob("earlier-*")
    key = next(k for k in first if k.endswith("conv1.weight"))
    kept = torch.load(aside / "last.ckpt", weights_only=True)["state_dict"]
    second = torch.load(ckpts / "last.ckpt", weights_only=True)["state_dict"]
    assert torch.equal(kept[key], first[key]) and not torch.equal(second[key], first[key])
