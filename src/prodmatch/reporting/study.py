"""The study's reported figures as data, and one table mapping experiment names to what they mean.

Every experiment config (``conf/experiment/<name>.yaml``) has one row in :data:`EXPERIMENTS`. A row that
corresponds to a row of the study's result tables carries the study's label and its Acc@10 (percent,
queries = company, database = comparable). Renaming an experiment means editing only this table.
"""

from __future__ import annotations

from dataclasses import dataclass

OFF_THE_SHELF = "off_the_shelf"
FINE_TUNED = "fine_tuned"
TABLES: tuple[str, ...] = (OFF_THE_SHELF, FINE_TUNED)
TABLE_TITLES: dict[str, str] = {OFF_THE_SHELF: "Off-the-shelf models", FINE_TUNED: "Fine-tuned models"}

# The study's visual check looked at these query rows (row positions in company_data.csv).
STUDY_QUERY_IDS: tuple[int, ...] = (0, 500, 621, 626)


@dataclass(frozen=True)
class Experiment:
    """One experiment name, its table, what it does, and the study's figure for it if the study has one."""

    name: str
    table: str
    description: str
    study_label: str | None = None
    study_acc10: float | None = None  # percent, as printed in the study


_OTS, _FT = OFF_THE_SHELF, FINE_TUNED

# fmt: off
EXPERIMENTS: tuple[Experiment, ...] = (
    # --- off-the-shelf: the study's first table, in its order --------------------------------------------
    Experiment("img", _OTS, "ResNet18 image embedding",
               "img (ResNet18)", 85.21),
    Experiment("title", _OTS, "sentence-encoder embedding of the title",
               "title (rubert-tiny2)", 73.21),
    Experiment("title_cat", _OTS, "sentence-encoder embedding of title + cat_1..3",
               "title_cat", 85.11),
    Experiment("text_all", _OTS, "sentence-encoder embedding of title + categories + characteristics",
               "text_all", 63.14),
    Experiment("img_title", _OTS, "concatenated image and title embeddings",
               "img + title (concat)", 85.18),
    Experiment("img_title_cat", _OTS, "concatenated image and title_cat embeddings",
               "img + title_cat (concat)", 84.91),
    Experiment("img40_title_rerank", _OTS, "image top-40, re-ranked by title cosine",
               "img top-40, re-ranked by title", 86.77),
    Experiment("img40_title_cat_rerank", _OTS, "image top-40, re-ranked by title_cat cosine",
               "img top-40, re-ranked by title_cat", 90.36),
    Experiment("title40_img_rerank", _OTS, "title top-40, re-ranked by image cosine",
               "title top-40, re-ranked by img", 71.00),
    # not in the study: character n-gram TF-IDF baselines
    Experiment("title_tfidf", _OTS, "TF-IDF (char n-grams, SVD) of the title"),
    Experiment("title_cat_tfidf", _OTS, "TF-IDF (char n-grams, SVD) of title + categories"),
    Experiment("text_all_tfidf", _OTS, "TF-IDF (char n-grams, SVD) of title + categories + characteristics"),
    # --- fine-tuned: the study's second table, in its order ----------------------------------------------
    Experiment("ft_img_contrastive", _FT, "siamese ResNet18, contrastive loss (margin 2)",
               "img, ResNet contrastive", 55.03),
    Experiment("ft_img_class", _FT, "ResNet18 classifier on the targets, penultimate-layer embedding",
               "img, ResNet classification", 94.55),
    Experiment("ft_title_sbert_v1", _FT, "title view, sentence encoder contrastive-tuned on titles (v1)",
               "title, SBERT trained on title (v1)", 87.03),
    Experiment("ft_title_cat_sbert_v1", _FT, "title_cat view, SBERT v1 (tuned on titles)",
               "title_cat, SBERT v1", 98.37),
    Experiment("ft_title_sbert_v2", _FT, "title view, sentence encoder contrastive-tuned on title_cat (v2)",
               "title, SBERT trained on title_cat (v2)", 85.54),
    Experiment("ft_title_cat_sbert_v2", _FT, "title_cat view, SBERT v2 (tuned on title_cat)",
               "title_cat, SBERT v2", 99.53),
    Experiment("ft_img_title_sbert_v1", _FT, "concat: off-the-shelf ResNet18 image + SBERT v1 title",
               "img + title, ResNet off-the-shelf + SBERT v1", 85.19),
    Experiment("ft_img_title_cat_sbert_v1", _FT, "concat: off-the-shelf ResNet18 image + SBERT v1 title_cat",
               "img + title_cat, same", 85.01),
    Experiment("ft_img40_title_rerank_sbert_v1", _FT, "image top-40, re-ranked by SBERT v1 title cosine",
               "img top-40 re-ranked by title, SBERT v1", 90.26),
    Experiment("ft_img40_title_cat_rerank_sbert_v1", _FT, "image top-40, re-ranked by SBERT v1 title_cat cosine",
               "img top-40 re-ranked by title_cat, SBERT v1", 93.45),
    # not in the study: it left the cosine-loss result open
    Experiment("ft_img_cos", _FT, "siamese ResNet18, cosine-similarity loss (MSE of cos to 1/0)"),
)
# fmt: on

_BY_NAME: dict[str, Experiment] = {e.name: e for e in EXPERIMENTS}
if len(_BY_NAME) != len(EXPERIMENTS):  # a copy-paste slip in the table above must not go unnoticed
    raise RuntimeError("prodmatch.reporting.study.EXPERIMENTS lists an experiment name twice")


def experiment(name: str) -> Experiment | None:
    """The table row for an experiment name, or None for a name the table does not know."""
    return _BY_NAME.get(name)


def study_rows() -> list[Experiment]:
    """The experiments that carry a study figure, in the study's table order."""
    return [e for e in EXPERIMENTS if e.study_acc10 is not None]


def study_figures() -> dict[str, float]:
    """Experiment name -> the study's Acc@10 (percent)."""
    return {e.name: e.study_acc10 for e in study_rows() if e.study_acc10 is not None}
