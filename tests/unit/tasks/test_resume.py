"""`resume=true` reuses a finished run only for the same weights, never for the same path to other weights."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from prodmatch.tasks import resume
from prodmatch.tasks.resume import mark_done, record_initialisation, reusable_metrics
from tests.helpers.faults import replace_keeping_size_and_mtime

METRICS = {"retrieval/acc@10": 0.5}


def _cfg(tmp_path: Path, **extra) -> DictConfig:
    """A finished run's config, with its catalog and its metrics in ``tmp_path / 'run'``."""
    out = tmp_path / "run"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("q.csv", "db.csv"):
        (tmp_path / name).write_text("title,target\na,b\n")
    (out / "metrics.json").write_text(json.dumps(METRICS))
    base = {
        "task_name": "evaluate",
        "experiment_name": "x",
        "retrieval": {"k": 10},
        "paths": {"output_dir": str(out)},
        "data": {"queries_csv": str(tmp_path / "q.csv"), "database_csv": str(tmp_path / "db.csv")},
    }
    return OmegaConf.merge(base, extra)


def _model_file(tmp_path: Path, kind: str) -> tuple[Path, dict]:
    """A local model of ``kind`` and the config that names it."""
    if kind == "ckpt_path":
        path = tmp_path / "other" / "checkpoints" / "last.ckpt"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"weights-1" * 50)
        return path, {"ckpt_path": str(path)}
    if kind == "image weights file":
        path = tmp_path / "resnet18.pth"
        path.write_bytes(b"weights-1" * 50)
        return path, {"encoders": {"image": {"pretrained": True, "weights": str(path)}}}
    folder = tmp_path / "text-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    path = folder / "model.safetensors"
    path.write_bytes(b"weights-1" * 50)
    return path, {"encoders": {"text": {"model_name_or_path": str(folder)}}}


@pytest.mark.parametrize("kind", ["ckpt_path", "image weights file", "text model folder"])
def test_a_model_retrained_at_the_same_path_is_not_reused(tmp_path, caplog, kind):
    path, extra = _model_file(tmp_path, kind)
    cfg = _cfg(tmp_path, **extra)
    mark_done(cfg)
    assert reusable_metrics(cfg) == METRICS
    replace_keeping_size_and_mtime(path, b"weights-2" * 50)  # retrained: same path, size and mtime
    with caplog.at_level(logging.INFO, logger="prodmatch"):
        assert reusable_metrics(cfg) is None
    assert "its weights changed" in caplog.text


def test_a_hub_model_name_is_not_a_file(tmp_path):
    cfg = _cfg(tmp_path, encoders={"text": {"model_name_or_path": "sentence-transformers/all-MiniLM-L6-v2"}})
    assert resume.model_files(cfg) == {}
    mark_done(cfg)
    assert reusable_metrics(cfg) == METRICS


def test_a_fit_resumed_from_its_own_checkpoint_records_it_as_the_fit_left_it(tmp_path):
    """The fit rewrites the last.ckpt it resumed from: the same command again is the same finished run."""
    cfg = _cfg(tmp_path, task_name="train")
    own = tmp_path / "run" / "checkpoints" / "last.ckpt"
    own.parent.mkdir()
    own.write_bytes(b"epoch-1" * 50)
    cfg.ckpt_path = str(own)
    started = resume.start_fingerprints(cfg)
    own.write_bytes(b"epoch-2" * 50)  # what the resumed fit saves
    mark_done(cfg, started)
    assert reusable_metrics(cfg) == METRICS


@pytest.mark.parametrize("torn", ["done.json", "metrics.json"])
def test_a_torn_record_is_recomputed_never_a_traceback(tmp_path, torn):
    cfg = _cfg(tmp_path)
    mark_done(cfg)
    (tmp_path / "run" / torn).write_text('{"retrieval/acc')
    assert reusable_metrics(cfg) is None


def test_a_run_started_from_another_runs_checkpoint_records_where_from(tmp_path):
    path, extra = _model_file(tmp_path, "ckpt_path")
    cfg = _cfg(tmp_path, task_name="train", **extra)
    record_initialisation(cfg)
    record = json.loads((tmp_path / "run" / resume.INIT_FILE).read_text())
    assert record == {
        "ckpt_path": str(path.resolve()),
        "run_dir": str((tmp_path / "other").resolve()),
        "weights": resume.weights_digest(path),
    }
    resumed = _cfg(tmp_path / "own", task_name="train")  # resumed in its own run dir: nothing to record
    own = Path(resumed.paths.output_dir) / "checkpoints" / "last.ckpt"
    own.parent.mkdir()
    own.write_bytes(b"x")
    resumed.ckpt_path = str(own)
    record_initialisation(resumed)
    assert not (Path(resumed.paths.output_dir) / resume.INIT_FILE).exists()
