"""Loading a sentence-transformers model from a hub id or a local dir, with one-line offline errors.

Every text model, including the locally built one (:mod:`prodmatch.encoders.local_text`), is loaded by
:func:`load_sentence_model`, so the tests exercise the same loading code that users' hub ids and dirs go through.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from prodmatch.encoders.device import resolve_device
from prodmatch.errors import ConfigError, WeightsUnavailableError, one_line
from prodmatch.utils.network import hub_offline_by_env, hub_reachable

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_KEY",
    "POOLING_MODES",
    "check_pooling",
    "is_local_path",
    "load_sentence_model",
    "quiet_loading",
    "set_pooling",
]

log = logging.getLogger("prodmatch.encoders")

DEFAULT_MODEL = "cointegrated/rubert-tiny2"
MODEL_KEY = "encoders.text.model_name_or_path"  # the config key users set to point at a local model dir
POOLING_MODES = ("cls", "mean")


def check_pooling(pooling: str) -> str:
    """``pooling`` if supported, else a ConfigError naming the choices."""
    if pooling not in POOLING_MODES:
        raise ConfigError(f"pooling={pooling!r} is not supported; use one of {', '.join(POOLING_MODES)}")
    return pooling


def is_local_path(name: str) -> bool:
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
def quiet_loading(quiet: bool = True) -> Iterator[None]:
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

    with quiet_loading(quiet=local_only):  # a download keeps its progress bar
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
    check_pooling(pooling)
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
    if is_local_path(name):
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
        raise _unavailable(what, offline_note or one_line(err)) from err
    set_pooling(model, pooling)
    if max_length is not None:
        model.max_seq_length = int(max_length)
    return model
