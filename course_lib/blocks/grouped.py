"""Grouped convolution and the ResNeXt bottleneck in the two forms of the report's Fig. 1.

A grouped convolution with g groups cuts its n_i input channels into g slices and
convolves slice i into output slice i only: g small convolutions side by side,
``g * (n_i/g) * (n_o/g) = n_i n_o / g`` weights per kernel position instead of
``n_i n_o`` (see :mod:`course_lib.blocks.cost`). :func:`grouped_conv_by_loop` computes
it with an explicit loop, to check the definition against ``groups=g``.

The ResNeXt bottleneck with input/output c, bottleneck width b and cardinality K:

- :class:`ResNeXtBlock` (Fig. 1, right): 1x1 over all channels c -> b, grouped
  3x3 b -> b with K groups, 1x1 b -> c.
- :class:`ResNeXtBranchBlock` (Fig. 1, left): K branches, each its own 1x1
  c -> b/K and 3x3 b/K -> b/K; the K outputs are concatenated and one shared
  1x1 b -> c follows. This is the concatenation form (ResNeXt paper Fig. 3b,
  D2L's drawing). The "aggregated sum" form, where each branch ends in its own
  1x1 b/K -> c and the K results are added, is the same network again: the shared
  1x1 applied to a concatenation is the sum of its K column blocks applied to
  the pieces. We keep the concatenation form, which Fig. 1 shows and which maps
  onto the grouped form by slicing rows only.

Every convolution is followed by BN (and ReLU except the last); the shortcut is
the identity, or a 1x1 + BN when shape changes. :func:`branches_to_grouped` and
:func:`grouped_to_branches` copy weights between the forms, which then compute
the same function.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["grouped_conv_by_loop", "check_groups", "shortcut", "ResNeXtBlock", "ResNeXtBranchBlock",
           "branches_to_grouped", "grouped_to_branches"]


def grouped_conv_by_loop(x: torch.Tensor, weight: torch.Tensor, groups: int, stride: int = 1,
                         padding: int = 0) -> torch.Tensor:
    """A grouped convolution written out: split channels, convolve each slice, concatenate.

    ``weight`` has shape (n_o, n_i/groups, k, k), as ``nn.Conv2d(..., groups=groups)``'s.
    """
    if x.shape[1] % groups or weight.shape[0] % groups:
        raise ValueError(f"groups ({groups}) must divide the input ({x.shape[1]}) and output "
                         f"({weight.shape[0]}) channels")
    if weight.shape[1] * groups != x.shape[1]:
        raise ValueError(f"weight of shape {tuple(weight.shape)} expects {weight.shape[1] * groups} "
                         f"input channels with {groups} groups, got {x.shape[1]}")
    xs = x.chunk(groups, 1)                     # g x (N, n_i/g, H, W)
    ws = weight.chunk(groups, 0)                # g x (n_o/g, n_i/g, k, k)
    return torch.cat([F.conv2d(xi, wi, stride=stride, padding=padding)
                      for xi, wi in zip(xs, ws)], 1)          # (N, n_o, H', W')


_RADIX_HINT = {0: "0 = plain grouped conv",
               1: "radix 0 means a plain grouped convolution: use nn.Conv2d, "
                  "or ResNeSt/ResNestBottleneck with radix=0"}


def check_int(name: str, value, minimum: int = 1) -> int:
    """``value`` if it is a whole number >= ``minimum``; else a ValueError naming ``name`` and the fix."""
    if isinstance(value, bool) or not isinstance(value, int):
        hint = f" (write {value})" if isinstance(value, str) and value.strip().lstrip("-").isdigit() else ""
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r} "
                         f"({type(value).__name__}){hint}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_odd_kernel(name: str, value) -> int:
    """An odd kernel size: with padding (k - 1) / 2 the map keeps its size."""
    check_int(name, value)
    if value % 2 == 0:
        raise ValueError(f"{name} must be odd so that padding keeps the map's size, got {value} "
                         f"(an even kernel would shrink or shift it): use {value - 1} or {value + 1}")
    return value


def check_input(x, channels: int, training: bool, what: str) -> None:
    """A clear error, before torch's, for input that a block cannot take."""
    if not hasattr(x, "dim") or x.dim() != 4:
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        fix = " (one image? add the batch dimension: x[None])" if hasattr(x, "dim") and x.dim() == 3 else ""
        raise ValueError(f"{what} takes a batch of shape (N, {channels}, H, W), got {shape}{fix}")
    if x.shape[1] != channels:
        raise ValueError(f"{what} was built for {channels} input channels, got {x.shape[1]} "
                         f"(input shape {tuple(x.shape)})")
    if training and x.shape[0] < 2:
        raise ValueError(f"{what} is in training mode and got a batch of {x.shape[0]} image: its batch "
                         "norm needs at least 2 to estimate statistics. Use a larger batch, or call "
                         ".eval() to run it on one image")


