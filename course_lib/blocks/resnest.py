"""The ResNeSt network: a ResNet-D body of Split-Attention bottlenecks.

- :class:`ResNestBottleneck` 1x1 -> Split-Attention 3x3 (or a plain grouped 3x3
  when ``radix=0``) -> 1x1, plus the shortcut.
- :class:`ResNeSt` stem, four stages, pooling and classifier. Module and
  parameter names are timm's (``ResNet`` + ``ResNestBottleneck``), so
  ``model.load_state_dict(timm_model.state_dict(), strict=True)`` works.

The report's names (``ResNeSt-14-2s1x64d``, ``ResNeSt-50``, ...) and ``create_model``
are in :mod:`course_lib.models`.

Symbols: layers = blocks per stage, radix R, cardinality K, width = bottleneck
width d of the name ``RsKxWd`` (channels per cardinal group in the first stage).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .grouped import check_groups, check_input, check_int, shortcut
from .split_attn import MixedKernelSplitAttn, SplitAttn

__all__ = ["ResNestBottleneck", "ResNeSt", "EXPANSION"]

EXPANSION = 4  # a bottleneck's output has 4x the channels of its 3x3 stage ("planes")


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
        group_width = int(planes * width / 64) * cardinality
        check_groups(group_width, cardinality, radix, min_radix=0,
                     what=f"the 3x3 stage of planes={planes} at width {width}")
        avd_stride = stride if avd and stride > 1 else 0
        conv_stride = 1 if avd_stride else stride
        self.radix = radix

        self.conv1 = nn.Conv2d(inplanes, group_width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(group_width)
        self.avd_first = nn.AvgPool2d(3, avd_stride, padding=1) if avd_stride and avd_first else None
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
        self.avd_last = nn.AvgPool2d(3, avd_stride, padding=1) if avd_stride and not avd_first else None
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
        base_planes: planes p of stage 1, doubled every stage (64: ResNeSt's
            64, 128, 256, 512). 16 gives a quarter-wide network, small enough to
            train on a CPU and ship its weights (chapter 4).
    """

    def __init__(self, layers: Sequence[int] = (3, 4, 6, 3), radix: int = 2, cardinality: int = 1,
                 width: int = 64, deep_stem: bool = True, stem_width: int = 32,
                 avg_down: bool = True, avd: bool = True, avd_first: bool = False,
                 drop_rate: float = 0.0, num_classes: int = 1000, in_chans: int = 3,
                 reduction: int = 4, kernel_sizes: Sequence[int] | None = None,
                 zero_init_last: bool = True, base_planes: int = 64):
        super().__init__()
        _check_options(layers, width, stem_width, drop_rate, num_classes, kernel_sizes)
        check_int("base_planes", base_planes)
        check_int("radix R", radix, 0)
        check_int("cardinality K", cardinality)
        check_int("in_chans", in_chans)
        check_int("reduction", reduction)
        self.in_chans = in_chans
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
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)

        block_args = dict(radix=radix, cardinality=cardinality, width=width, avd=avd,
                          avd_first=avd_first, reduction=reduction, kernel_sizes=kernel_sizes)
        stage_planes = [base_planes * 2 ** i for i in range(4)]         # p = base_planes * 2^(l-1)
        for i, (planes, blocks) in enumerate(zip(stage_planes, layers)):
            stride = 1 if i == 0 else 2
            stage = []
            for b in range(blocks):
                s = stride if b == 0 else 1
                down = shortcut(inplanes, planes * EXPANSION, s, avg_down)
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
        check_input(x, self.in_chans, self.training, "ResNeSt")
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised classifier (fine-tuning to a new task)."""
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()


def _check_options(layers, width, stem_width, drop_rate, num_classes, kernel_sizes) -> None:
    """The network-wide options; K and R are checked by every bottleneck, with its width."""
    if (not isinstance(layers, (tuple, list)) or len(layers) != 4
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in layers)):
        raise ValueError(f"layers must be 4 positive block counts, one per stage, e.g. (1, 1, 1, 1) for a "
                         f"14-layer network (depth = 3 * sum(layers) + 2), got {layers!r}")
    check_int("bottleneck width", width)
    check_int("stem_width", stem_width)
    if isinstance(drop_rate, bool) or not isinstance(drop_rate, (int, float)) or not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must be a number in [0, 1), got {drop_rate!r}")
    check_int("num_classes (0 = no classifier)", num_classes, 0)
    if kernel_sizes is not None and len(kernel_sizes) < 1:
        raise ValueError("kernel_sizes needs one kernel size per radix split, got none")
