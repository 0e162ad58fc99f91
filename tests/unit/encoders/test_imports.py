"""The TF-IDF path and the registry import without torch, torchvision, transformers or sentence-transformers."""

from __future__ import annotations

import json
import subprocess
import sys

LIGHT_MODULES = (
    "prodmatch.encoders.base",
    "prodmatch.encoders.cache",
    "prodmatch.utils.network",
    "prodmatch.encoders.registry",
    "prodmatch.encoders.tfidf",
    "prodmatch.data.images",
    "prodmatch.distributed.shards",
)
HEAVY = ("torch", "torchvision", "transformers", "sentence_transformers")


def test_light_modules_do_not_import_heavy_libraries():
    code = (
        "import importlib, json, sys\n"
        f"for name in {LIGHT_MODULES!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
