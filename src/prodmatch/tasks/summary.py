"""The short human summary a run prints: Acc@k overall and per target, before vs after fit, plus extras."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

BEFORE_FIT = "before_fit/"
SEEN = "seen/"  # the product protocol's train and val products
FUSION_WEIGHT = "fusion/weight/"


def _extras(metrics: Mapping[str, Any], k: int) -> list[str]:
    """The other headline keys present in this run, in a fixed order."""
    wanted = [f"retrieval/ann_recall@{k}", f"retrieval/sku_recall@{k}", "retrieval/sku_mrr"]
    wanted += [f"retrieval/sku_full_recall@{k}", f"retrieval/sku_map@{k}", "match/f1", "match/threshold"]
    return [key for key in wanted if isinstance(metrics.get(key), (int, float))]


def format_summary(title: str, metrics: Mapping[str, Any], k: int) -> str:
    """Acc@k overall and per target (two columns when before-fit keys exist), then the SKU and ANN figures."""
    key = f"retrieval/acc@{k}"
    if key not in metrics:
        return f"{title}\n(no retrieval metrics: the run stopped before its evaluation)"
    targets = sorted(name[len(key) + 1 :] for name in metrics if name.startswith(key + "/"))
    rows = [("overall", key)] + [(t, f"{key}/{t}") for t in targets]
    lines = [title]
    if BEFORE_FIT + key in metrics:
        lines.append(f"{f'Acc@{k}':<34}{'before fit':>12}{'after fit':>12}")
        for name, m in rows:
            before = metrics.get(BEFORE_FIT + m)
            shown = f"{100 * before:>11.2f}%" if isinstance(before, (int, float)) else f"{'—':>12}"
            lines.append(f"  {name:<32}{shown}{100 * metrics[m]:>11.2f}%")
    else:
        lines.append(f"{f'Acc@{k}':<34}{100 * metrics[key]:>11.2f}%")
        lines += [f"  {name:<32}{100 * metrics[m]:>11.2f}%" for name, m in rows[1:]]
    extras = _extras(metrics, k)
    if any(
        SEEN + m in metrics for m in extras
    ):  # the product protocol: unseen (test) products beside the rest
        lines.append(f"{'product level':<34}{'unseen':>12}{'seen':>12}")
        for m in extras:
            seen = metrics.get(SEEN + m)
            shown = f"{seen:>12.4f}" if isinstance(seen, (int, float)) else f"{'—':>12}"
            lines.append(f"  {m.split('/', 1)[1]:<32}{metrics[m]:>12.4f}{shown}")
    else:
        lines += [f"{m.split('/', 1)[1]:<34}{metrics[m]:>12.4f}" for m in extras]
    weights = sorted(name for name in metrics if name.startswith(FUSION_WEIGHT))
    lines += [f"{'fusion weight ' + w[len(FUSION_WEIGHT) :]:<34}{metrics[w]:>12.4f}" for w in weights]
    return "\n".join(lines)
