"""The one hashing scheme of the project: sha256 over canonical bytes, hex digests.

Every fingerprint (configs, catalogs, corpora, files, cache keys) goes through these helpers, so two
places never disagree on how the same content is hashed.

Input files (images) are identified by :func:`files_identity`: by default their stat, which includes what a user
cannot set (inode and change time next to size and mtime), so ``cp -p``, ``rsync -a`` or ``touch -r`` cannot
make a replaced file pass for the old one; under ``data.identity=content`` (:func:`file_identity`) by a hash of
their bytes. Model weights (a checkpoint, a weights file, a model folder) are identified by a digest of their
bytes, never by their path (:func:`weights_digest`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from prodmatch.errors import ConfigError

_CHUNK = 1 << 20
# How input files are identified: "stat" (size, mtime, inode, change time) or "content" (their bytes).
IDENTITIES = ("stat", "content")
IDENTITY_KEY = "data.identity"
_identity = ["stat"]
_weights_digests: dict[tuple, str] = {}


def hasher() -> hashlib._Hash:
    """A fresh incremental hasher (sha256) for callers that feed bytes in pieces."""
    return hashlib.sha256()


def stable_hash(*parts: object) -> str:
    """Hex digest of a JSON rendering of ``parts`` (keys sorted): stable across processes and machines."""
    payload = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def texts_hash(texts: Iterable[str]) -> str:
    """Hex digest of a text corpus, order-sensitive (``["ab", "c"]`` and ``["a", "bc"]`` differ)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def file_hash(path: str | Path) -> str:
    """Hex digest of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stat_key(st: os.stat_result) -> str:
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_ctime_ns}"


def stats_hash(paths: Sequence[str | Path]) -> str:
    """Hex digest of every file's size, mtime, inode and change time (one stat per file, no reads).

    The inode and the change time cannot be set by a user: a file replaced with the same size and mtime (``cp -p``,
    ``rsync -a``, ``touch -r``, an archive) still changes the digest. Raises OSError when a file is missing:
    callers decide whether that is an error or a cache miss.
    """
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{_stat_key(os.stat(path))}\x00".encode())
    return digest.hexdigest()


def contents_hash(paths: Sequence[str | Path]) -> str:
    """Hex digest of every file's bytes, in order (reads every file; OSError when one is missing)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(file_hash(path).encode() + b"\x00")
    return digest.hexdigest()


def check_identity(mode: str) -> str:
    """``mode`` when it names a file identity; a one-line ConfigError naming data.identity otherwise."""
    if mode not in IDENTITIES:
        raise ConfigError(
            f"{IDENTITY_KEY}={mode!r} is not one of {', '.join(IDENTITIES)} (stat: size, mtime, inode and change "
            "time; content: a hash of every file's bytes)"
        )
    return mode


@contextmanager
def file_identity(mode: str) -> Iterator[None]:
    """Identify input files by ``mode`` ("stat" or "content") inside the block (a task sets data.identity)."""
    _identity.append(check_identity(mode))
    try:
        yield
    finally:
        _identity.pop()


def files_identity(paths: Sequence[str | Path]) -> str:
    """The identity of input files (images) in the current mode: :func:`stats_hash` by default, their bytes
    under ``data.identity=content``. Raises OSError when a file is missing."""
    if _identity[-1] == "content":
        return "content:" + contents_hash(paths)
    return stats_hash(paths)


def _weights_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def weights_digest(path: str | Path) -> str:
    """Digest of a model's weights on disk: a checkpoint or weights file's bytes, or a model folder's files (names
    and bytes). Never the path: a model retrained or replaced at the same path gets another digest, and a copy
    elsewhere the same one. Computed once per process for the same files (keyed by their full stat, inode and
    change time included). Raises OSError when ``path`` cannot be read."""
    path = Path(path).expanduser().resolve()
    files = _weights_files(path)
    names = [str(p.relative_to(path)) if path.is_dir() else "" for p in files]
    key = (str(path), *(f"{n}:{_stat_key(p.stat())}" for n, p in zip(names, files, strict=True)))
    if key not in _weights_digests:
        digest = hashlib.sha256()
        for name, file in zip(names, files, strict=True):
            digest.update(f"{name}\x00{file_hash(file)}\x00".encode())
        _weights_digests[key] = digest.hexdigest()[:32]
    return _weights_digests[key]


def state_digest(state: Mapping[str, Any]) -> str:
    """Digest of a live model's weights: a state dict's names, dtypes, shapes and raw bytes (torch tensors or
    numpy arrays), in name order. Cheap next to one forward pass over a catalog (sha256 over the bytes, no
    copy on the CPU), so it can key the vectors of weights that change while training."""
    digest = hashlib.sha256()
    for name in sorted(state):
        raw = _raw_bytes(state[name])
        digest.update(
            f"{name}\x00{getattr(state[name], 'dtype', '')}\x00{tuple(state[name].shape)}\x00".encode()
        )
        digest.update(raw)
    return digest.hexdigest()[:32]


def _raw_bytes(value: Any) -> Any:
    """A tensor's or array's bytes as a contiguous buffer (GPU tensors are copied to the host)."""
    if hasattr(value, "detach"):  # a torch tensor: viewed as bytes, so every dtype (bfloat16 too) hashes
        import torch  # only a caller holding tensors gets here: torch is loaded already

        return value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
    return np.ascontiguousarray(value).reshape(-1).view(np.uint8)


def file_identities(paths: Sequence[str | Path]) -> list[str]:
    """Each file's identity in the current mode, one per path (:func:`files_identity` file by file): its stat
    by default, a hash of its bytes under ``data.identity=content``. Raises OSError when a file is missing."""
    if _identity[-1] == "content":
        return ["content:" + file_hash(path) for path in paths]
    return [_stat_key(os.stat(path)) for path in paths]


def row_digests(items: Iterable[str]) -> np.ndarray:
    """One 16-byte sha256 digest per item (numpy ``S16``): compact keys for rows stored by their input."""
    return np.array(
        [hashlib.sha256(item.encode("utf-8", "surrogatepass")).digest()[:16] for item in items], dtype="S16"
    )
