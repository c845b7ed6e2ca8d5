"""Pretrained weights: timm's ImageNet weights (downloaded once, cached by huggingface_hub),
or a state dict saved before. Offline, a quick check of the weights hub says so at once.

timm, huggingface_hub and safetensors are imported inside the functions that need them.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from .names import TIMM_RESNEST, ModelConfig

__all__ = ["PretrainedUnavailableError", "DamagedFileError", "UnsafeFileError", "load_torch_file", "read_state_dict", "load_body",
           "timm_pretrained"]


class PretrainedUnavailableError(RuntimeError):
    """ImageNet weights were asked for but cannot be had (offline, or none exist)."""


class DamagedFileError(ValueError):
    """A saved file (weights, checkpoint, cache) cannot be read: truncated, overwritten or not torch's."""


class UnsafeFileError(ValueError):
    """A torch file holds Python objects other than tensors and plain values: it is not loaded."""


def _numpy_globals() -> list:
    """What NumPy's random state (inside course_lib's checkpoints) unpickles to: arrays and dtypes only."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        return []
    core = getattr(np, "_core", None) or np.core
    out = [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    out += [(core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct")]   # files written under NumPy 1
    return out + [torch.torch_version.TorchVersion]   # the version string older checkpoints keep


def load_torch_file(path) -> object:
    """``torch.load`` of a file with torch's safe loader (``weights_only=True``: tensors and plain values,
    plus NumPy arrays for the random state course_lib's checkpoints keep). Loading never runs code
    from the file. A file that is damaged, or holds other objects, raises DamagedFileError naming it."""
    import pickle
    import re
    path = Path(path)
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        names = sorted(set(re.findall(r"GLOBAL ([\w.]+)", str(err))))
        if not names:   # not a refusal of the safe loader: the bytes themselves are wrong
            raise _damaged(path, err) from None
        raise UnsafeFileError(f"{path} holds {', '.join(names)}, which course_lib does not load: it reads only "
                               "tensors and plain values from a file, so that loading a file cannot run code. "
                               "Save the weights as a state dict (torch.save(model.state_dict(), path)) or as "
                               ".safetensors, and load that.") from None
    except (RuntimeError, EOFError, ValueError, IndexError, KeyError, UnicodeDecodeError, OSError) as err:
        if isinstance(err, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise   # not damage: the message of the system says what is wrong
        raise _damaged(path, err) from None


def _damaged(path: Path, err: Exception) -> DamagedFileError:
    first = (str(err).strip().splitlines() or [""])[0][:200]
    if not first or "weights_only" in first or "Weights only" in first:   # torch's advice does not apply here
        first = type(err).__name__
    return DamagedFileError(f"{path} is damaged: it cannot be read as a torch file ({first}); it was "
                            f"truncated or overwritten ({path.stat().st_size:,} bytes).")


def read_state_dict(path: Path) -> dict:
    """The state dict in a .pth or .safetensors file (a checkpoint's "model" entry if it holds one)."""
    if not path.is_file():
        raise PretrainedUnavailableError(f"the pretrained weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    state = load_torch_file(path)
    for key in ("model", "state_dict"):  # a checkpoint that holds the weights under a key
        if isinstance(state.get(key), dict):
            return state[key]
    return state


def load_body(model: nn.Module, state: dict, source: str) -> None:
    """Load ``state`` strictly, except a classifier of another shape (kept fresh)."""
    own = model.state_dict()
    state = {k: v for k, v in state.items()
             if not (k.startswith("fc.") and k in own and v.shape != own[k].shape)}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # tensors of other shapes
        raise PretrainedUnavailableError(f"the weights in {source} do not fit this model: "
                                         f"{str(err)[:600]}") from err
    if [k for k in missing if not k.startswith("fc.")] or unexpected:
        raise PretrainedUnavailableError(
            f"the weights in {source} do not fit this model: missing {missing[:4]}, "
            f"unexpected {unexpected[:4]}")


def timm_pretrained(config: ModelConfig, num_classes: int, pretrained, overrides: dict) -> nn.Module:
    """A timm model with ImageNet weights, or PretrainedUnavailableError saying why not."""
    import timm
    if isinstance(pretrained, (str, os.PathLike)):  # timm baselines from a saved file
        weights_file = Path(pretrained)
        if not weights_file.is_file():
            raise PretrainedUnavailableError(f"the pretrained weights file {weights_file} does not exist")
    else:
        if config.pretrained is None:
            raise PretrainedUnavailableError(
                f"no ImageNet weights exist for {config.name}: timm publishes them for "
                f"{', '.join(TIMM_RESNEST)}, ResNet-18/50/101 and EfficientNet-b0..b3 "
                "(the report's ResNeSt-101 has a 32-wide stem; timm's resnest101e a 64-wide one). "
                "Train it from scratch (pretrained=False) or pick one of those.")
        weights_file = _cached_weights(config.pretrained)
        if weights_file is None and not _hub_reachable():
            raise PretrainedUnavailableError(
                f"cannot download the ImageNet weights of {config.name} ({config.pretrained}): "
                f"the weights hub {_hub_host()} cannot be reached from this machine (no network). "
                "Run once where the network is available (the weights are then cached), or save "
                "timm's state dict there and pass pretrained='that_file.pth'; otherwise use "
                "pretrained=False.")
    where = {} if weights_file is None else {"pretrained_cfg_overlay": {"file": str(weights_file)}}
    try:
        return timm.create_model(config.pretrained or config.timm_name, pretrained=True,
                                 num_classes=num_classes, **where, **overrides)
    except (OSError, RuntimeError) as err:  # network errors, broken or mismatched files
        raise PretrainedUnavailableError(
            f"loading the ImageNet weights of {config.name} ({config.pretrained or weights_file}) "
            f"failed: {err}. Check the network, or pass pretrained='saved_state_dict.pth'.") from err


def _cached_weights(tagged_name: str) -> Path | None:
    """The weights file huggingface_hub cached on an earlier, online run (None if none)."""
    try:
        import timm
        from huggingface_hub import try_to_load_from_cache
        repo = timm.models.get_pretrained_cfg(tagged_name).hf_hub_id
    except (ImportError, AttributeError, RuntimeError):
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo, filename) if repo else None
        if isinstance(found, str):
            return Path(found)
    return None


def _hub_host() -> str:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    return urlparse(endpoint).hostname or endpoint


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connection to the weights hub, instead of minutes of retries."""
    try:
        socket.create_connection((_hub_host(), 443), timeout=timeout).close()
        return True
    except OSError:
        return False
