"""The ResNeSt network: a ResNet-D body of Split-Attention bottlenecks, and its names.

- :class:`ResNestBottleneck` 1x1 -> Split-Attention 3x3 (or a plain grouped 3x3
  when ``radix=0``) -> 1x1, plus the shortcut.
- :class:`ResNeSt` stem, four stages, pooling and classifier. Module and
  parameter names are timm's (``ResNet`` + ``ResNestBottleneck``), so
  ``model.load_state_dict(timm_model.state_dict(), strict=True)`` works.
- :func:`parse_name` / :func:`create_model` / :func:`list_models`: the report's
  names (``ResNeSt-14-2s1x64d``, ``ResNet-14-0s1x64d``, ``ResNeSt-50``, ...) and
  timm's (``resnest50d``, ...). ``pretrained=True`` fetches timm's ImageNet weights.

Symbols: layers = blocks per stage, radix R, cardinality K, width = bottleneck
width d of the name ``RsKxWd`` (channels per cardinal group in the first stage).
"""
from __future__ import annotations

import difflib
import inspect
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from .split_attn import MixedKernelSplitAttn, SplitAttn

__all__ = ["ResNestBottleneck", "ResNeSt", "ModelConfig", "parse_name", "create_model",
           "list_models", "PretrainedUnavailableError"]

EXPANSION = 4  # a bottleneck's output has 4x the channels of its 3x3 stage ("planes")


