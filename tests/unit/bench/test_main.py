"""``python -m prodmatch.bench`` dispatches on its mode flag."""

from __future__ import annotations

import sys
import types

import pytest

from prodmatch.bench.__main__ import main


def test_mode_flag_picks_the_module_and_is_removed(monkeypatch):
    seen = {}
    fake = types.ModuleType("prodmatch.bench.throughput")
    fake.main = lambda argv: seen.setdefault("argv", argv)
    monkeypatch.setitem(sys.modules, "prodmatch.bench.throughput", fake)
    main(["--throughput", "--images", "8"])
    assert seen["argv"] == ["--images", "8"]


def test_missing_mode_module_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "prodmatch.bench.throughput", None)
    with pytest.raises(SystemExit, match="--throughput needs prodmatch.bench.throughput"):
        main(["--throughput"])


def test_two_modes_are_refused():
    with pytest.raises(SystemExit, match="pick one"):
        main(["--scale", "--throughput"])
