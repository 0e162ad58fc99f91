"""The checkpoints folder: an earlier attempt's files set aside for a fit from scratch, kept for a resumed one."""

from __future__ import annotations

from types import SimpleNamespace

from prodmatch.callbacks.checkpoint import EarlierAttemptAside


def _folder(tmp_path):
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    for name in ("last.ckpt", "epoch02.ckpt"):
        (ckpts / name).write_bytes(name.encode())
    return ckpts


def test_a_fit_from_scratch_moves_them_aside(tmp_path, caplog):
    ckpts = _folder(tmp_path)
    EarlierAttemptAside(ckpts).on_fit_start(SimpleNamespace(is_global_zero=True), None)
    assert not list(ckpts.glob("*.ckpt"))
    (aside,) = ckpts.glob("earlier-*")
    assert sorted(p.name for p in aside.iterdir()) == ["epoch02.ckpt", "last.ckpt"]
    assert (aside / "last.ckpt").read_bytes() == b"last.ckpt"
    assert "2 checkpoint(s) of an earlier attempt" in caplog.text


def test_a_resumed_fit_and_other_ranks_leave_them(tmp_path):
    ckpts = _folder(tmp_path)
    EarlierAttemptAside(ckpts, ckpt_path=ckpts / "last.ckpt").on_fit_start(
        SimpleNamespace(is_global_zero=True), None
    )
    EarlierAttemptAside(ckpts).on_fit_start(SimpleNamespace(is_global_zero=False), None)
    assert sorted(p.name for p in ckpts.iterdir()) == ["epoch02.ckpt", "last.ckpt"]


def test_an_empty_folder_stays_empty(tmp_path):
    EarlierAttemptAside(tmp_path / "checkpoints").on_fit_start(SimpleNamespace(is_global_zero=True), None)
    assert not (tmp_path / "checkpoints").exists()


def test_training_keeps_last_ckpt_only_unless_a_monitor_asks_for_the_best(compose_cfg):
    from hydra.utils import instantiate

    plain = instantiate(compose_cfg("train").callbacks.model_checkpoint)
    assert plain.save_last and plain.save_top_k == 0 and plain.monitor is None
    monitored = compose_cfg("train", ["callbacks.model_checkpoint.monitor=val/loss"])
    best = instantiate(monitored.callbacks.model_checkpoint)
    assert best.save_top_k == 1 and best.monitor == "val/loss" and best.filename == "best"
