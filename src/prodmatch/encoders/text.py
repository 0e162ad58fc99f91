"""Sentence embeddings through sentence-transformers: a hub id, a local model dir, or a tiny locally built model.

Every model, including the locally built one, is loaded by :func:`load_sentence_model`, so the tests exercise the
same loading code that users' hub ids and local dirs go through.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from prodmatch.data.catalog import TEXT_VIEWS
from prodmatch.encoders.base import (
    catalog_texts,
    file_identity,
    l2_normalize,
    resolve_device,
    short_reason,
    stable_hash,
    texts_hash,
)
from prodmatch.errors import ConfigError, WeightsUnavailableError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from prodmatch.data.catalog import Catalog

__all__ = [
    "DEFAULT_MODEL",
    "LOCAL_DEFAULTS",
    "TextEncoder",
    "build_local_sentence_model",
    "default_cache_dir",
    "hub_offline_by_env",
    "hub_reachable",
    "load_sentence_model",
    "local_model_dir",
    "local_model_key",
    "local_sentence_model",
    "set_pooling",
]

log = logging.getLogger("prodmatch.encoders")

DEFAULT_MODEL = "cointegrated/rubert-tiny2"
MODEL_KEY = "encoders.text.model_name_or_path"  # the config key users set to point at a local model dir
POOLING_MODES = ("cls", "mean")
# Architecture of the locally built model (pretrained=false): tiny, so tests and offline demos run in seconds.
LOCAL_DEFAULTS: dict[str, int] = {
    "hidden_size": 128,
    "num_layers": 2,
    "heads": 2,
    "intermediate_size": 256,
    "max_position": 256,
    "vocab_size": 8000,
}
_LOCAL_FORMAT = 1  # bump when the locally built model changes, so cached dirs are rebuilt
_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# huggingface_hub retries a failed request 5 times with backoff (~20 s per file, several files per model):
# a quick probe tells "offline" apart before that starts.
PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_offline_by_env() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE set now (the hub library reads them only once, at import)."""
    if any(os.environ.get(name, "").upper() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    from huggingface_hub import constants

    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """One HEAD request to the hub endpoint (proxies honoured) with a short timeout, no retries."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure (DNS, refused, timeout, TLS, offline mode) means unreachable
        return False
    return True


def _is_local_path(name: str) -> bool:
    """A path rather than a hub id ("org/name"): exists, or is spelled like a path."""
    if Path(name).expanduser().exists():
        return True
    return name.startswith(("/", "./", "../", "~", "\\")) or name.count("/") > 1 or "\\" in name


def _unavailable(what: str, reason: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"{what} could not be loaded: {reason}; pass {MODEL_KEY}=/path/to/{DEFAULT_MODEL.split('/')[-1]} "
        "(a local copy of the model dir), or run with pretrained=false (tiny local model, random init)"
    )


@contextmanager
def _quiet_loading(quiet: bool = True) -> Iterator[None]:
    """Hide transformers' per-load progress bars (noise for a local model that loads in milliseconds)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    if quiet and was_enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet and was_enabled:
            hf_logging.enable_progress_bar()


def _sentence_transformer(name: str, device: str, local_only: bool) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    with _quiet_loading(quiet=local_only):  # a download keeps its progress bar
        return SentenceTransformer(name, device=device, local_files_only=local_only)


def _token_dim(model: SentenceTransformer) -> int:
    first = model[0]
    for attr in ("get_embedding_dimension", "get_word_embedding_dimension"):
        getter = getattr(first, attr, None)
        if callable(getter):
            return int(getter())
    raise ConfigError(
        f"cannot tell the token embedding size of {type(first).__name__}; use a transformer model"
    )


def set_pooling(model: SentenceTransformer, pooling: str | None) -> SentenceTransformer:
    """Replace the model's pooling module with ``pooling`` (cls | mean); None keeps the model's own."""
    if pooling is None:
        return model
    if pooling not in POOLING_MODES:
        raise ConfigError(f"pooling={pooling!r} is not supported; use one of {', '.join(POOLING_MODES)}")
    from sentence_transformers.sentence_transformer.modules import Pooling

    for name, module in model.named_children():
        if isinstance(module, Pooling):
            model._modules[name] = Pooling(_token_dim(model), pooling_mode=pooling)
            return model
    log.warning("model %s has no pooling module; pooling=%s ignored", type(model[0]).__name__, pooling)
    return model


def load_sentence_model(
    model_name_or_path: str | Path,
    *,
    pooling: str | None = "cls",
    max_length: int | None = None,
    device: str = "auto",
) -> SentenceTransformer:
    """SentenceTransformer from a hub id (cached or downloaded) or a local dir; WeightsUnavailableError if not.

    Offline (HF_HUB_OFFLINE set, or the hub does not answer within seconds) only the local cache is used, so a
    missing model fails at once instead of after minutes of retries.
    """
    name = str(model_name_or_path)
    target = str(resolve_device(device))
    if _is_local_path(name):
        path = Path(name).expanduser()
        what = f"text model dir {path}"
        if not path.is_dir():
            raise _unavailable(what, "no such directory")
        source, local_only, offline_note = str(path), True, None
    else:
        what = f"text model '{name}'"
        local_only = hub_offline_by_env() or not hub_reachable()
        source = name
        offline_note = (
            "not in the local Hugging Face cache and the hub is unreachable (offline)" if local_only else None
        )
    try:
        model = _sentence_transformer(source, target, local_only)
    except (OSError, ValueError, RuntimeError, KeyError, ImportError) as err:
        raise _unavailable(what, offline_note or short_reason(err)) from err
    set_pooling(model, pooling)
    if max_length is not None:
        model.max_seq_length = int(max_length)
    return model


def _check_local(local: dict[str, Any]) -> dict[str, int]:
    unknown = sorted(set(local) - set(LOCAL_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in the local text model config; known: {', '.join(LOCAL_DEFAULTS)}"
        )
    cfg = {**LOCAL_DEFAULTS, **{k: int(v) for k, v in local.items()}}
    if cfg["hidden_size"] % cfg["heads"]:
        raise ConfigError(
            f"local text model: hidden_size={cfg['hidden_size']} must be divisible by heads={cfg['heads']}"
        )
    return cfg


def _wordpiece_vocab(words: Counter[str], vocab_size: int) -> list[str]:
    """Special tokens, every character (word-initial and ``##``-continuation), then the most frequent whole
    words, word-initial prefixes and ``##`` suffixes, up to ``vocab_size``.

    Ranked by (count, length, text), so the same corpus always gives the same vocabulary. (The ``tokenizers``
    WordPiece trainer breaks ties between equally frequent merges in hash-map order, which changes from run to
    run; a reproducible local model needs a reproducible vocabulary.)
    """
    chars = sorted({c for word in words for c in word})
    base = [*_SPECIAL_TOKENS, *chars, *(f"##{c}" for c in chars)]
    pieces: Counter[str] = Counter()
    for word, count in words.items():
        pieces[word] += count
        for cut in range(2, len(word)):
            pieces[word[:cut]] += count
        for cut in range(1, len(word) - 1):
            pieces[f"##{word[cut:]}"] += count
    known = set(base)
    ranked = sorted((p for p in pieces if p not in known), key=lambda p: (-pieces[p], -len(p), p))
    return base + ranked[: max(0, vocab_size - len(base))]


def _train_tokenizer(texts: Sequence[str], vocab_size: int, max_position: int) -> Any:
    """A BERT-style WordPiece tokenizer (``tokenizers``) whose vocabulary comes from ``texts``.

    Lower-cased with accents kept (Cyrillic й/ё are distinct letters); split like BERT's pre-tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = Counter(
        word for text in texts for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
    )
    vocab = {token: i for i, token in enumerate(_wordpiece_vocab(words, vocab_size))}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_position,
    )


def build_local_sentence_model(
    texts: Sequence[str], out_dir: str | Path, pooling: str = "cls", *, seed: int = 0, **local: int
) -> SentenceTransformer:
    """Train a WordPiece tokenizer on ``texts``, build a small random BERT (seeded), save a sentence-transformers
    dir at ``out_dir`` and load it back through :func:`load_sentence_model`.

    ``local`` overrides :data:`LOCAL_DEFAULTS` (hidden_size, num_layers, heads, intermediate_size, max_position,
    vocab_size). The same texts, config and seed give the same weights.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel

    cfg = _check_local(local)
    if pooling not in POOLING_MODES:
        raise ConfigError(f"pooling={pooling!r} is not supported; use one of {', '.join(POOLING_MODES)}")
    texts = [t for t in texts if t]
    if not texts:
        raise ConfigError("cannot build a local text model from an empty corpus; the catalogs have no text")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        tokenizer = _train_tokenizer(texts, cfg["vocab_size"], cfg["max_position"])
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=cfg["hidden_size"],
            num_hidden_layers=cfg["num_layers"],
            num_attention_heads=cfg["heads"],
            intermediate_size=cfg["intermediate_size"],
            max_position_embeddings=cfg["max_position"],
            pad_token_id=tokenizer.pad_token_id,
        )
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG stream
            torch.manual_seed(seed)
            bert = BertModel(config)
        hf_dir, st_dir = work / "hf", work / "st"
        with _quiet_loading():
            tokenizer.save_pretrained(hf_dir)
            bert.save_pretrained(hf_dir)
            transformer = Transformer(str(hf_dir), max_seq_length=cfg["max_position"])
            modules = [transformer, Pooling(cfg["hidden_size"], pooling_mode=pooling)]
            SentenceTransformer(modules=modules, device="cpu").save(str(st_dir))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        try:
            os.replace(st_dir, out_dir)  # atomic publish: a reader never sees half a model dir
        except OSError:
            if not (out_dir / "modules.json").is_file():
                raise
            log.info("local text model %s was built concurrently by another process; using it", out_dir.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return load_sentence_model(out_dir, pooling=pooling, max_length=cfg["max_position"], device="cpu")


def default_cache_dir() -> Path:
    """Where locally built text models live unless ``cache_dir`` is given."""
    base = os.environ.get("PRODMATCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "prodmatch"
    )
    return Path(base).expanduser() / "text_models"


def local_model_key(texts: Sequence[str], pooling: str, seed: int, **local: int) -> str:
    """Identity of a locally built model: corpus, architecture, pooling, seed."""
    return stable_hash(_LOCAL_FORMAT, texts_hash(texts), _check_local(local), pooling, seed)[:20]


def local_model_dir(
    texts: Sequence[str],
    cache_dir: str | Path | None = None,
    pooling: str = "cls",
    *,
    seed: int = 0,
    **local: int,
) -> Path:
    """The dir under ``cache_dir`` that holds (or will hold) the locally built model for these inputs."""
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return root / f"local-bert-{local_model_key(texts, pooling, seed, **local)}"


def local_sentence_model(
    texts: Sequence[str],
    cache_dir: str | Path | None = None,
    pooling: str = "cls",
    *,
    seed: int = 0,
    device: str = "auto",
    **local: int,
) -> SentenceTransformer:
    """The locally built model for ``texts``: loaded from ``cache_dir`` when built before, else built there."""
    out_dir = local_model_dir(texts, cache_dir, pooling, seed=seed, **local)
    if (out_dir / "modules.json").is_file():
        log.info("local text model %s reused", out_dir.name)
    else:
        log.info("building local text model %s (%d texts)", out_dir.name, len(texts))
        build_local_sentence_model(texts, out_dir, pooling, seed=seed, **local)
    max_position = _check_local(local)["max_position"]
    return load_sentence_model(out_dir, pooling=pooling, max_length=max_position, device=device)


class TextEncoder:
    """Sentence embeddings of a text view, L2-normalised, batched by length with a progress bar."""

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_MODEL,
        pretrained: bool = True,
        pooling: str = "cls",
        max_length: int = 256,
        batch_size: int = 64,
        device: str = "auto",
        local: dict[str, int] | None = None,
        cache_dir: str | None = None,
        model: SentenceTransformer | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        if pooling not in POOLING_MODES:
            raise ConfigError(f"pooling={pooling!r} is not supported; use one of {', '.join(POOLING_MODES)}")
        if batch_size <= 0 or max_length <= 0:
            raise ConfigError(
                f"text encoder: batch_size={batch_size}, max_length={max_length}; both must be >= 1"
            )
        self.model_name_or_path = str(model_name_or_path)
        self.pretrained = pretrained
        self.pooling = pooling
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.local = _check_local(dict(local or {}))
        self.cache_dir = cache_dir
        self.seed = seed
        self.progress = progress
        self._external = model is not None  # a training module's model: its weights change, never cache
        self._model = model
        self._corpora: dict[str, tuple[str, list[str]]] = {}  # view -> (local model key, texts)
        self._local_models: dict[str, SentenceTransformer] = {}  # local model key -> model

    @property
    def dim(self) -> int:
        if not self.pretrained and not self._external:
            return self.local["hidden_size"]
        return int(self.model.get_embedding_dimension())

    @property
    def model(self) -> SentenceTransformer:
        """The pretrained (or given) model, loaded on first use."""
        if self._model is None:
            if not self.pretrained:
                raise ConfigError("pretrained=false: the model depends on the texts; call prepare() first")
            self._model = load_sentence_model(
                self.model_name_or_path, pooling=self.pooling, max_length=self.max_length, device=self.device
            )
        return self._model

    def load(self) -> TextEncoder:
        """Load the pretrained model now (fail early on unavailable weights)."""
        if self.pretrained or self._external:
            _ = self.model
        return self

    def prepare(self, catalogs: Sequence[Catalog], view: str) -> None:
        """pretrained=false: remember the corpus the local model is trained on (built lazily at encode)."""
        self._check_view(view)
        if self.pretrained or self._external:
            return
        texts = catalog_texts(catalogs, view)
        key = local_model_key(texts, self.pooling, self.seed, **self.local)
        self._corpora[view] = (key, texts)

    def cache_key(self, view: str) -> str | None:
        if self._external:
            return None
        suffix = f"pooling={self.pooling}|max_length={self.max_length}"
        if not self.pretrained:
            entry = self._corpora.get(view)
            return None if entry is None else f"st-local|{entry[0]}|{suffix}"
        name = self.model_name_or_path
        identity = file_identity(name) if _is_local_path(name) and Path(name).expanduser().exists() else name
        return f"st|{identity}|{suffix}"

    def model_for(self, view: str) -> SentenceTransformer:
        """The model that encodes ``view`` (pretrained: one for all views; local: one per prepared corpus)."""
        if self.pretrained or self._external:
            return self.model
        entry = self._corpora.get(view)
        if entry is None:
            raise ConfigError(
                f"pretrained=false text encoder: prepare(catalogs, '{view}') must run before encode"
            )
        key, texts = entry
        if key not in self._local_models:
            self._local_models[key] = local_sentence_model(
                texts, self.cache_dir, self.pooling, seed=self.seed, device=self.device, **self.local
            )
            self._local_models[key].max_seq_length = min(self.max_length, self.local["max_position"])
        return self._local_models[key]

    def encode(self, catalog: Catalog, view: str) -> np.ndarray:
        """float32 [N, dim], L2-normalised, in catalog row order."""
        self._check_view(view)
        model = self.model_for(view)
        texts = catalog.texts(view)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        was_training = model.training
        try:
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                show_progress_bar=self.progress,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        finally:
            model.train(was_training)  # encode() switches to eval; give a training module its mode back
        return l2_normalize(vectors)

    @staticmethod
    def _check_view(view: str) -> None:
        if view not in TEXT_VIEWS:
            raise ConfigError(f"the text encoder encodes one of {', '.join(TEXT_VIEWS)}, got '{view}'")
