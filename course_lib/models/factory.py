"""``create_model``: a network by name, freshly initialised or with pretrained weights."""
from __future__ import annotations

import inspect
import os
from pathlib import Path

import torch
from torch import nn

from ..blocks.grouped import check_int
from ..blocks.resnest import ResNeSt
from .names import parse_name
from .pretrained import load_body, read_state_dict, timm_pretrained

__all__ = ["create_model", "MAX_PARAMS", "model_size"]

# The largest network create_model builds unless asked (max_params=...): 200 M parameters are
# 0.8 GB of float32 weights and about four times that to train (gradients, momentum, activations).
MAX_PARAMS = 200_000_000


def model_size(kwargs: dict, num_classes: int, image_size: int = 32) -> tuple[int, int]:
    """(parameters, activation values per image at ``image_size``) of a ResNeSt, computed on the
    meta device: no memory is allocated, whatever the size."""
    with torch.device("meta"):
        probe = ResNeSt(num_classes=num_classes, **kwargs)
        acts = [0]
        hooks = [m.register_forward_hook(lambda m, i, o: acts.__setitem__(0, acts[0] + o.numel()))
                 for m in probe.modules() if not list(m.children())]
        probe.eval()(torch.empty(1, kwargs.get("in_chans", 3), image_size, image_size))
        for h in hooks:
            h.remove()
    return sum(p.numel() for p in probe.parameters()), acts[0]


def create_model(name: str, num_classes: int = 1000, pretrained: bool | str | os.PathLike = False,
                 max_params: int = MAX_PARAMS, **overrides) -> nn.Module:
    """Build a model by name (see :func:`parse_name`, :func:`list_models`).

    ``overrides`` change the configuration (e.g. ``drop_rate=0.2``, ``radix=4``,
    ``kernel_sizes=(3, 5)``); for the timm baselines they go to ``timm.create_model``.

    ``pretrained=True`` loads timm's ImageNet weights (downloaded once, then cached
    by huggingface_hub). ``pretrained="file.pth"`` (or ``.safetensors``) loads a state
    dict saved before: timm's, saved on a machine that was online, or one of
    course_lib's own (a training checkpoint's ``"model"`` entry works too). When
    ``num_classes`` differs from the weights', the classifier stays freshly initialised.
    A ResNeSt larger than ``max_params`` parameters is refused before any memory is taken.
    """
    if not isinstance(name, str):
        raise ValueError(f"name must be a model name such as 'ResNeSt-14-2s1x64d', got {name!r}")
    check_int("num_classes", num_classes, 0)
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
    kwargs = {**config.kwargs, **overrides}
    params, acts = model_size(kwargs, num_classes)
    if params > max_params:
        raise ValueError(f"{config.name} would have {params / 1e6:,.0f} M parameters ({4 * params / 2**30:,.1f} GiB "
                         f"of float32 weights, about four times that to train; {acts / 1e6:,.1f} M activation "
                         f"values per 32x32 image), more than max_params = {max_params / 1e6:,.0f} M. "
                         "Check the name (cardinality x width is per-group width), or pass a larger "
                         "max_params if you really mean it")
    model = ResNeSt(num_classes=num_classes, **kwargs)
    if isinstance(pretrained, (str, os.PathLike)):
        load_body(model, read_state_dict(Path(pretrained)), str(pretrained))
    elif pretrained:
        shape_free = {"drop_rate", "zero_init_last"}  # options that leave the weights' shapes alone
        if set(overrides) - shape_free:
            raise ValueError(f"ImageNet weights fit {config.name} as named; drop the overrides "
                             f"{sorted(set(overrides) - shape_free)} or train from scratch")
        state = timm_pretrained(config, num_classes, True, {}).state_dict()
        model.load_state_dict(state, strict=True)
    return model
