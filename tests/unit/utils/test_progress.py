from __future__ import annotations

from prodmatch.utils import progress


def test_a_progress_bar_names_the_stages_it_counts_for():
    assert progress.describe("images") == "images"
    with progress.stage("before fit"):
        with progress.stage("database"):
            assert progress.describe("images") == "images (before fit, database)"
        assert progress.describe("images") == "images (before fit)"
    assert progress.describe("images") == "images"
