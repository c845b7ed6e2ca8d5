"""Selective Kernel (SKNet): attention that chooses between branches of different kernels.

1. split: R branches see the same input through different receptive fields
   (kernel sizes or dilations), each conv + BN + ReLU -> ``U_i``, (N, C, H, W);
2. fuse: ``U = sum_i U_i``, ``s = GAP(U)`` (N, C), ``z = ReLU(BN(W s))`` with
   ``d = max(C / r, L)`` hidden units;
3. select: ``R`` logits per channel from ``z``, softmax over the branches ->
   ``a`` (N, R, C); ``V = sum_i a_i * U_i``.

Parameter names are timm's (``paths.<i>.conv``, ``paths.<i>.bn``,
``attn.fc_reduce``, ``attn.bn``, ``attn.fc_select``), so timm's SK-ResNet
weights load. SKNet swaps a 5x5 kernel for a 3x3 with dilation 2 (same field,
fewer weights); the defaults do the same.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .grouped import check_input, check_int
from .se import pooled_fc

__all__ = ["SelectiveKernel", "SelectiveKernelAttn", "sk_attn_channels"]


def sk_attn_channels(channels: int, reduction: int = 16, min_channels: int = 32) -> int:
    """SKNet's hidden width ``d = max(C / r, L)`` (``L = min_channels``)."""
    if reduction < 1 or min_channels < 1:
        raise ValueError(f"reduction r and L must be >= 1, got r={reduction}, L={min_channels}")
    return max(channels // reduction, min_channels)


class ConvBnRelu(nn.Module):
    """One SK branch: conv (no bias) -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 dilation: int, groups: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                              padding=dilation * (kernel_size - 1) // 2, dilation=dilation,
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class SelectiveKernelAttn(nn.Module):
    """Fuse + select: branches (N, R, C, H, W) -> attention (N, R, C), softmax over R."""

    def __init__(self, channels: int, branches: int, attn_channels: int):
        super().__init__()
        self.branches = branches
        self.fc_reduce = nn.Conv2d(channels, attn_channels, 1, bias=False)          # W: C -> d
        self.bn = nn.BatchNorm2d(attn_channels)
        self.fc_select = nn.Conv2d(attn_channels, channels * branches, 1, bias=False)  # d -> R*C

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        n = u.shape[0]
        s = u.sum(1).mean((2, 3))                                  # fuse + GAP: (N, C)
        z = self.bn(pooled_fc(self.fc_reduce, s)[..., None, None])  # (N, d, 1, 1)
        z = F.relu(z, inplace=True).flatten(1)                     # (N, d)
        logits = pooled_fc(self.fc_select, z).view(n, self.branches, -1)  # (N, R, C)
        return torch.softmax(logits, dim=1)


class SelectiveKernel(nn.Module):
    """SK convolution: R branches with different fields, mixed per channel by attention.

    After a forward pass :attr:`last_attention` holds ``a`` (N, R, C): how much of
    each branch each channel took (the weights over R sum to 1).

    Args:
        in_channels, out_channels: C_in and C (default C = C_in).
        kernel_sizes, dilations: one entry per branch, R = len(kernel_sizes) >= 2.
            Default: 3x3 and 3x3 with dilation 2 (a 5x5 field), as in SKNet.
        stride: of every branch.
        groups: grouped convolutions inside the branches (SKNet uses ResNeXt's 32).
        reduction, min_attn_channels: r and L of ``d = max(C / r, L)``.
        attn_channels: set d directly.
        split_input: branch i reads only the i-th of R input slices (timm's
            SK-ResNets do this: a 2-branch SK then costs what one conv costs).
    """

    def __init__(self, in_channels: int, out_channels: int | None = None,
                 kernel_sizes: Sequence[int] = (3, 3), dilations: Sequence[int] | None = (1, 2),
                 stride: int = 1, groups: int = 1, reduction: int = 16, min_attn_channels: int = 32,
                 attn_channels: int | None = None, split_input: bool = False):
        super().__init__()
        check_int("in_channels", in_channels)
        out_channels = in_channels if out_channels is None else check_int("out_channels", out_channels)
        check_int("stride", stride)
        check_int("groups", groups)
        kernel_sizes = tuple(kernel_sizes)
        dilations = tuple(dilations) if dilations is not None else (1,) * len(kernel_sizes)
        if len(kernel_sizes) < 2:
            raise ValueError(f"SelectiveKernel needs R >= 2 branches to select between, "
                             f"got kernel_sizes={kernel_sizes}")
        if len(dilations) != len(kernel_sizes):
            raise ValueError(f"need one dilation per kernel size: kernel_sizes={kernel_sizes}, "
                             f"dilations={dilations}")
        if any(k < 1 or k % 2 == 0 for k in kernel_sizes) or any(d < 1 for d in dilations):
            raise ValueError(f"kernel sizes must be odd and dilations >= 1, got {kernel_sizes}, {dilations}")
        branches = len(kernel_sizes)
        branch_in = in_channels // branches if split_input else in_channels
        if split_input and in_channels % branches:
            raise ValueError(f"split_input: in_channels ({in_channels}) must be divisible by "
                             f"the number of branches R = {branches}")
        if branch_in % groups or out_channels % groups:
            raise ValueError(f"groups ({groups}) must divide the branch input ({branch_in}) and "
                             f"output ({out_channels}) channels")
        attn = attn_channels or sk_attn_channels(out_channels, reduction, min_attn_channels)
        self.split_input = split_input
        self.in_channels = in_channels
        self.branches = branches
        self.paths = nn.ModuleList(ConvBnRelu(branch_in, out_channels, k, stride, d, groups)
                                   for k, d in zip(kernel_sizes, dilations))
        self.attn = SelectiveKernelAttn(out_channels, branches, attn)
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, self.training, "SelectiveKernel")
        inputs = x.chunk(self.branches, 1) if self.split_input else (x,) * self.branches
        u = torch.stack([path(xi) for path, xi in zip(self.paths, inputs)], 1)  # (N, R, C, H, W)
        a = self.attn(u)                                                         # (N, R, C)
        self.last_attention = a.detach()
        return (u * a[..., None, None]).sum(1)                                   # (N, C, H, W)
