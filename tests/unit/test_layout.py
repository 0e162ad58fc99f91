"""The run layout module against the artifact contract in the docs, the configs and the code.

``prodmatch.layout`` owns every file and folder name of a run and every metric key builder: the README's "Run
artifacts" section may only name what it defines (and must name every file a run always writes), the configs
may only put its names under the run dir and the cache dir, and no other module spells them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from prodmatch import layout
from prodmatch.retrieval.artifacts import MATCH_COLUMNS
from prodmatch.retrieval.metrics import SKU_KEYS

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "prodmatch"
K = 10
FAMILIES = (layout.RETRIEVAL, layout.MATCH, layout.DATA, layout.SPLIT, layout.FUSION_WEIGHT)
PREFIXES = (*FAMILIES, layout.BEFORE_FIT, layout.EPOCH, layout.SEEN)
# Names a run dir holds that other libraries choose: Lightning's CSV logger file.
FOREIGN_FILES = {"metrics.csv"}


def contract_text() -> str:
    """The artifact contract: docs/ARTIFACTS.md where it exists, else the README's "Run artifacts" section."""
    artifacts = ROOT / "docs" / "ARTIFACTS.md"
    if artifacts.is_file():
        return artifacts.read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^### Run artifacts \(the contract\)\n(.*?)(?=^#{2,3} )", readme, re.S | re.M)
    assert match, "README.md has no '### Run artifacts (the contract)' section"
    return match.group(1)


def code_spans(text: str) -> list[str]:
    return [span.strip() for span in re.findall(r"`([^`]+)`", text)]


def layout_names() -> set[str]:
    """Every file and folder name the layout module defines."""
    return {
        value
        for name, value in vars(layout).items()
        if name.endswith(("_FILE", "_DIR")) and isinstance(value, str)
    }


def known_keys() -> set[str]:
    """The contract's metric keys at k=10, with the docs' placeholders for targets, groups and channels."""
    names = [layout.acc_name(K), layout.acc_name(K, "<target>"), layout.ann_recall_name(K)]
    names += [layout.ANN_RECALL_SAMPLE, *(key.format(k=K) for key in SKU_KEYS)]
    keys = set()
    for stage in layout.STAGES:
        for group in ("", layout.SEEN):
            keys |= {layout.retrieval_key(name, stage, group) for name in names}
            keys |= {layout.match_key(n, stage, group) for n in ("precision", "recall", "f1", "threshold")}
        keys |= {layout.split_key("<group>", stage), layout.fusion_weight_key("<channel>", stage)}
    return keys


def test_every_metric_key_the_contract_names_is_built_by_the_layout():
    keys = known_keys()
    for span in code_spans(contract_text()):
        if not span.startswith(PREFIXES) or " " in span:
            continue
        if span.endswith(("/*", "/...")) or span in PREFIXES:  # a family or a prefix as a whole
            assert span.rstrip("*.").startswith(PREFIXES), span
        else:
            assert span in keys, f"the contract names {span!r}, which no layout builder makes"


def test_every_file_the_contract_names_is_a_layout_name_and_every_contract_file_is_named():
    names = layout_names() | FOREIGN_FILES
    spans = code_spans(contract_text())
    for span in spans:
        if "<" in span or " " in span or "=" in span or span.startswith(PREFIXES):
            continue
        if re.fullmatch(r"[\w.]+(/[\w.]+)*(\.(json|csv|ckpt|yaml)|/)", span):
            parts = span.rstrip("/").split("/")
            assert all(part in names for part in parts), f"{span!r}: not a name of prodmatch.layout"
    named = {part for span in spans for part in span.rstrip("/").split("/")}
    assert set(layout.CONTRACT_FILES) <= named, set(layout.CONTRACT_FILES) - named


def test_the_matches_columns_of_the_contract_are_the_code_s():
    text = contract_text()
    listed = re.search(r"`(query_idx, rank, db_idx, [^`]+)`", text)
    assert listed, "the contract does not list the matches.csv columns"
    assert tuple(c.strip() for c in listed.group(1).split(",")) == MATCH_COLUMNS


def test_configs_put_only_layout_names_under_the_run_dir_and_the_cache_dir():
    names = layout_names()
    cache = {layout.EMBEDDING_CACHE_DIR, layout.PIXEL_CACHE_DIR, layout.TEXT_MODEL_CACHE_DIR}
    for path in sorted((ROOT / "conf").rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        for under in re.findall(r"\$\{paths\.output_dir\}/([\w.]+)", text):
            assert under in names, f"{path.name}: ${{paths.output_dir}}/{under} is not a layout name"
        for under in re.findall(r"\$\{paths\.cache_dir\}/([\w.]+)", text):
            assert under in cache, f"{path.name}: ${{paths.cache_dir}}/{under} is not a layout cache dir"
        for metric in re.findall(r"optimized_metric: (\S+)", text):
            assert metric.startswith(layout.RETRIEVAL), f"{path.name}: optimized_metric {metric}"


def _string_constants(tree: ast.AST) -> list[tuple[int, str]]:
    """The string literals of a module, docstrings left out."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_but_the_layout_spells_a_run_file_or_a_metric_prefix(path: Path):
    if path == SRC / "layout.py":
        return
    files = {name for name in layout_names() if "." in name}  # metrics.json, last.ckpt, ...
    # "data/" also starts paths ("data/synthetic"): the data keys' builder is checked by the contract test
    prefixes = tuple(p for p in PREFIXES if p != layout.DATA)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for line, value in _string_constants(tree):
        assert value not in files, f"{path.name}:{line} spells {value!r}; import it from prodmatch.layout"
        # a message naming a config group (``retrieval/index=milvus needs ...``) is no metric key: keys hold no space
        assert not value.startswith(prefixes) or " " in value, (
            f"{path.name}:{line} spells the metric prefix of {value!r}; build it with prodmatch.layout"
        )