def _pool_channels_last(x: torch.Tensor, pool, autograd_too: bool) -> torch.Tensor | None:
    """Pool a channels-last copy of an NCHW tensor on the CPU, or None to pool as usual.

    PyTorch's CPU pooling kernels vectorise over channels only in the channels-last
    layout: there a 3x3 max pool runs 3-10x faster, even with the two copies
    (measured with ``python -m course_lib.bench``'s settings). For average pools the
    backward pass is slower that way, so they take this path only without autograd.
    """
    if x.device.type != "cpu" or x.dim() != 4 or not x.is_contiguous():
        return None
    if not autograd_too and torch.is_grad_enabled() and x.requires_grad:
        return None
    return pool(x.contiguous(memory_format=torch.channels_last)).contiguous()


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d``, faster on the CPU (see :func:`_pool_channels_last`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _pool_channels_last(x, super().forward, autograd_too=True)
        return super().forward(x) if out is None else out


class AvgPool2d(nn.AvgPool2d):
    """``nn.AvgPool2d``, faster on the CPU in inference (see :func:`_pool_channels_last`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _pool_channels_last(x, super().forward, autograd_too=False)
        return super().forward(x) if out is None else out


class ResNestBottleneck(nn.Module):
    """Bottleneck block: 1x1 (in -> B), 3x3 Split-Attention (B -> B), 1x1 (B -> 4*planes).

    ``B = int(planes * width / 64) * K`` (``group_width``). With ``radix=0`` the
    3x3 is a plain grouped convolution (``groups=K``) followed by BN + ReLU: the
    ResNeXt/ResNet bottleneck, the report's "0s".

    avd ("average downsampling"): when the block strides, the 3x3 runs at stride 1
    and a 3x3 average pool (stride 2) does the downsampling instead, before the 3x3
    (``avd_first``) or after it. This keeps the attention working on the full map.
    """

    expansion = EXPANSION

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, radix: int = 1, cardinality: int = 1,
                 width: int = 64, avd: bool = False, avd_first: bool = False,
                 reduction: int = 4, kernel_sizes: Sequence[int] | None = None):
        super().__init__()
        if radix < 0:
            raise ValueError(f"radix R must be >= 0 (0 = plain grouped conv), got {radix}")
        if cardinality < 1:
            raise ValueError(f"cardinality K must be >= 1, got {cardinality}")
        group_width = int(planes * width / 64) * cardinality
        if group_width < cardinality * max(radix, 1):
            raise ValueError(f"width {width} is too small: the 3x3 stage of planes={planes} gets "
                             f"{group_width} channels, fewer than G = K*R = "
                             f"{cardinality * max(radix, 1)} featuremap groups")
        avd_stride = stride if avd and stride > 1 else 0
        conv_stride = 1 if avd_stride else stride
        self.radix = radix

        self.conv1 = nn.Conv2d(inplanes, group_width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(group_width)
        self.avd_first = AvgPool2d(3, avd_stride, padding=1) if avd_stride and avd_first else None
        if kernel_sizes is not None:
            self.conv2 = MixedKernelSplitAttn(group_width, group_width, kernel_sizes,
                                              stride=conv_stride, cardinality=cardinality,
                                              reduction=reduction)
            self.bn2 = None
        elif radix >= 1:
            self.conv2 = SplitAttn(group_width, group_width, 3, conv_stride, cardinality=cardinality,
                                   radix=radix, reduction=reduction)
            self.bn2 = None  # SplitAttn has its own BN (bn0) and ReLU
        else:
            self.conv2 = nn.Conv2d(group_width, group_width, 3, conv_stride, padding=1,
                                   groups=cardinality, bias=False)
            self.bn2 = nn.BatchNorm2d(group_width)
        self.avd_last = AvgPool2d(3, avd_stride, padding=1) if avd_stride and not avd_first else None
        self.conv3 = nn.Conv2d(group_width, planes * EXPANSION, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * EXPANSION)
        self.downsample = downsample

    def zero_init_last(self) -> None:
        """Start the residual branch at zero, so the block starts as its shortcut."""
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)       # (N, B, H, W)
        if self.avd_first is not None:
            out = self.avd_first(out)
        out = self.conv2(out)
        if self.bn2 is not None:
            out = F.relu(self.bn2(out), inplace=True)
        if self.avd_last is not None:
            out = self.avd_last(out)                               # (N, B, H/s, W/s)
        out = self.bn3(self.conv3(out))                            # (N, 4*planes, H/s, W/s)
        return F.relu(out.add_(shortcut), inplace=True)


def _shortcut(inplanes: int, outplanes: int, stride: int, avg_down: bool) -> nn.Sequential:
    """Projection shortcut. ``avg_down`` (ResNet-D): average-pool, then a stride-1 1x1
    conv, so no input pixel is skipped; otherwise a strided 1x1 conv."""
    if not avg_down:
        return nn.Sequential(nn.Conv2d(inplanes, outplanes, 1, stride, bias=False),
                             nn.BatchNorm2d(outplanes))
    pool = (AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
            if stride > 1 else nn.Identity())
    return nn.Sequential(pool, nn.Conv2d(inplanes, outplanes, 1, bias=False),
                         nn.BatchNorm2d(outplanes))


class ResNeSt(nn.Module):
    """ResNeSt (and, with the plain stem and ``radix=0``, ResNet) for classification.

    Args:
        layers: bottlenecks per stage, e.g. ``(3, 4, 6, 3)`` for depth 50
            (depth = 2 + 3 * sum(layers)).
        radix: R; 0 gives the plain grouped 3x3 (ResNeXt/ResNet block).
        cardinality: K. width: bottleneck width per cardinal group (the "64d").
        deep_stem: three 3x3 convs (stem_width, stem_width, 2*stem_width) instead
            of one 7x7 conv to 64 channels. Both are followed by a 3x3 max pool.
        stem_width: see ``deep_stem``; ignored by the 7x7 stem.
        avg_down: average-pool shortcut (ResNet-D) instead of a strided 1x1 conv.
        avd, avd_first: average-pool downsampling in strided blocks, see
            :class:`ResNestBottleneck`.
        drop_rate: dropout before the classifier (the report trains with 0.2).
        num_classes, in_chans: classifier outputs, image channels.
        reduction: of the Split-Attention MLP (d = B * R / reduction, at least 32).
        kernel_sizes: one kernel size per radix split (the SK-style extension);
            R becomes len(kernel_sizes), whatever ``radix`` says.
        zero_init_last: zero the last BN of each block at initialisation.
    """

    def __init__(self, layers: Sequence[int] = (3, 4, 6, 3), radix: int = 2, cardinality: int = 1,
                 width: int = 64, deep_stem: bool = True, stem_width: int = 32,
                 avg_down: bool = True, avd: bool = True, avd_first: bool = False,
                 drop_rate: float = 0.0, num_classes: int = 1000, in_chans: int = 3,
                 reduction: int = 4, kernel_sizes: Sequence[int] | None = None,
                 zero_init_last: bool = True):
        super().__init__()
        _check_options(layers, radix, cardinality, width, stem_width, drop_rate, num_classes,
                       kernel_sizes)
        if kernel_sizes is not None:
            radix = len(kernel_sizes)
        self.drop_rate = drop_rate
        self.num_classes = num_classes
        if deep_stem:
            inplanes = stem_width * 2
            self.conv1 = nn.Sequential(
                nn.Conv2d(in_chans, stem_width, 3, 2, padding=1, bias=False),
                nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True),
                nn.Conv2d(stem_width, stem_width, 3, 1, padding=1, bias=False),
                nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True),
                nn.Conv2d(stem_width, inplanes, 3, 1, padding=1, bias=False))
        else:
            inplanes = 64
            self.conv1 = nn.Conv2d(in_chans, inplanes, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = MaxPool2d(3, 2, padding=1)

        block_args = dict(radix=radix, cardinality=cardinality, width=width, avd=avd,
                          avd_first=avd_first, reduction=reduction, kernel_sizes=kernel_sizes)
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if i == 0 else 2
            stage = []
            for b in range(blocks):
                s = stride if b == 0 else 1
                down = None
                if s != 1 or inplanes != planes * EXPANSION:
                    down = _shortcut(inplanes, planes * EXPANSION, s, avg_down)
                stage.append(ResNestBottleneck(inplanes, planes, s, down, **block_args))
                inplanes = planes * EXPANSION
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.num_features = inplanes
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes) if num_classes else nn.Identity()
        self.init_weights(zero_init_last)

    @torch.no_grad()
    def init_weights(self, zero_init_last: bool = True) -> None:
        """He (fan-out) init for convolutions; BN at 1/0; optionally zero the last BN of blocks."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, ResNestBottleneck):
                    m.zero_init_last()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 2048, H/32, W/32)."""
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))       # (N, 64 or 2*stem, H/4, W/4)
        x = self.layer1(x)                                         # (N, 256, H/4, W/4)
        x = self.layer2(x)                                         # (N, 512, H/8, W/8)
        x = self.layer3(x)                                         # (N, 1024, H/16, W/16)
        return self.layer4(x)                                      # (N, 2048, H/32, W/32)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x).flatten(1)                         # (N, 2048)
        if self.drop_rate:
            x = F.dropout(x, self.drop_rate, self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised classifier (fine-tuning to a new task)."""
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()


