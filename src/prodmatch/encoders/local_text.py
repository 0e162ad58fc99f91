"""The tiny BERT built locally when ``pretrained=false``: a WordPiece tokenizer trained on the catalog text and a
seeded random-init model, saved as a sentence-transformers dir in a shared cache.

Concurrent runs share the cache safely: one process builds under a file lock in a temporary dir and publishes it
with one rename; a published dir is never removed or replaced, and a process that waited reuses it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prodmatch.encoders.sentence import check_pooling, load_sentence_model, quiet_loading
from prodmatch.errors import ConfigError, ProdmatchError, one_line
from prodmatch.layout import TEXT_MODEL_CACHE_DIR
from prodmatch.utils.hashing import stable_hash, texts_hash
from prodmatch.utils.locks import file_lock

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "LOCAL_DEFAULTS",
    "build_local_sentence_model",
    "check_local",
    "default_cache_dir",
    "ensure_local_model",
    "is_published",
    "local_model_dir",
    "local_model_key",
    "local_sentence_model",
]

log = logging.getLogger("prodmatch.encoders")

# Architecture of the locally built model: tiny, so tests and offline demos run in seconds.
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
_COMPLETE_MARKER = (
    "modules.json"  # written last by SentenceTransformer.save: its presence means a whole model
)


def check_local(local: dict[str, Any]) -> dict[str, int]:
    """The local architecture: LOCAL_DEFAULTS overridden by ``local``; unknown keys are a ConfigError."""
    unknown = sorted(set(local) - set(LOCAL_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in the local text model config (encoders.text.local); "
            f"known: {', '.join(LOCAL_DEFAULTS)}"
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


def _save_model(texts: Sequence[str], work: Path, cfg: dict[str, int], pooling: str, seed: int) -> Path:
    """Tokenizer + seeded random BERT + pooling saved as a sentence-transformers dir under ``work``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel

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
    with quiet_loading():
        tokenizer.save_pretrained(hf_dir)
        bert.save_pretrained(hf_dir)
        transformer = Transformer(str(hf_dir), max_seq_length=cfg["max_position"])
        modules = [transformer, Pooling(cfg["hidden_size"], pooling_mode=pooling)]
        SentenceTransformer(modules=modules, device="cpu").save(str(st_dir))
    return st_dir


def is_published(model_dir: Path) -> bool:
    """Whether ``model_dir`` holds a whole published model."""
    return (model_dir / _COMPLETE_MARKER).is_file()


def _publish(built: Path, out_dir: Path) -> None:
    """Rename ``built`` to ``out_dir`` in one step; keep (never replace) a model published meanwhile."""
    try:
        os.rename(built, out_dir)  # atomic: readers see no dir or a whole model
    except OSError as err:
        if is_published(out_dir):
            log.info("local text model %s was published by another process; using it", out_dir.name)
            return
        raise ProdmatchError(
            f"{out_dir}: exists but holds no complete model ({_COMPLETE_MARKER} missing), so the local text "
            f"model cannot be published there; remove that dir and rerun ({one_line(err)})"
        ) from err


def build_local_sentence_model(
    texts: Sequence[str], out_dir: str | Path, pooling: str = "cls", *, seed: int = 0, **local: int
) -> SentenceTransformer:
    """Train a WordPiece tokenizer on ``texts``, build a small random BERT (seeded), publish a
    sentence-transformers dir at ``out_dir`` and load it back through :func:`load_sentence_model`.

    Built in a temporary dir beside ``out_dir`` and renamed into place; an already published ``out_dir`` is kept.
    ``local`` overrides :data:`LOCAL_DEFAULTS`. The same texts, config and seed give the same weights.
    """
    cfg = check_local(local)
    check_pooling(pooling)
    texts = [t for t in texts if t]
    if not texts:
        raise ConfigError("cannot build a local text model from an empty corpus; the catalogs have no text")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        _publish(_save_model(texts, work, cfg, pooling, seed), out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # our own temporary dir only
    return load_sentence_model(out_dir, pooling=pooling, max_length=cfg["max_position"], device="cpu")


def default_cache_dir() -> Path:
    """Where locally built text models live unless ``cache_dir`` is given."""
    base = os.environ.get("PRODMATCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "prodmatch"
    )
    return Path(base).expanduser() / TEXT_MODEL_CACHE_DIR


def local_model_key(texts: Sequence[str], pooling: str, seed: int, **local: int) -> str:
    """Identity of a locally built model: corpus, architecture, pooling, seed."""
    return stable_hash(_LOCAL_FORMAT, texts_hash(texts), check_local(local), pooling, seed)[:20]


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


def ensure_local_model(
    texts: Sequence[str],
    cache_dir: str | Path | None = None,
    pooling: str = "cls",
    *,
    seed: int = 0,
    **local: int,
) -> Path:
    """The published model dir for these inputs, built first (by one process at a time) when missing."""
    out_dir = local_model_dir(texts, cache_dir, pooling, seed=seed, **local)
    if is_published(out_dir):
        log.info("local text model %s reused", out_dir.name)
        return out_dir
    with file_lock(out_dir):
        if is_published(out_dir):  # another process built it while this one waited
            log.info("local text model %s reused (built by another process)", out_dir.name)
        else:
            log.info("building local text model %s (%d texts)", out_dir.name, len(texts))
            build_local_sentence_model(texts, out_dir, pooling, seed=seed, **local)
    return out_dir


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
    out_dir = ensure_local_model(texts, cache_dir, pooling, seed=seed, **local)
    max_position = check_local(local)["max_position"]
    return load_sentence_model(out_dir, pooling=pooling, max_length=max_position, device=device)
