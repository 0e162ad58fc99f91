"""Sentence-transformer fine-tuning on text pairs with sentence-transformers' own losses.

``loss=contrastive`` (the study's): ContrastiveLoss on (a, b, same) pairs (``datamodule/sampler=pairs``).
``loss=mnrl``: MultipleNegativesRankingLoss on (anchor, positive) pairs of different cards of the same product
(``datamodule/sampler=positives`` with ``label=sku``); the other positives of the batch are the negatives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from sentence_transformers.sentence_transformer.losses import (
    ContrastiveLoss,
    MultipleNegativesRankingLoss,
    SiameseDistanceMetric,
)

from prodmatch.data.catalog import TEXT_VIEWS
from prodmatch.data.training.pairs import pair_labels
from prodmatch.encoders.local_text import local_model_dir, local_sentence_model
from prodmatch.encoders.sentence import DEFAULT_MODEL, load_sentence_model
from prodmatch.encoders.text import TextEncoder
from prodmatch.errors import ConfigError
from prodmatch.models.base import ModuleEncoder, OptimizerFactory, ProdmatchModule, SchedulerFactory

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from prodmatch.data.catalog import Catalog

LOSS_ONE_MEANS = "same"  # sentence-transformers' ContrastiveLoss: label 1 pulls a pair together
DISTANCES = {"cosine": "COSINE_DISTANCE", "euclidean": "EUCLIDEAN", "manhattan": "MANHATTAN"}
LOSSES = {"contrastive": "pairs", "mnrl": "positives"}  # loss -> the batch layout (and sampler) it trains on


class SbertModule(ProdmatchModule):
    """Fine-tunes a SentenceTransformer on pairs of database texts (the datamodule's ``text_view``).

    ``pretrained=True`` loads ``model_name_or_path`` (hub id or local dir) at construction; ``pretrained=False``
    builds the tiny local model (tokenizer trained on the database's ``tokenizer_view`` texts, random BERT
    seeded by ``seed``) when training starts, or via :meth:`build_model`. ``local`` / ``cache_dir`` are the text
    encoders' settings of the same names. ``margin`` / ``distance`` configure sentence-transformers'
    ``ContrastiveLoss`` (its label 1 = SAME target; defaults are the library's); ``loss=mnrl`` trains with
    ``MultipleNegativesRankingLoss`` instead (``scale``: its cosine scale). ``local_model_dir`` is filled in
    when the local model is built and saved with the hyper-parameters, so ``load_from_checkpoint`` rebuilds it.
    """

    modality = "text"

    def __init__(
        self,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str | None = None,
        model_name_or_path: str = DEFAULT_MODEL,
        pretrained: bool = True,
        pooling: str = "cls",
        max_length: int = 256,
        local: dict[str, int] | None = None,
        cache_dir: str | None = None,
        tokenizer_view: str = "text_all",
        seed: int = 0,
        margin: float = 0.5,
        distance: str = "cosine",
        encode_batch_size: int = 64,
        local_model_dir: str | None = None,
        loss: str = "contrastive",
        scale: float = 20.0,
    ) -> None:
        super().__init__(optimizer, scheduler, scheduler_interval)
        if loss not in LOSSES:
            raise ConfigError(f"model.loss={loss!r} is unknown; use one of {', '.join(LOSSES)}")
        if distance not in DISTANCES:
            raise ConfigError(f"distance={distance!r} is unknown; use one of {', '.join(DISTANCES)}")
        if tokenizer_view not in TEXT_VIEWS:
            raise ConfigError(
                f"tokenizer_view={tokenizer_view!r} is unknown; use one of {', '.join(TEXT_VIEWS)}"
            )
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.hparams.local = dict(local or {})
        self.model: SentenceTransformer | None = None
        self._train_view: str | None = None
        if pretrained:
            self.model = self._finish(load_sentence_model(model_name_or_path, pooling=pooling, device="cpu"))
        elif local_model_dir is not None:
            # A checkpoint of a locally built model: the recorded dir holds its tokenizer and architecture.
            self.model = self._finish(load_sentence_model(local_model_dir, pooling=pooling, device="cpu"))

    # ------------------------------------------------------------------ model building

    def _finish(self, model: SentenceTransformer) -> SentenceTransformer:
        limit = getattr(model, "max_seq_length", None) or self.hparams.max_length
        model.max_seq_length = min(int(self.hparams.max_length), int(limit))
        # sentence-transformers pools the token embeddings itself: a BERT pooler head never gets a gradient,
        # and plain DDP rejects parameters without one. Frozen, it stays in the state dict unchanged.
        pooler = getattr(getattr(model[0], "auto_model", None), "pooler", None)
        if isinstance(pooler, torch.nn.Module):
            pooler.requires_grad_(False)
        return model.train(self.training)  # loaded models come in eval mode; follow the module's mode

    def _local_model(self, database: Catalog) -> SentenceTransformer:
        hp = self.hparams
        texts = database.texts(hp.tokenizer_view)
        model = local_sentence_model(texts, hp.cache_dir, hp.pooling, seed=hp.seed, device="cpu", **hp.local)
        # Recorded so that a checkpoint can reload the same tokenizer and architecture (see __init__).
        hp.local_model_dir = str(local_model_dir(texts, hp.cache_dir, hp.pooling, seed=hp.seed, **hp.local))
        return model

    def build_model(self, database: Catalog) -> SentenceTransformer:
        """Build (or reuse from ``cache_dir``) the local model for ``database`` when there is none yet."""
        if self.model is None:
            self.model = self._finish(self._local_model(database))
        return self.model

    def prepare_data(self) -> None:
        # Local rank 0 builds the local model into the cache first; setup() on every rank then only loads it.
        dm = self._datamodule()
        if self.model is None and dm is not None:
            self._local_model(dm.database)

    def batch_layouts(self) -> dict[str, str]:
        layout = LOSSES[self.hparams.loss]
        return {layout: layout}

    def setup(self, stage: str) -> None:
        dm = self._check_datamodule()
        if dm is not None:
            self._train_view = dm.text_view
            self.hparams.train_view = dm.text_view
            self.build_model(dm.database)
        if self.model is None:
            raise ConfigError(
                "SbertModule(pretrained=false) needs the database texts: train with a PairDataModule"
            )

    @property
    def train_view(self) -> str | None:
        """The datamodule's text view (recorded in the hyper-parameters, so checkpoints keep it)."""
        return self._train_view or self.hparams.get("train_view")

    # ------------------------------------------------------------------ training

    @property
    def st_loss(self) -> ContrastiveLoss | MultipleNegativesRankingLoss:
        """sentence-transformers' loss (``loss``) over the current model.

        Built on demand rather than stored: as a submodule it would register the model's weights twice.
        """
        model = self._require_model()
        if self.hparams.get("loss", "contrastive") == "mnrl":
            return MultipleNegativesRankingLoss(model, scale=self.hparams.scale)
        metric = getattr(SiameseDistanceMetric, DISTANCES[self.hparams.distance])
        return ContrastiveLoss(model, distance_metric=metric, margin=self.hparams.margin)

    def features(self, texts: list[str]) -> dict[str, Any]:
        """Tokenised batch on the module's device, with the model's own preprocessing."""
        feats = self._require_model().preprocess(list(texts))
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in feats.items()}

    def pair_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        features = [self.features(batch["a"]), self.features(batch["b"])]
        if self.hparams.get("loss", "contrastive") == "mnrl":
            return self.st_loss(features, None)  # b[i] is a's positive; the rest of b are its negatives
        labels = pair_labels(batch["same"], LOSS_ONE_MEANS).to(self.device)
        return self.st_loss(features, labels)

    # ------------------------------------------------------------------ retrieval

    def _require_model(self) -> SentenceTransformer:
        if self.model is None:
            raise ConfigError(
                "SbertModule(pretrained=false) has no model yet; call build_model(database) or trainer.fit first"
            )
        return self.model

    @property
    def encoder(self) -> ModuleEncoder:
        """The trained sentence model as a retrieval encoder (L2-normalised), embedding like evaluate.py."""
        hp = self.hparams
        inner = TextEncoder(
            model_name_or_path=hp.model_name_or_path,
            pretrained=hp.pretrained,
            pooling=hp.pooling,
            max_length=hp.max_length,
            batch_size=hp.encode_batch_size,
            device=str(self.device),
            model=self._require_model(),
        )
        return ModuleEncoder(inner, self)
