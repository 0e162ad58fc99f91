"""Nearest-neighbour index backends behind one interface (see :mod:`prodmatch.retrieval.index.base`).

``ExactIndex`` (torch, memory-bounded), ``AnnoyIndex`` (the default), ``FaissIndex`` (HNSW, IVF-Flat, IVF-PQ;
needs the ``faiss`` extra) and ``MilvusIndex`` (Milvus Lite or a Milvus server; needs the ``milvus`` extra); the
optional packages are imported only when such an index is made. ``sampled_recall`` measures an index against exact search.
"""

from prodmatch.retrieval.index.annoy import AnnoyIndex
from prodmatch.retrieval.index.base import (
    PAD_ID,
    PAD_SCORE,
    Index,
    as_matrix,
    check_k,
    pad_results,
    positive_int,
)
from prodmatch.retrieval.index.exact import ExactIndex
from prodmatch.retrieval.index.faiss import FaissIndex
from prodmatch.retrieval.index.milvus import MilvusIndex
from prodmatch.retrieval.index.recall import sample_rows, sampled_recall

__all__ = [
    "PAD_ID",
    "PAD_SCORE",
    "AnnoyIndex",
    "ExactIndex",
    "FaissIndex",
    "Index",
    "MilvusIndex",
    "as_matrix",
    "check_k",
    "pad_results",
    "positive_int",
    "sample_rows",
    "sampled_recall",
]
