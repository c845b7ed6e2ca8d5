"""Squeeze-and-Excitation (SENet): a learned gate in (0, 1) for every channel.

For features ``U`` of shape (N, C, H, W):

- squeeze: ``s = GAP(U)``, one number per channel, (N, C);
- excitation: ``z = ReLU(W s)`` with ``W`` of shape (C/r, C), then
  ``a = sigmoid(W~ z)`` with ``W~`` of shape (C, C/r); r is the ``reduction``;
- scale: ``V_c = a_c * U_c``.

``W`` and ``W~`` are stored as 1x1 convolutions, with timm's names (``fc1``,
``fc2``), so the weights of timm's SE-ResNets load as they are. On pooled
features a 1x1 convolution *is* a fully connected layer, and :func:`pooled_fc`
applies it as one, to the (N, C) vector, as SENet writes it. This is
Split-Attention with one cardinal group and R = 1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .grouped import check_int

__all__ = ["SqueezeExcite", "pooled_fc"]


def pooled_fc(conv: nn.Conv2d, s: torch.Tensor) -> torch.Tensor:
    """A dense 1x1 convolution applied to pooled features ``s`` (N, C_in) -> (N, C_out):
    the fully connected layer it is, ``s W^T + b``."""
    if conv.groups != 1 or conv.kernel_size != (1, 1):
        raise ValueError(f"pooled_fc takes a dense 1x1 convolution, got kernel {conv.kernel_size} "
                         f"with groups={conv.groups}: call the convolution on (N, C, 1, 1) instead")
    return F.linear(s, conv.weight.flatten(1), conv.bias)


class SqueezeExcite(nn.Module):
    """Gate the channels of (N, C, H, W) features; :attr:`last_gate` is the gate ``(N, C)``.

    Args:
        channels: C.
        reduction: r; the hidden layer has ``C // r`` units (SENet uses 16).
        hidden_channels: set the hidden width directly instead (e.g. timm rounds it
            to a multiple of 8).
    """

    def __init__(self, channels: int, reduction: int = 16, hidden_channels: int | None = None):
        super().__init__()
        check_int("channels", channels)
        check_int("reduction r", reduction)
        if hidden_channels is not None:
            check_int("hidden_channels", hidden_channels)
        hidden = hidden_channels if hidden_channels is not None else channels // reduction
        if hidden < 1:
            raise ValueError(f"{channels} channels are too few for reduction r = {reduction}: "
                             f"the hidden layer would have C // r = {hidden} units; "
                             "lower the reduction or set hidden_channels")
        self.channels, self.hidden_channels = channels, hidden
        self.fc1 = nn.Conv2d(channels, hidden, 1)   # W  (C -> C/r), with bias
        self.fc2 = nn.Conv2d(hidden, channels, 1)   # W~ (C/r -> C), with bias
        self.last_gate: torch.Tensor | None = None

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The channel weights a, (N, C), for features x (N, C, H, W)."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected (N, {self.channels}, H, W) features, got shape {tuple(x.shape)}")
        s = x.mean((2, 3))                                   # squeeze: (N, C)
        z = F.relu(pooled_fc(self.fc1, s), inplace=True)     # (N, C/r)
        return torch.sigmoid(pooled_fc(self.fc2, z))         # excitation: (N, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.gate(x)
        self.last_gate = a.detach()                          # (N, C)
        return x * a[..., None, None]                        # (N, C, H, W)
