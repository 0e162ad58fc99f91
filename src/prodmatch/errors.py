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


class SearchServerError(ProdmatchError):
    """A search engine server (Milvus) cannot be reached or refused a request."""


def one_line(err: BaseException, limit: int = 300) -> str:
    """The error's own message as one line: the first non-empty line, shortened.

    PyTorch's DataLoader wraps a worker's exception in "Caught X in DataLoader worker ... Original Traceback";
    then the original message (the last line, "<module>.<Class>: <message>") is what the user needs.
    """
    text = str(err).strip()
    if text.startswith("Caught ") and "Original Traceback" in text:
        text = text.splitlines()[-1].split(": ", 1)[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[0] if lines else type(err).__name__
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."
