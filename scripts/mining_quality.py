"""Label-free mining quality against the SKUs, with and without ``join_codes``, for each catalog folder given.

    python scripts/mining_quality.py data/synthetic_full data/synthetic_hard

Mines as ``product_image_label_free`` does (title word TF-IDF, each dealer's mutual nearest card at cosine >= 0.5,
one card per dealer per pseudo-product) and prints pairs, pair precision, coverage and label purity. The SKUs are
read only to score the labels.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from prodmatch.data.training.mining import (
    mine_dealer_pairs,
    one_per_dealer_labels,
    pseudo_label_precision,
    pseudo_label_purity,
)
from prodmatch.encoders.tfidf import TfidfEncoder


def quality(database: pd.DataFrame, join_codes: bool, threshold: float = 0.5) -> dict[str, float]:
    """The mining figures of one catalog's database with ``join_codes`` set as given."""
    titles = database["title"].astype(str).tolist()
    encoder = TfidfEncoder(analyzer="word", ngram_range=(1, 1), dim=None, join_codes=join_codes)
    encoder.fit(titles)
    vectors = np.asarray(encoder.encode(titles).vectors, dtype=np.float32)
    dealers = database["dealer"].to_numpy()
    pairs = mine_dealer_pairs(vectors, dealers, threshold)
    labels = one_per_dealer_labels(pairs, dealers)
    skus = database["sku"].to_numpy()
    return {
        "pairs": len(pairs),
        "pair_precision": pseudo_label_precision(pairs, skus),
        "coverage": float((labels >= 0).mean()),
        "label_purity": pseudo_label_purity(labels, skus),
    }


def main(folders: list[str]) -> None:
    print("| catalog | join_codes | pairs | pair precision | coverage | label purity |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for folder in folders:
        database = pd.read_csv(Path(folder) / "comparable_data.csv")
        for join_codes in (True, False):
            q = quality(database, join_codes)
            print(
                f"| {Path(folder).name} | {str(join_codes).lower()} | {q['pairs']:,} | {q['pair_precision']:.3f} "
                f"| {q['coverage']:.3f} | {q['label_purity']:.3f} |"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
