"""Config checks that need no data run before a run dir or a W&B run exists, each failure one line."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from prodmatch.errors import ConfigError
from prodmatch.tasks import checks
from prodmatch.tasks.resolvers import register_resolvers
from tests.helpers.run import REPO_ROOT, run_script


def _cfg(*overrides: str):
    """The evaluate config as Hydra composes it for a run (with its `hydra` node)."""
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose("evaluate", overrides=list(overrides), return_hydra_config=True)


def test_an_index_backend_given_as_a_value_is_refused_with_a_valid_choice():
    with pytest.raises(ConfigError) as info:
        checks.check_config(_cfg("retrieval.index=faiss"))
    assert str(info.value).startswith(
        "retrieval.index=faiss is not a backend choice; choose one with retrieval/index=<name>, e.g. "
        "retrieval/index=faiss_"
    )
    assert "annoy, exact, faiss_hnsw" in str(info.value)
    with pytest.raises(ConfigError, match=r"choose it with retrieval/index=exact "):
        checks.check_config(_cfg("retrieval.index=exact"))
    checks.check_config(_cfg("retrieval/index=exact"))  # the group choice is fine


def test_a_backend_whose_package_is_missing_is_refused_before_anything_runs(monkeypatch):
    real = checks.importlib.util.find_spec
    monkeypatch.setattr(
        checks.importlib.util, "find_spec", lambda name: None if name == "faiss" else real(name)
    )
    with pytest.raises(ConfigError) as info:
        checks.check_config(_cfg("retrieval/index=faiss_hnsw"))
    assert str(info.value).startswith(
        "retrieval/index=faiss_hnsw needs the faiss package, which is not installed: pip install 'prodmatch[faiss]'"
    )


def test_a_typo_added_with_plus_is_caught_and_real_additions_pass():
    with pytest.raises(
        ConfigError, match=r"^\+retreival...: retreival is not a config key; did you mean retrieval"
    ):
        checks.check_config(_cfg("+retreival.k=20"))
    checks.check_config(_cfg("+my_note=1", "+data.extra=1", "+mining=title_tfidf"))


def test_data_csv_names_its_files_and_the_run_is_labelled_by_their_folder():
    with pytest.raises(
        ConfigError, match=r"^data=csv needs data.queries_csv=<your queries CSV> data.database_csv="
    ):
        checks.check_config(_cfg("data=csv"))
    cfg = _cfg("data=csv", "data.queries_csv=shop/q.csv", "data.database_csv=shop/d.csv")
    assert cfg.data.name == "shop" and list(cfg.logger.wandb.tags) == ["shop"]


def test_a_bad_choice_stops_the_entry_point_before_a_run_dir_or_wandb_exists(tmp_path):
    proc = run_script("evaluate.py", ["retrieval.index=faiss"], cwd=tmp_path, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: retrieval.index=faiss is not a backend choice;")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "logs").exists() and not (tmp_path / "wandb").exists()
