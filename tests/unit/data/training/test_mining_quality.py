"""scripts/mining_quality.py: the label-free mining figures, with and without join_codes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).resolve().parents[4] / "scripts" / "mining_quality.py"


def _script():
    spec = importlib.util.spec_from_file_location("mining_quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_joined_codes_are_what_pairs_cards_whose_codes_are_written_differently() -> None:
    # two shops write each product's code their own way; the rest of the titles are the same generic words
    codes = [("VE-110", "VE110"), ("XR-220", "XR 220"), ("KT-330", "KT330"), ("MB-440", "MB 440")]
    rows = []
    for sku, (a, b) in enumerate(codes):
        rows.append({"title": f"exercise bike {a}", "dealer": "shop_a", "sku": f"s{sku}"})
        rows.append({"title": f"exercise bike {b}", "dealer": "shop_b", "sku": f"s{sku}"})
    database = pd.DataFrame(rows)
    joined = _script().quality(database, join_codes=True)
    split = _script().quality(database, join_codes=False)
    assert joined["pairs"] == 4 and joined["pair_precision"] == 1.0 and joined["coverage"] == 1.0
    assert joined["label_purity"] == 1.0
    assert split["pair_precision"] < 1.0 or split["coverage"] < 1.0
