"""Quick probes that tell "offline" apart before a weights download starts its own long retry loop.

urllib (torchvision's downloads) has no timeout and can hang for minutes; huggingface_hub retries each file five
times with backoff. One short probe per load turns both into an immediate, one-line error.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

__all__ = ["PROBE_TIMEOUT_S", "host_reachable", "hub_offline_by_env", "hub_reachable"]

PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "ON", "YES", "TRUE"}
_PROXY_VARS = ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


def host_reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """TCP probe of ``url``'s host; True behind a proxy (only the downloader knows how to go through it)."""
    if any(os.environ.get(name) for name in _PROXY_VARS):
        return True
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


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
