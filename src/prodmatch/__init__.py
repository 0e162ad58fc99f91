"""prodmatch: product matching from images and text.

``import prodmatch as pm`` is cheap: ``pm.evaluate``, ``pm.match`` and ``pm.train`` (:mod:`prodmatch.api`) import
the framework on their first call.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "evaluate", "match", "train"]

_API = ("evaluate", "match", "train")


class _Package(types.ModuleType):
    """The package module, whose ``evaluate``, ``match`` and ``train`` are the API's functions.

    The command-line mains are submodules of the same names (``prodmatch.evaluate``, ...); importing one would
    make the package attribute that module. These properties keep the functions in place (the submodules stay
    importable by their dotted names), and still let a test set its own stand-in.
    """

    def _api(self, name: str) -> Any:
        replaced = self.__dict__.get("_replaced", {})
        if name in replaced:
            return replaced[name]
        # imported by name on first use: the API is what makes `import prodmatch` costly, and every module that
        # reads `prodmatch.__version__` would otherwise sit in one import circle with it
        return getattr(importlib.import_module(f"{__name__}.api"), name)

    def _replace(self, name: str, value: Any) -> None:
        if not isinstance(value, types.ModuleType):  # the import system's binding of the submodule is ignored
            self.__dict__.setdefault("_replaced", {})[name] = value

    evaluate = property(lambda self: self._api("evaluate"), lambda self, v: self._replace("evaluate", v))
    match = property(lambda self: self._api("match"), lambda self, v: self._replace("match", v))
    train = property(lambda self: self._api("train"), lambda self, v: self._replace("train", v))


sys.modules[__name__].__class__ = _Package
