"""The short human summary a run prints: Acc@k overall and per target, before vs after fit, plus extras."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prodmatch.layout import (
    BEFORE_FIT,
    FUSION_WEIGHT,
    SEEN,
    acc_key,
    ann_recall_name,
    match_key,
    retrieval_key,
)
from prodmatch.tasks.resolvers import checkpoint_run


def _extras(metrics: Mapping[str, Any], k: int) -> list[tuple[str, str, str]]:
    """(shown name, key, its seen/ key) of the other headline figures present in this run, in a fixed order."""
    names = [ann_recall_name(k), f"sku_recall@{k}", "sku_mrr", f"sku_full_recall@{k}", f"sku_map@{k}"]
    wanted = [(name, retrieval_key(name), retrieval_key(name, group=SEEN)) for name in names]
    wanted += [(name, match_key(name), match_key(name, group=SEEN)) for name in ("f1", "threshold")]
    return [row for row in wanted if isinstance(metrics.get(row[1]), (int, float))]


def _per_target(metrics: Mapping[str, Any], k: int) -> list[str]:
    """The query targets with an Acc@k of their own, sorted."""
    prefix = acc_key(k, "")  # "retrieval/acc@<k>/": what every per-target key starts with
    return sorted(name[len(prefix) :] for name in metrics if name.startswith(prefix))


def run_title(cfg: Any, index: str | None = None) -> str:
    """The summary's first line: experiment, data, index backend, the checkpoint's train run, the run dir."""
    extras = [f"index {index}"] if index else []
    if cfg.get("ckpt_path") and cfg.task_name != "train":
        run, trained = checkpoint_run(str(cfg.ckpt_path))
        extras.append(f"model of train run {run}" + (f" ({trained})" if trained else ""))
    said = f" ({', '.join(extras)})" if extras else ""
    return f"{cfg.experiment_name} on {cfg.data.name}{said}: {cfg.task_name} run in {cfg.paths.output_dir}"


def format_summary(title: str, metrics: Mapping[str, Any], k: int) -> str:
    """Acc@k overall and per target (two columns when before-fit keys exist), then the SKU and ANN figures."""
    if acc_key(k) not in metrics:
        return f"{title}\n(no retrieval metrics: the run stopped before its evaluation)"
    rows = [("overall", None)] + [(t, t) for t in _per_target(metrics, k)]
    lines = [title]
    if acc_key(k, stage=BEFORE_FIT) in metrics:
        lines.append(f"{f'Acc@{k}':<34}{'before fit':>12}{'after fit':>12}")
        for name, target in rows:
            before = metrics.get(acc_key(k, target, stage=BEFORE_FIT))
            shown = f"{100 * before:>11.2f}%" if isinstance(before, (int, float)) else f"{'—':>12}"
            lines.append(f"  {name:<32}{shown}{100 * metrics[acc_key(k, target)]:>11.2f}%")
    else:
        lines.append(f"{f'Acc@{k}':<34}{100 * metrics[acc_key(k)]:>11.2f}%")
        lines += [f"  {name:<32}{100 * metrics[acc_key(k, target)]:>11.2f}%" for name, target in rows[1:]]
    extras = _extras(metrics, k)
    if any(seen in metrics for _, _, seen in extras):
        # the product protocol: unseen (test) products beside the rest
        lines.append(f"{'product level':<34}{'unseen':>12}{'seen':>12}")
        for name, key, seen_key in extras:
            seen = metrics.get(seen_key)
            shown = f"{seen:>12.4f}" if isinstance(seen, (int, float)) else f"{'—':>12}"
            lines.append(f"  {name:<32}{metrics[key]:>12.4f}{shown}")
    else:
        lines += [f"{name:<34}{metrics[key]:>12.4f}" for name, key, _ in extras]
    weights = sorted(key for key in metrics if key.startswith(FUSION_WEIGHT))
    lines += [f"{'fusion weight ' + w[len(FUSION_WEIGHT) :]:<34}{metrics[w]:>12.4f}" for w in weights]
    return "\n".join(lines)
