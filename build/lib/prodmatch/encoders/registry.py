"""Encoders by name, built from the `encoders` config group on first use."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from hydra.utils import instantiate

from prodmatch.encoders.base import Encoder


class EncoderRegistry(Mapping[str, Encoder]):
    """Builds each configured encoder once, when a retrieval channel first asks for it.

    Lazy on purpose: building an encoder may load pretrained weights, and a run must not fail (or
    download) for an encoder it never uses. `extra` holds ready-made encoders, e.g. a trained module's.
    """

    def __init__(self, configs: Mapping[str, Any], extra: Mapping[str, Encoder] | None = None) -> None:
        self._configs = dict(configs)
        self._built: dict[str, Encoder] = dict(extra or {})

    def __getitem__(self, name: str) -> Encoder:
        if name not in self._built:
            if name not in self._configs:
                raise KeyError(name)
            self._built[name] = instantiate(self._configs[name])
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._configs, *self._built]))

    def __len__(self) -> int:
        return len(set(self._configs) | set(self._built))

    def with_extra(self, **encoders: Encoder) -> EncoderRegistry:
        """A registry sharing this one's configs and built encoders, plus (or replacing) the given ones."""
        reg = EncoderRegistry(self._configs, {**self._built, **encoders})
        return reg
