"""The one hashing scheme of the project: sha256 over canonical bytes, hex digests.

Every fingerprint (configs, catalogs, corpora, files, cache keys) goes through these helpers, so two
places never disagree on how the same content is hashed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_CHUNK = 1 << 20


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


def stats_hash(paths: Sequence[str | Path]) -> str:
    """Hex digest of every file's size and modification time (one stat per file, no reads).

    Raises OSError when a file is missing: callers decide whether that is an error or a cache miss.
    """
    digest = hashlib.sha256()
    for path in paths:
        st = os.stat(path)
        digest.update(f"{st.st_size}:{st.st_mtime_ns}\x00".encode())
    return digest.hexdigest()


def tree_identity(path: str | Path) -> str:
    """Identity of a file or directory tree: resolved path plus the relative name, size and mtime of each file."""
    path = Path(path).expanduser().resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    names = [str(p.relative_to(path)) if path.is_dir() else p.name for p in files]
    return f"{path}:{stable_hash(names, stats_hash(files))[:16]}"


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
    """Each file's identity, one per path: its size, mtime, inode and change time (one stat per file). Raises
    OSError when a file is missing."""
    out = []
    for path in paths:
        st = os.stat(path)
        out.append(f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_ctime_ns}")
    return out


def row_digests(items: Iterable[str]) -> np.ndarray:
    """One 16-byte sha256 digest per item (numpy ``S16``): compact keys for rows stored by their input."""
    return np.array(
        [hashlib.sha256(item.encode("utf-8", "surrogatepass")).digest()[:16] for item in items], dtype="S16"
    )
