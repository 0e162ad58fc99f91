"""Expected, user-facing errors.

Anything raised as a :class:`ProdmatchError` is a problem the user can fix (a missing file, a bad column,
unreachable pretrained weights, a bad config value). The entry points print its message as one line and
exit non-zero instead of showing a traceback, so every message must name the problem *and* the fix.
"""

from __future__ import annotations


class ProdmatchError(Exception):
    """A user-fixable error; its message is one line naming the problem and the fix."""


class CatalogError(ProdmatchError):
    """A catalog CSV or its images cannot be used as given."""


class ImageError(ProdmatchError):
    """An image file cannot be read or is not allowed (bad path, corrupt, too large)."""


class WeightsUnavailableError(ProdmatchError):
    """Pretrained weights could not be loaded (offline and not cached, or a bad local path)."""


class ConfigError(ProdmatchError):
    """A config value is invalid."""