def _check_options(layers, radix, cardinality, width, stem_width, drop_rate, num_classes,
                   kernel_sizes) -> None:
    if len(layers) != 4 or any(int(n) < 1 for n in layers):
        raise ValueError(f"layers must be 4 positive block counts (one per stage), got {tuple(layers)}")
    if radix < 0:
        raise ValueError(f"radix R must be >= 0 (0 = plain grouped conv), got {radix}")
    if cardinality < 1:
        raise ValueError(f"cardinality K must be >= 1, got {cardinality}")
    if width < 1:
        raise ValueError(f"bottleneck width must be >= 1, got {width}")
    if stem_width < 1:
        raise ValueError(f"stem_width must be >= 1, got {stem_width}")
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
    if num_classes < 0:
        raise ValueError(f"num_classes must be >= 0 (0 = no classifier), got {num_classes}")
    if kernel_sizes is not None and len(kernel_sizes) < 1:
        raise ValueError("kernel_sizes needs one kernel size per radix split, got none")


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------

# depth = 2 + 3 * sum(layers) for bottleneck networks (stem conv + classifier + 3 per block).
DEPTH_LAYERS = {
    14: (1, 1, 1, 1),
    26: (2, 2, 2, 2),
    # Not a standard depth. Of all 4-stage splits of 10 blocks (2 + 3*10 = 32), only
    # (2, 3, 3, 2) with the 32-wide deep stem gives the report's 16.56M (16.5632M with
    # 10 classes); the next closest is (2, 3, 3, 2) with a 64-wide stem at 16.67M.
    32: (2, 3, 3, 2),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    200: (3, 24, 36, 3),
    269: (3, 30, 48, 8),
}

