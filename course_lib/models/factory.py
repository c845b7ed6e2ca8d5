"""``create_model``: a network by name, freshly initialised or with pretrained weights."""
from __future__ import annotations

import inspect
import os
from pathlib import Path

from torch import nn

from ..blocks.resnest import ResNeSt
from .names import parse_name
from .pretrained import load_body, read_state_dict, timm_pretrained

__all__ = ["create_model"]


def create_model(name: str, num_classes: int = 1000, pretrained: bool | str | os.PathLike = False,
                 **overrides) -> nn.Module:
    """Build a model by name (see :func:`parse_name`, :func:`list_models`).

    ``overrides`` change the configuration (e.g. ``drop_rate=0.2``, ``radix=4``,
    ``kernel_sizes=(3, 5)``); for the timm baselines they go to ``timm.create_model``.

    ``pretrained=True`` loads timm's ImageNet weights (downloaded once, then cached
    by huggingface_hub). ``pretrained="file.pth"`` (or ``.safetensors``) loads a state
    dict saved before: timm's, saved on a machine that was online, or one of
    course_lib's own (a training checkpoint's ``"model"`` entry works too). When
    ``num_classes`` differs from the weights', the classifier stays freshly initialised.
    """
    config = parse_name(name)
    if config.builder == "timm":
        import timm
        if pretrained:
            return timm_pretrained(config, num_classes, pretrained, overrides)
        return timm.create_model(config.timm_name, num_classes=num_classes, **overrides)
    allowed = set(inspect.signature(ResNeSt).parameters) - {"num_classes"}
    unknown = set(overrides) - allowed
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for {config.name}; "
                         f"ResNeSt takes {', '.join(sorted(allowed))}")
    model = ResNeSt(num_classes=num_classes, **{**config.kwargs, **overrides})
    if isinstance(pretrained, (str, os.PathLike)):
        load_body(model, read_state_dict(Path(pretrained)), str(pretrained))
    elif pretrained:
        if set(overrides) - {"drop_rate"}:
            raise ValueError(f"ImageNet weights fit {config.name} as named; drop the overrides "
                             f"{sorted(set(overrides) - {'drop_rate'})} or train from scratch")
        state = timm_pretrained(config, num_classes, True, {}).state_dict()
        model.load_state_dict(state, strict=True)
    return model
