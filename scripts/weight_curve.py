"""The weights curve of a two-channel concat fusion: every figure of the run at each weight of the first channel.

    python scripts/weight_curve.py --weights 0,0.2,0.4,0.5,0.6 --out curve.md -- \\
        experiment=product_fused_checkpoint data=synthetic_full ckpt_path=RUN/checkpoints/last.ckpt \\
        'retrieval.channels=[{encoder:model,view:image},{encoder:tfidf_word,view:title}]'

Everything after ``--`` is an ``evaluate.py`` override list (the channels must fuse by concat). The first channel
gets weight w and the second 1 - w; embeddings are computed once (the embedding cache) and every point reuses
them. Prints a markdown table of the headline keys (with the product protocol: over unseen products).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from prodmatch.layout import acc_key, match_key, retrieval_key
from prodmatch.tasks.resolvers import register_resolvers
from prodmatch.utils.config import config_path

KEYS = (
    retrieval_key("sku_recall@{k}"),
    retrieval_key("sku_mrr"),
    retrieval_key("sku_full_recall@{k}"),
    retrieval_key("sku_map@{k}"),
    match_key("f1"),
    acc_key("{k}"),
)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    split = args.index("--") if "--" in args else len(args)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--weights", required=True, help="comma-separated weights of the first channel, in [0, 1]"
    )
    parser.add_argument("--out", type=Path, help="also write the table here")
    opts = parser.parse_args(args[:split])
    firsts = [float(w) for w in opts.weights.split(",")]
    if any(not 0 <= w <= 1 for w in firsts):
        parser.error(f"--weights {opts.weights}: each weight must be in [0, 1]")

    from hydra.utils import instantiate

    from prodmatch.retrieval.evaluation import weight_curve
    from prodmatch.tasks import instantiators as inst

    register_resolvers()
    with tempfile.TemporaryDirectory(prefix="weight-curve-") as out_dir:
        with initialize_config_dir(config_path(), version_base="1.3"):
            cfg = compose("evaluate", overrides=[*args[split + 1 :], "logger=none"], return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = out_dir
        HydraConfig.instance().set_config(cfg)
        pipeline = instantiate(cfg.retrieval)
        if pipeline.fusion != "concat" or len(pipeline.channels) != 2:
            parser.error("the retrieval must fuse two channels by concat (retrieval.fusion=concat)")
        queries, database = inst.load_catalogs(cfg, pipeline.needs_images)
        rows = weight_curve(
            pipeline,
            queries,
            database,
            inst.evaluation_encoders(cfg, pipeline),
            [[w, 1.0 - w] for w in firsts],
            inst.embedding_cache(cfg),
        )
    k = pipeline.k
    labels = [ch.label for ch in pipeline.channels]
    keys = [key.format(k=k) for key in KEYS]
    lines = [f"| weight of {labels[0]} | " + " | ".join(keys) + " |", "| ---: |" + " ---: |" * len(keys)]
    lines += [
        f"| {row['weights'][0]:.2f} | "
        + " | ".join(f"{row.get(key, float('nan')):.4f}" for key in keys)
        + " |"
        for row in rows
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if opts.out:
        opts.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