_REPORT_NAME = re.compile(r"^(resnest|resnet)-(\d+)(?:-(\d+)s(\d+)x(\d+)d)?$", re.IGNORECASE)


@dataclass(frozen=True)
class ModelConfig:
    """What a model name stands for. ``builder`` is ``"resnest"`` (this module's
    :class:`ResNeSt`, built from ``kwargs``) or ``"timm"`` (a baseline built by timm
    from ``timm_name``). ``pretrained`` names timm's ImageNet weights (None: none exist)."""
    name: str
    builder: str
    kwargs: dict = field(default_factory=dict)
    timm_name: str | None = None
    pretrained: str | None = None

    def __getattr__(self, key):  # config.radix, config.layers, ... for resnest configs
        kwargs = self.__dict__.get("kwargs", {})
        if key in kwargs:
            return kwargs[key]
        raise AttributeError(key)


def _resnest_kwargs(layers, radix=2, cardinality=1, width=64, stem_width=32, avd_first=False):
    return dict(layers=tuple(layers), radix=radix, cardinality=cardinality, width=width,
                deep_stem=True, stem_width=stem_width, avg_down=True, avd=True,
                avd_first=avd_first)


def _resnet_kwargs(layers, radix=0, cardinality=1, width=64):
    """The report's ResNet-N baseline: 7x7 stem + max pool, strided 1x1 shortcut, no avd."""
    return dict(layers=tuple(layers), radix=radix, cardinality=cardinality, width=width,
                deep_stem=False, stem_width=64, avg_down=False, avd=False, avd_first=False)


# timm's ResNeSt names: identical configurations, same parameter names, ImageNet weights.
TIMM_RESNEST = {
    "resnest14d": (_resnest_kwargs(DEPTH_LAYERS[14]), "resnest14d.gluon_in1k"),
    "resnest26d": (_resnest_kwargs(DEPTH_LAYERS[26]), "resnest26d.gluon_in1k"),
    "resnest50d": (_resnest_kwargs(DEPTH_LAYERS[50]), "resnest50d.in1k"),
    "resnest101e": (_resnest_kwargs(DEPTH_LAYERS[101], stem_width=64), "resnest101e.in1k"),
    "resnest200e": (_resnest_kwargs(DEPTH_LAYERS[200], stem_width=64), "resnest200e.in1k"),
    "resnest269e": (_resnest_kwargs(DEPTH_LAYERS[269], stem_width=64), "resnest269e.in1k"),
    "resnest50d_4s2x40d": (_resnest_kwargs(DEPTH_LAYERS[50], 4, 2, 40, avd_first=True),
                           "resnest50d_4s2x40d.in1k"),
    "resnest50d_1s4x24d": (_resnest_kwargs(DEPTH_LAYERS[50], 1, 4, 24, avd_first=True),
                           "resnest50d_1s4x24d.in1k"),
}

