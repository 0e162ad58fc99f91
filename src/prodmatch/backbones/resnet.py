"""ResNet18 backbones: torchvision's ResNet18 with an Identity head (the 512-d pooled feature), its weights.

``weights`` is a torchvision ``ResNet18_Weights`` name (downloaded once into the torch hub cache; offline, a
missing file is one clear error instead of minutes of retries) or a local state_dict file, including a
checkpoint of a wrapped backbone (``module.``, ``model.``, ``backbone.`` prefixes are stripped).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

from prodmatch.data.images import IMAGENET_MEAN, IMAGENET_STD
from prodmatch.errors import ConfigError, WeightsUnavailableError, one_line
from prodmatch.utils.hashing import weights_digest
from prodmatch.utils.network import host_reachable

__all__ = [
    "FEATURE_DIM",
    "build_resnet18",
    "resnet18_identity",
    "resnet18_normalisation",
    "resnet18_weights_file",
]

WEIGHTS_KEY = "encoders.image.weights"  # the config key users set to point at a local weights file
FEATURE_DIM = 512
_PATH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
# Prefixes that wrappers (DataParallel, Lightning modules, siamese heads) put in front of the ResNet keys.
_KEY_PREFIXES = ("module.", "model.", "backbone.", "encoder.")


def _is_enum_name(weights: str) -> bool:
    return weights == "DEFAULT" or weights in ResNet18_Weights.__members__


def _looks_like_path(weights: str) -> bool:
    return any(sep in weights for sep in ("/", "\\")) or weights.lower().endswith(_PATH_SUFFIXES)


def resnet18_weights_file(weights: str = "IMAGENET1K_V1") -> Path:
    """Where torchvision keeps (or would download) the file of a ResNet18 weights enum entry."""
    url = ResNet18_Weights[weights].url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _unavailable(what: str, reason: str, hint: str = "") -> WeightsUnavailableError:
    fix = f"{hint} or " if hint else ""
    return WeightsUnavailableError(
        f"{what} could not be loaded: {reason}; {fix}pass {WEIGHTS_KEY}=/path/to/resnet18.pth, "
        "or run with pretrained=false (random init)"
    )


def _enum_state_dict(name: str, progress: bool) -> dict[str, torch.Tensor]:
    enum = ResNet18_Weights[name]
    what = f"ResNet18 ImageNet weights ({enum.name})"
    target = resnet18_weights_file(name)
    hint = f"put {target.name} (from {enum.url}) at {target}"
    if not target.is_file() and not host_reachable(enum.url):
        raise _unavailable(
            what, f"not cached and {urlparse(enum.url).hostname} is unreachable (offline?)", hint
        )
    try:
        return enum.get_state_dict(progress=progress, check_hash=True)
    except (URLError, OSError, RuntimeError, ValueError, pickle.UnpicklingError) as err:
        raise _unavailable(what, one_line(err), hint) from err


def _file_state_dict(path_str: str) -> dict[str, torch.Tensor]:
    path = Path(path_str).expanduser()
    what = f"ResNet18 weights file {path}"
    if not path.is_file():
        raise _unavailable(what, "no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as err:
        raise _unavailable(what, f"not a loadable torch state_dict ({one_line(err)})") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # a Lightning checkpoint
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise _unavailable(what, f"holds a {type(state).__name__}, not a state_dict")
    return state


def _strip_prefixes(state: dict[str, Any]) -> dict[str, Any]:
    """Drop a common wrapper prefix so checkpoints of wrapped backbones load into a bare ResNet18."""
    for prefix in _KEY_PREFIXES:
        if "conv1.weight" not in state and f"{prefix}conv1.weight" in state:
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def _load_into(model: nn.Module, state: dict[str, Any], what: str) -> None:
    # The head is replaced anyway, so a checkpoint with any (or no) classifier loads.
    body = {k: v for k, v in _strip_prefixes(state).items() if not k.startswith("fc.")}
    expected = {k for k in model.state_dict() if not k.startswith("fc.")}
    missing = sorted(expected - body.keys())
    if missing:
        raise _unavailable(
            what, f"not a ResNet18 state_dict (missing {len(missing)} keys, e.g. {missing[0]})"
        )
    try:
        model.load_state_dict({k: body[k] for k in expected}, strict=False)
    except RuntimeError as err:
        raise _unavailable(what, f"tensor shapes do not match ResNet18 ({one_line(err, 120)})") from err


def build_resnet18(
    pretrained: bool = True, weights: str = "IMAGENET1K_V1", progress: bool = False
) -> nn.Module:
    """torchvision ResNet18 with ``fc = Identity`` (512-d output).

    ``weights``: a torchvision ``ResNet18_Weights`` name (downloaded once into the torch hub cache) or a local
    state_dict file. ``pretrained=False`` gives random init from the global torch RNG (the caller seeds).
    """
    model = resnet18(weights=None)
    if pretrained:
        weights = str(weights)
        if _is_enum_name(weights):
            name = ResNet18_Weights[weights].name  # "DEFAULT" -> the concrete entry
            _load_into(model, _enum_state_dict(name, progress), f"ResNet18 ImageNet weights ({name})")
        elif _looks_like_path(weights):
            _load_into(model, _file_state_dict(weights), f"ResNet18 weights file {weights}")
        else:
            names = ", ".join(ResNet18_Weights.__members__)
            raise ConfigError(
                f"{WEIGHTS_KEY}={weights!r} is neither a ResNet18_Weights name ({names}) nor a path to a "
                ".pth state_dict; use one of those, or pretrained=false"
            )
    model.fc = nn.Identity()
    return model


def resnet18_normalisation(
    pretrained: bool, weights: str = "IMAGENET1K_V1"
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) the weights were trained with (torchvision's meta), ImageNet's for other weights."""
    weights = str(weights)
    if pretrained and _is_enum_name(weights):
        preset = ResNet18_Weights[weights].transforms()
        return tuple(preset.mean), tuple(preset.std)
    return IMAGENET_MEAN, IMAGENET_STD


def resnet18_identity(pretrained: bool, weights: str = "IMAGENET1K_V1", seed: int = 0) -> str | None:
    """What fixes a built ResNet18's weights, for cache keys: its random init's seed, the torchvision entry, or
    a digest of the weights file's bytes; None when that file cannot be read (nothing to key a cache entry by)."""
    weights = str(weights)
    if not pretrained:
        identity = f"random(seed={seed})"
    elif _is_enum_name(weights):
        identity = ResNet18_Weights[weights].name
    else:
        path = Path(weights).expanduser()
        try:  # the file's bytes, not its path: weights replaced at the same path are other weights
            identity = f"file:{weights_digest(path)}" if path.exists() else weights
        except OSError:
            return None  # unreadable: loading it will say so
    return f"resnet18|weights={identity}|pretrained={pretrained}"