def check_groups(channels: int, cardinality: int, radix: int = 1, *, what: str = "channels",
                 min_radix: int = 1) -> None:
    """ValueError naming the broken constraint when ``channels`` cannot be cut into
    K cardinal groups of R radix splits, ``G = K*R`` featuremap groups (R = 0, allowed
    with ``min_radix=0``, is the plain grouped convolution: G = K)."""
    check_int(what, channels)
    check_int("cardinality K", cardinality)
    if isinstance(radix, bool) or not isinstance(radix, int):
        check_int("radix R", radix, min_radix)  # raises: not a whole number
    if radix < min_radix:
        raise ValueError(f"radix R must be >= {min_radix}, got {radix} ({_RADIX_HINT[min_radix]})")
    groups = cardinality * max(radix, 1)
    if radix <= 1:
        rule, fix = f"the cardinality K = {cardinality}", "change the width or K"
    else:
        rule, fix = f"G = K*R = {cardinality}*{radix} = {groups}", "change the width, K or R"
    if channels < groups:
        raise ValueError(f"{what} is too small: {channels} channels, fewer than {rule} groups: {fix}")
    if channels % groups:
        raise ValueError(f"{what} ({channels}) must be divisible by {rule}: {fix}")


def _check(in_channels: int, bottleneck: int, cardinality: int, out_channels: int | None) -> int:
    """Check a ResNeXt bottleneck's sizes; returns its output channels (default: in_channels)."""
    check_int("in_channels", in_channels)
    if out_channels is not None:
        check_int("out_channels", out_channels)
    check_groups(bottleneck, cardinality, what="the bottleneck width b (each branch gets b/K channels)")
    return out_channels or in_channels


def _closing(in_channels: int, bottleneck: int, out_channels: int, stride: int):
    """What both forms end with: the 1x1 b -> c, its BN, and the shortcut (None: identity)."""
    return (nn.Conv2d(bottleneck, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
            shortcut(in_channels, out_channels, stride))


def shortcut(in_channels: int, out_channels: int, stride: int = 1, avg_down: bool = False) -> nn.Module | None:
    """The residual shortcut: None (the identity) when the shape stays, else a projection.

    The projection is a strided 1x1 convolution + BN, or with ``avg_down`` (ResNet-D)
    an average pool that does the striding, then a stride-1 1x1 + BN, so that no
    input pixel is skipped.
    """
    if stride == 1 and in_channels == out_channels:
        return None
    if not avg_down:
        return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                             nn.BatchNorm2d(out_channels))
    pool = (nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
            if stride > 1 else nn.Identity())
    return nn.Sequential(pool, nn.Conv2d(in_channels, out_channels, 1, bias=False),
                         nn.BatchNorm2d(out_channels))