# Baselines that are not bottleneck networks, built by timm (parameter counts with 10
# classes: ResNet-18 11.18M, EfficientNet-b0..b3 4.02/6.53/7.72/10.71M, as in Table II).
# ResNet-18's weights are torchvision's (timm "tv_in1k"), the ones D2L fine-tunes.
TIMM_BASELINES = {
    "ResNet-18": ("resnet18", "resnet18.tv_in1k"),
    "EfficientNet-b0": ("efficientnet_b0", "efficientnet_b0.ra_in1k"),
    "EfficientNet-b1": ("efficientnet_b1", "efficientnet_b1.ft_in1k"),
    "EfficientNet-b2": ("efficientnet_b2", "efficientnet_b2.ra_in1k"),
    "EfficientNet-b3": ("efficientnet_b3", "efficientnet_b3.ra2_in1k"),
}

# The report's names that the tables use, plus the depths the book mentions.
REPORT_NAMES = (
    "ResNet-14-0s1x64d", "ResNet-14-1s1x64d",
    "ResNeSt-14-0s1x64d", "ResNeSt-14-1s1x64d", "ResNeSt-14-1s1x40d", "ResNeSt-14-1s2x64d",
    "ResNeSt-14-2s1x64d",
    "ResNeSt-14", "ResNeSt-26", "ResNeSt-32", "ResNeSt-50", "ResNeSt-101",
    "ResNet-14", "ResNet-26", "ResNet-50", "ResNet-101",
)


def list_models() -> list[str]:
    """Names :func:`create_model` accepts as they are (the report's pattern
    ``ResNeSt-<depth>-<R>s<K>x<width>d`` also takes any other R, K, width)."""
    return [*REPORT_NAMES, *TIMM_BASELINES, *TIMM_RESNEST]


