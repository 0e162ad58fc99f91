"""Row normalisation: the one place where embeddings become unit vectors."""

from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray, *, inplace: bool = False) -> np.ndarray:
    """Rows scaled to unit L2 norm as float32; all-zero rows stay zero, NaN rows stay NaN.

    ``inplace=True`` rescales a writable float32 array (for example a memory-mapped file) without a copy.
    """
    arr = np.asarray(x)
    if inplace:
        if arr.dtype != np.float32 or not arr.flags.writeable:
            raise ValueError("l2_normalize(inplace=True) needs a writable float32 array")
        out = arr
    else:
        out = np.array(arr, dtype=np.float32, copy=True)
    if out.ndim != 2:
        raise ValueError(f"expected a 2-D array [rows, dim], got shape {out.shape}")
    step = max(1, (1 << 26) // max(out.shape[1], 1))  # bounded temporaries on huge matrices
    for start in range(0, out.shape[0], step):
        block = out[start : start + step]
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))[:, None]
        np.divide(block, norms, out=block, where=norms > 0)
    return out