class ResNeXtBlock(nn.Module):
    """ResNeXt bottleneck with a grouped 3x3 (report Fig. 1, right).

    Args:
        in_channels: c. bottleneck: b (width of the 3x3). cardinality: K, divides b.
        out_channels: default c. stride: of the 3x3 (and the shortcut).
    """

    def __init__(self, in_channels: int, bottleneck: int, cardinality: int = 32,
                 out_channels: int | None = None, stride: int = 1):
        super().__init__()
        out_channels = _check(in_channels, bottleneck, cardinality, out_channels)
        self.cardinality = cardinality
        self.conv1 = nn.Conv2d(in_channels, bottleneck, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(bottleneck)
        self.conv2 = nn.Conv2d(bottleneck, bottleneck, 3, stride, padding=1, groups=cardinality,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(bottleneck)
        self.conv3, self.bn3, self.downsample = _closing(in_channels, bottleneck, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)      # (N, b, H, W)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)    # (N, b, H/s, W/s), K groups
        out = self.bn3(self.conv3(out))                          # (N, c, H/s, W/s)
        return F.relu(out + shortcut, inplace=True)


class Branch(nn.Module):
    """One path of :class:`ResNeXtBranchBlock`: 1x1 c -> b/K, 3x3 b/K -> b/K, each + BN + ReLU."""

    def __init__(self, in_channels: int, width: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)      # (N, b/K, H, W)
        return F.relu(self.bn2(self.conv2(out)), inplace=True)   # (N, b/K, H/s, W/s)


class ResNeXtBranchBlock(nn.Module):
    """ResNeXt bottleneck as K explicit branches (report Fig. 1, left; the form ResNeSt builds on).

    Same arguments as :class:`ResNeXtBlock`, same number of parameters and
    multiply-adds (the K 1x1s of size c -> b/K are the rows of one c -> b 1x1).
    """

    def __init__(self, in_channels: int, bottleneck: int, cardinality: int = 32,
                 out_channels: int | None = None, stride: int = 1):
        super().__init__()
        out_channels = _check(in_channels, bottleneck, cardinality, out_channels)
        self.cardinality = cardinality
        self.branches = nn.ModuleList(Branch(in_channels, bottleneck // cardinality, stride)
                                      for _ in range(cardinality))
        self.conv3, self.bn3, self.downsample = _closing(in_channels, bottleneck, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = torch.cat([branch(x) for branch in self.branches], 1)  # (N, b, H/s, W/s)
        out = self.bn3(self.conv3(out))                              # (N, c, H/s, W/s)
        return F.relu(out + shortcut, inplace=True)


# The tensors of a BatchNorm2d that the weight mappings copy (here and in split_attn).
BN_TENSORS = ("weight", "bias", "running_mean", "running_var")
_SHARED = ("conv3", "bn3", "downsample")


def _shapes_match(grouped: ResNeXtBlock, branched: ResNeXtBranchBlock) -> None:
    k = grouped.cardinality
    ok = (k == branched.cardinality
          and grouped.conv1.weight.shape[1] == branched.branches[0].conv1.weight.shape[1]
          and grouped.conv3.weight.shape == branched.conv3.weight.shape
          and grouped.conv2.stride == branched.branches[0].conv2.stride)
    if not ok:
        raise ValueError("the two blocks differ in in/out channels, bottleneck width, "
                         "cardinality or stride; build them with the same arguments")


def _copy_shared(src: nn.Module, dst: nn.Module) -> None:
    state = {k: v for k, v in src.state_dict().items() if k.split(".")[0] in _SHARED}
    dst.load_state_dict(state, strict=False)


@torch.no_grad()
def branches_to_grouped(src: ResNeXtBranchBlock, dst: ResNeXtBlock | None = None) -> ResNeXtBlock:
    """Stack the branches' weights into the grouped form: branch k becomes rows
    ``k*b/K:(k+1)*b/K`` of ``conv1`` and group k of the grouped ``conv2``."""
    if dst is None:
        conv1, conv3 = src.branches[0].conv1, src.conv3
        dst = ResNeXtBlock(conv1.in_channels, conv3.in_channels, src.cardinality,
                           conv3.out_channels, src.branches[0].conv2.stride[0])
    _shapes_match(dst, src)
    for layer in ("conv1", "conv2"):
        getattr(dst, layer).weight.copy_(torch.cat([getattr(b, layer).weight for b in src.branches]))
    for layer in ("bn1", "bn2"):
        for name in BN_TENSORS:
            getattr(getattr(dst, layer), name).copy_(
                torch.cat([getattr(getattr(b, layer), name) for b in src.branches]))
    _copy_shared(src, dst)
    return dst


@torch.no_grad()
def grouped_to_branches(src: ResNeXtBlock, dst: ResNeXtBranchBlock | None = None) -> ResNeXtBranchBlock:
    """The inverse of :func:`branches_to_grouped`: cut the grouped weights into K branches."""
    if dst is None:
        dst = ResNeXtBranchBlock(src.conv1.in_channels, src.conv1.out_channels, src.cardinality,
                                 src.conv3.out_channels, src.conv2.stride[0])
    _shapes_match(src, dst)
    k = src.cardinality
    for layer in ("conv1", "conv2"):
        for branch, part in zip(dst.branches, getattr(src, layer).weight.chunk(k)):
            getattr(branch, layer).weight.copy_(part)
    for layer in ("bn1", "bn2"):
        for name in BN_TENSORS:
            for branch, part in zip(dst.branches, getattr(getattr(src, layer), name).chunk(k)):
                getattr(getattr(branch, layer), name).copy_(part)
    _copy_shared(src, dst)
    return dst