def _unknown(name: str, why: str) -> ValueError:
    close = difflib.get_close_matches(name, list_models(), n=4, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ValueError(f"unknown model name {name!r}: {why}.{hint} Accepted: {', '.join(list_models())}, "
                      "or ResNeSt-<depth>-<R>s<K>x<width>d / ResNet-<depth>-<R>s<K>x<width>d "
                      f"with depth in {sorted(DEPTH_LAYERS)}.")


def parse_name(name: str) -> ModelConfig:
    """The configuration a model name stands for (report or timm naming).

    Report names, ``ResNeSt-<depth>[-<R>s<K>x<width>d]`` and ``ResNet-<depth>[-...]``:

    - depth -> blocks per stage via ``depth = 2 + 3*sum(layers)``: 14 (1,1,1,1),
      26 (2,2,2,2), 50 (3,4,6,3), 101 (3,4,23,3). The report's ResNeSt-32 is not a
      standard depth; (2,3,3,2) is the one split of 10 blocks that reproduces its
      16.56M parameters.
    - ResNeSt: deep stem of width 32, average-pool shortcut, avd; default 2s1x64d.
      The report's ResNeSt-101 (46.14M) has the 32-wide stem too; timm's
      ``resnest101e`` (the paper's ResNeSt-101, 46.25M with 10 classes) has a
      64-wide stem.
    - ResNet: the 7x7 stem with max pool, strided 1x1 shortcut, no avd; default
      0s1x64d (so ``ResNet-50`` is torchvision's/timm's ``resnet50``). The report's
      "ResNet-14-1s1x64d" is this network with radix-1 Split-Attention blocks.

    ``ResNet-18`` and ``EfficientNet-b0``..``b3`` are timm baselines. timm's
    ResNeSt names (``resnest14d``, ``resnest50d``, ``resnest101e``,
    ``resnest50d_4s2x40d``, ...) give timm's configurations.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a model name must be a non-empty string, got {name!r}")
    key = name.strip()
    lower = key.lower()
    if lower.startswith("efficientnet"):            # EfficientNet-b0, efficientnet_b0, "EfficientNet b0"
        lower = re.sub(r"[\s_-]+", "-", lower)
    for canonical, (timm_name, weights) in TIMM_BASELINES.items():
        if lower in (canonical.lower(), timm_name.replace("_", "-")):
            return ModelConfig(canonical, "timm", {}, timm_name, weights)
    if key.lower() in TIMM_RESNEST:
        kwargs, weights = TIMM_RESNEST[key.lower()]
        return ModelConfig(key.lower(), "resnest", dict(kwargs), key.lower(), weights)
    match = _REPORT_NAME.match(key)
    if match is None:
        raise _unknown(name, "it is neither a known name nor of the form "
                             "ResNeSt-<depth>-<R>s<K>x<width>d")
    family, depth = match.group(1).lower(), int(match.group(2))
    if depth not in DEPTH_LAYERS:
        raise _unknown(name, f"depth {depth} has no layer configuration (known depths: "
                             f"{sorted(DEPTH_LAYERS)}; depth = 2 + 3*sum(layers))")
    is_resnest = family == "resnest"
    if match.group(3) is None:
        radix, card, width = (2, 1, 64) if is_resnest else (0, 1, 64)
    else:
        radix, card, width = (int(g) for g in match.group(3, 4, 5))
    if card < 1:
        raise ValueError(f"{name!r}: cardinality K (the number before 'x') must be >= 1, got {card}")
    if width < 1:
        raise ValueError(f"{name!r}: bottleneck width (the number before 'd') must be >= 1")
    layers = DEPTH_LAYERS[depth]
    kwargs = _resnest_kwargs(layers, radix, card, width) if is_resnest else \
        _resnet_kwargs(layers, radix, card, width)
    canonical = f"{'ResNeSt' if is_resnest else 'ResNet'}-{depth}"
    if match.group(3) is not None:
        canonical += f"-{radix}s{card}x{width}d"
    weights = _timm_weights_for(kwargs)
    return ModelConfig(canonical, "resnest", kwargs, None, weights)


def _timm_weights_for(kwargs: dict) -> str | None:
    """timm's ImageNet weights for a configuration identical to one of timm's models."""
    for resnest_kwargs, weights in TIMM_RESNEST.values():
        if resnest_kwargs == kwargs:
            return weights
    if kwargs == _resnet_kwargs(DEPTH_LAYERS[50]):
        return "resnet50.tv_in1k"   # torchvision's ResNet-50 weights (the D2L fine-tuning recipe)
    if kwargs == _resnet_kwargs(DEPTH_LAYERS[101]):
        return "resnet101.tv_in1k"
    return None


# ---------------------------------------------------------------------------------------------
# Building and pretrained weights
# ---------------------------------------------------------------------------------------------

class PretrainedUnavailableError(RuntimeError):
    """ImageNet weights were asked for but cannot be had (offline, or none exist)."""


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
            return _timm_pretrained(config, num_classes, pretrained, overrides)
        return timm.create_model(config.timm_name, num_classes=num_classes, **overrides)
    allowed = set(inspect.signature(ResNeSt).parameters) - {"num_classes"}
    unknown = set(overrides) - allowed
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for {config.name}; "
                         f"ResNeSt takes {', '.join(sorted(allowed))}")
    model = ResNeSt(num_classes=num_classes, **{**config.kwargs, **overrides})
    if isinstance(pretrained, (str, os.PathLike)):
        _load_body(model, _read_state_dict(Path(pretrained)), str(pretrained))
    elif pretrained:
        if set(overrides) - {"drop_rate"}:
            raise ValueError(f"ImageNet weights fit {config.name} as named; drop the overrides "
                             f"{sorted(set(overrides) - {'drop_rate'})} or train from scratch")
        state = _timm_pretrained(config, num_classes, True, {}).state_dict()
        model.load_state_dict(state, strict=True)
    return model


def _read_state_dict(path: Path) -> dict:
    if not path.is_file():
        raise PretrainedUnavailableError(f"the pretrained weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):  # a checkpoint that holds the weights under a key
        if isinstance(state.get(key), dict):
            return state[key]
    return state


def _load_body(model: nn.Module, state: dict, source: str) -> None:
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


def _timm_pretrained(config: ModelConfig, num_classes: int, pretrained, overrides: dict) -> nn.Module:
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
