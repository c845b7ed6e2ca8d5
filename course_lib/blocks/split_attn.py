"""Split-Attention: attention over the R radix splits inside each of K cardinal groups.

A Split-Attention convolution turns ``in_channels`` into ``out_channels = C`` in
``G = K * R`` *featuremap groups*: K cardinal groups (as in ResNeXt), each cut
into R radix splits (as in SKNet). Every split is a 3x3 convolution of its own
share of the input. Inside a cardinal group the R splits are summed, pooled
(GAP), sent through a small two-layer MLP, and the result chooses, channel by
channel, how much of each split to keep: a softmax over the R splits
(``R > 1``) or a sigmoid gate (``R = 1``, the SE case).

The report draws the same computation in two layouts:

- :class:`SplitAttnCardinal` (cardinality-major, report Fig. 4): a list of K
  :class:`CardinalGroup` modules, each owning R neighbouring splits; their
  outputs are concatenated. Easy to read, one Python loop over K.
- :class:`SplitAttn` (radix-major, report Fig. 5, the official implementation
  and timm's): one convolution with ``G = K*R`` groups whose outputs are ordered
  radix first, and a :class:`RadixSoftmax` over the whole tensor at once. Its
  parameter names are timm's (``conv, bn0, fc1, bn1, fc2``) so timm weights load.

:func:`cardinal_to_radix` and :func:`radix_to_cardinal` move weights between the
two. The layouts also read their *input* channels in different orders
(:func:`radix_input_order`); inside a bottleneck that order is set by the
preceding 1x1 convolution, so a permutation of its rows absorbs it.

:class:`MixedKernelSplitAttn` is the extension the report suggests: each radix
split gets its own kernel size (or dilation), SKNet style.

Shapes: N batch, C = ``out_channels``, ``Ck = C // K`` channels per cardinal
group, d = attention (hidden) channels, ``dk = d // K``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .grouped import BN_TENSORS, check_groups, check_input, check_int, check_odd_kernel

__all__ = ["split_attn_channels", "check_attn_channels", "RadixSoftmax", "SplitAttn", "CardinalGroup",
           "SplitAttnCardinal", "MixedKernelSplitAttn", "cardinal_to_radix",
           "radix_to_cardinal", "radix_input_order", "mixed_from_plain"]


def split_attn_channels(in_channels: int, radix: int, reduction: int = 4,
                        minimum: int = 32, divisor: int = 8, cardinality: int = 1) -> int:
    """Hidden width d of the attention MLP: ``in_channels * R / reduction``.

    Rounded to a multiple of ``divisor`` (timm's rule, so its weights fit) and at
    least ``minimum`` (the official code's floor of 32, which keeps the MLP of
    narrow blocks from collapsing to a handful of units); then up to a multiple
    of K, since each cardinal group gets d/K units (only matters for K like 3).
    """
    if reduction < 1:
        raise ValueError(f"reduction must be >= 1, got {reduction}")
    value = in_channels * radix / reduction
    rounded = max(minimum, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:  # never round down by more than 10 %
        rounded += divisor
    return -(-rounded // cardinality) * cardinality


def _check_split(in_channels: int, out_channels: int, cardinality: int, radix: int) -> None:
    """ValueError naming the broken constraint of a K x R featuremap-group split."""
    check_groups(in_channels, cardinality, radix, what="in_channels")
    check_groups(out_channels, cardinality, what="out_channels")


def check_attn_channels(attn_channels: int, cardinality: int) -> None:
    """ValueError unless the hidden width d gives each of the K cardinal groups d/K units."""
    if attn_channels < cardinality or attn_channels % cardinality:
        raise ValueError(f"attention channels d ({attn_channels}) must be a positive multiple "
                         f"of the cardinality K = {cardinality}: each cardinal group needs its "
                         "own d/K hidden units: pass attn_channels as a multiple of K")


class _Sizes(nn.Module):
    """What both layouts share: their sizes, checked and stored, and ``last_attention``."""

    def __init__(self, in_channels: int, out_channels: int | None, cardinality: int, radix: int,
                 reduction: int, attn_channels: int | None):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        _check_split(in_channels, out_channels, cardinality, radix)
        attn = attn_channels or split_attn_channels(in_channels, radix, reduction, cardinality=cardinality)
        check_attn_channels(attn, cardinality)
        self.radix, self.cardinality = radix, cardinality
        self.in_channels, self.out_channels, self.attn_channels = in_channels, out_channels, attn
        self.last_attention: torch.Tensor | None = None


class RadixSoftmax(nn.Module):
    """Attention logits -> weights: softmax across the R splits, or a sigmoid if R = 1.

    The grouped ``fc2`` of :class:`SplitAttn` emits its logits cardinal-major,
    ``(N, K, R, Ck)``; the features are radix-major, ``(N, R, K, Ck)``. This swaps
    the two axes and normalises over R, returning weights shaped ``(N, R, C)``.
    """

    def __init__(self, radix: int, cardinality: int):
        super().__init__()
        self.radix = radix
        self.cardinality = cardinality

    def forward(self, logits: torch.Tensor) -> torch.Tensor:          # (N, K*R*Ck)
        n = logits.shape[0]
        if self.radix == 1:
            return torch.sigmoid(logits).view(n, 1, -1)                       # (N, 1, C)
        logits = logits.view(n, self.cardinality, self.radix, -1)             # (N, K, R, Ck)
        weights = torch.softmax(logits.transpose(1, 2), dim=1)                # (N, R, K, Ck)
        return weights.reshape(n, self.radix, -1)                             # (N, R, C)


class SplitAttn(_Sizes):
    """Split-Attention convolution, radix-major layout (report Fig. 5; timm's ``SplitAttn``).

    ``conv``: one convolution with ``G = K*R`` groups, ``in_channels -> R*C``; output
    channel ``r*C + k*Ck + j`` is channel j of split r of cardinal group k.
    ``fc1``/``fc2``: the attention MLP, grouped by K so each cardinal group has
    its own. After a forward pass, :attr:`last_attention` holds the weights
    ``(N, R, C)`` (softmax over R, or the sigmoid gate when R = 1).

    Args:
        in_channels: input channels, divisible by ``G = K*R``.
        out_channels: C, divisible by K (default: ``in_channels``).
        kernel_size, stride, dilation: of the split convolutions.
        cardinality: K. radix: R >= 1.
        reduction: d = in_channels * R / reduction (see :func:`split_attn_channels`).
        attn_channels: set d directly (overrides ``reduction``).
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, kernel_size: int = 3,
                 stride: int = 1, dilation: int = 1, cardinality: int = 1, radix: int = 2,
                 reduction: int = 4, attn_channels: int | None = None):
        super().__init__(in_channels, out_channels, cardinality, radix, reduction, attn_channels)
        check_odd_kernel("kernel_size", kernel_size)
        check_int("stride", stride)
        check_int("dilation", dilation)
        c, d = self.out_channels, self.attn_channels
        self.conv = self._make_conv(in_channels, c, kernel_size, stride, dilation)
        self.bn0 = nn.BatchNorm2d(c * radix)
        self.fc1 = nn.Conv2d(c, d, 1, groups=cardinality)              # dense C -> d, per K
        self.bn1 = nn.BatchNorm2d(d)
        self.fc2 = nn.Conv2d(d, c * radix, 1, groups=cardinality)      # dense d -> R*C, per K
        self.rsoftmax = RadixSoftmax(radix, cardinality)

    def _splits(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)                                        # (N, R*C, H', W')

    def _make_conv(self, in_channels, out_channels, kernel_size, stride, dilation) -> nn.Module:
        groups = self.cardinality * self.radix
        return nn.Conv2d(in_channels, out_channels * self.radix, kernel_size, stride,
                         padding=dilation * (kernel_size - 1) // 2, dilation=dilation,
                         groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, self.training, type(self).__name__)
        x = F.relu(self.bn0(self._splits(x)), inplace=True)       # (N, R*C, H, W)
        n, rc, h, w = x.shape
        u = x.reshape(n, self.radix, rc // self.radix, h, w)       # the R splits: (N, R, C, H, W)
        s = u.sum(1).mean((2, 3), keepdim=True)                    # fuse + GAP: (N, C, 1, 1)
        z = F.relu(self.bn1(self.fc1(s)), inplace=True)            # (N, d, 1, 1)
        a = self.rsoftmax(self.fc2(z).flatten(1))                  # (N, R, C)
        self.last_attention = a.detach()
        return (u * a[..., None, None]).sum(1)                     # V = sum_r a_r U_r: (N, C, H, W)


class MixedKernelSplitAttn(SplitAttn):
    """Split-Attention whose R radix splits use different kernels (SK-style extension).

    ``kernel_sizes=(3, 5)`` gives R = 2: split 0 sees 3x3, split 1 sees 5x5.
    ``dilations`` (default all 1) can replace big kernels by dilated 3x3s, as SKNet
    does. Each split r is its own grouped convolution (``groups=K``) over input
    slice r, so the channel layout is the radix-major one of :class:`SplitAttn`;
    with all kernels equal it computes exactly what :class:`SplitAttn` does (see
    :func:`mixed_from_plain`). Parameter names: ``convs.<r>`` instead of ``conv``.
    """

    def __init__(self, in_channels: int, out_channels: int | None = None,
                 kernel_sizes: Sequence[int] = (3, 5), dilations: Sequence[int] | None = None,
                 stride: int = 1, cardinality: int = 1, reduction: int = 4,
                 attn_channels: int | None = None):
        kernel_sizes = tuple(kernel_sizes)
        dilations = tuple(dilations) if dilations is not None else (1,) * len(kernel_sizes)
        if len(kernel_sizes) < 1 or len(dilations) != len(kernel_sizes):
            raise ValueError(f"need one dilation per kernel size, got kernel_sizes={kernel_sizes} "
                             f"and dilations={dilations}")
        if any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel sizes must be odd (so padding keeps the size), got {kernel_sizes}")
        super().__init__(in_channels, out_channels, kernel_sizes[0], stride, dilations[0],
                         cardinality, len(kernel_sizes), reduction, attn_channels)
        self.kernel_sizes, self.dilations = kernel_sizes, dilations
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels // self.radix, self.out_channels, k, stride,
                      padding=d * (k - 1) // 2, dilation=d, groups=cardinality, bias=False)
            for k, d in zip(kernel_sizes, dilations))

    def _make_conv(self, *args) -> None:
        return None  # one convolution per split instead: self.convs

    def _splits(self, x: torch.Tensor) -> torch.Tensor:
        chunks = x.chunk(self.radix, dim=1)                        # R x (N, Cin/R, H, W)
        return torch.cat([conv(u) for conv, u in zip(self.convs, chunks)], dim=1)  # (N, R*C, H', W')


class CardinalGroup(nn.Module):
    """One cardinal group of :class:`SplitAttnCardinal`: R splits and their attention.

    ``conv``: ``Cin/K -> R*Ck`` in R groups (split r reads the r-th slice of the
    group's input); the R outputs sit next to each other. Then the SKNet recipe:
    sum the splits, GAP, ``fc1`` (Ck -> dk) + BN + ReLU, ``fc2`` (dk -> R*Ck), softmax
    over R (sigmoid if R = 1), weighted sum.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, dilation: int = 1, radix: int = 2, attn_channels: int = 32):
        super().__init__()
        self.radix = radix
        self.conv = nn.Conv2d(in_channels, out_channels * radix, kernel_size, stride,
                              padding=dilation * (kernel_size - 1) // 2, dilation=dilation,
                              groups=radix, bias=False)
        self.bn0 = nn.BatchNorm2d(out_channels * radix)
        self.fc1 = nn.Conv2d(out_channels, attn_channels, 1)
        self.bn1 = nn.BatchNorm2d(attn_channels)
        self.fc2 = nn.Conv2d(attn_channels, out_channels * radix, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the output ``(N, Ck, H, W)`` and the attention ``(N, R, Ck)``."""
        u = F.relu(self.bn0(self.conv(x)), inplace=True)           # (N, R*Ck, H, W)
        n, rc, h, w = u.shape
        u = u.reshape(n, self.radix, rc // self.radix, h, w)       # the R splits: (N, R, Ck, H, W)
        s = u.sum(1).mean((2, 3), keepdim=True)                    # fuse + GAP: (N, Ck, 1, 1)
        z = F.relu(self.bn1(self.fc1(s)), inplace=True)            # (N, dk, 1, 1)
        logits = self.fc2(z).view(n, self.radix, -1)               # (N, R, Ck)
        a = torch.softmax(logits, 1) if self.radix > 1 else torch.sigmoid(logits)
        return (u * a[..., None, None]).sum(1), a                  # (N, Ck, H, W), (N, R, Ck)


class SplitAttnCardinal(_Sizes):
    """Split-Attention convolution, cardinality-major layout (report Fig. 4).

    The input is cut into K cardinal groups, each handled by a
    :class:`CardinalGroup` that attends over its own R splits; the K outputs are
    concatenated. Same arguments as :class:`SplitAttn`, same numbers of
    parameters, same function up to the channel orders explained in
    :func:`radix_input_order`. :attr:`last_attention` is ``(N, R, C)`` as in
    :class:`SplitAttn`.
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, kernel_size: int = 3,
                 stride: int = 1, dilation: int = 1, cardinality: int = 1, radix: int = 2,
                 reduction: int = 4, attn_channels: int | None = None):
        super().__init__(in_channels, out_channels, cardinality, radix, reduction, attn_channels)
        k = cardinality
        self.cardinals = nn.ModuleList(
            CardinalGroup(in_channels // k, self.out_channels // k, kernel_size, stride, dilation,
                          radix, self.attn_channels // k)
            for _ in range(k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs, attns = zip(*(g(xk) for g, xk in zip(self.cardinals, x.chunk(self.cardinality, 1))))
        self.last_attention = torch.cat(attns, 2).detach()          # (N, R, C)
        return torch.cat(outs, 1)                                  # (N, C, H, W)


def radix_input_order(in_channels: int, cardinality: int, radix: int) -> torch.Tensor:
    """Index ``p`` with ``SplitAttn(x[:, p]) == SplitAttnCardinal(x)`` once weights are mapped.

    The cardinality-major module hands split r of group k the input slice
    ``k*R + r``; the radix-major grouped conv hands group ``r*K + k`` the slice of
    the same number. ``p`` reorders the slices. In a bottleneck, permuting the
    output rows of the preceding 1x1 convolution (and its BN) by ``p`` does the same.
    """
    _check_split(in_channels, in_channels, cardinality, radix)
    size = in_channels // (cardinality * radix)
    slices = torch.arange(in_channels).view(cardinality, radix, size)  # [k, r] -> channels
    return slices.transpose(0, 1).reshape(-1)                           # radix-major order


def _card_stack(card: SplitAttnCardinal, name: str) -> list[torch.Tensor]:
    return [g.get_parameter(name) if "running" not in name else g.get_buffer(name)
            for g in card.cardinals]


def _radix_major(t: torch.Tensor, k: int, r: int) -> torch.Tensor:
    """(K*R*Ck, ...) in order (k, r, j) -> the same rows in order (r, k, j)."""
    rest = t.shape[1:]
    return t.reshape(k, r, -1, *rest).transpose(0, 1).reshape(-1, *rest)


def _card_major(t: torch.Tensor, k: int, r: int) -> torch.Tensor:
    """(R*K*Ck, ...) in order (r, k, j) -> the same rows in order (k, r, j)."""
    rest = t.shape[1:]
    return t.reshape(r, k, -1, *rest).transpose(0, 1).reshape(-1, *rest)


def _check_pair(card: SplitAttnCardinal, radix: SplitAttn) -> None:
    mine = (card.in_channels, card.out_channels, card.cardinality, card.radix, card.attn_channels)
    theirs = (radix.in_channels, radix.out_channels, radix.cardinality, radix.radix,
              radix.attn_channels)
    if mine != theirs:
        raise ValueError("the two modules differ in (in_channels, out_channels, K, R, d): "
                         f"{mine} vs {theirs}")


@torch.no_grad()
def cardinal_to_radix(card: SplitAttnCardinal, radix: SplitAttn | None = None) -> SplitAttn:
    """Copy a cardinality-major module's weights into a radix-major one (built if None).

    Afterwards ``radix(x[:, radix_input_order(...)]) == card(x)``. Only the split
    convolution and ``bn0`` change order: the grouped ``fc2`` of both layouts
    already emits its logits cardinal-major, and ``fc1``/``bn1`` are per group.
    """
    if radix is None:
        conv = card.cardinals[0].conv
        radix = SplitAttn(card.in_channels, card.out_channels, conv.kernel_size[0], conv.stride[0],
                          conv.dilation[0], card.cardinality, card.radix,
                          attn_channels=card.attn_channels)
    _check_pair(card, radix)
    k, r = card.cardinality, card.radix
    cat = lambda name: torch.cat(_card_stack(card, name), 0)  # noqa: E731  (K blocks, k-major)
    radix.conv.weight.copy_(_radix_major(cat("conv.weight"), k, r))
    for name in BN_TENSORS:
        getattr(radix.bn0, name).copy_(_radix_major(cat(f"bn0.{name}"), k, r))
        getattr(radix.bn1, name).copy_(cat(f"bn1.{name}"))
    for name in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
        radix.get_parameter(name).copy_(cat(name))
    return radix


@torch.no_grad()
def radix_to_cardinal(radix: SplitAttn, card: SplitAttnCardinal | None = None) -> SplitAttnCardinal:
    """The inverse of :func:`cardinal_to_radix`."""
    if isinstance(radix, MixedKernelSplitAttn):
        raise ValueError("radix_to_cardinal needs a plain SplitAttn (one kernel size for all splits)")
    if card is None:
        conv = radix.conv
        card = SplitAttnCardinal(radix.in_channels, radix.out_channels, conv.kernel_size[0],
                                 conv.stride[0], conv.dilation[0], radix.cardinality, radix.radix,
                                 attn_channels=radix.attn_channels)
    _check_pair(card, radix)
    k, r = radix.cardinality, radix.radix

    def put(name: str, tensor: torch.Tensor) -> None:
        for g, part in zip(card.cardinals, tensor.chunk(k, 0)):
            target = g.get_parameter(name) if "running" not in name else g.get_buffer(name)
            target.copy_(part)

    put("conv.weight", _card_major(radix.conv.weight, k, r))
    for name in BN_TENSORS:
        put(f"bn0.{name}", _card_major(getattr(radix.bn0, name), k, r))
        put(f"bn1.{name}", getattr(radix.bn1, name))
    for name in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
        put(name, radix.get_parameter(name))
    return card


@torch.no_grad()
def mixed_from_plain(plain: SplitAttn) -> MixedKernelSplitAttn:
    """A :class:`MixedKernelSplitAttn` with all kernels equal that computes what ``plain`` does."""
    conv = plain.conv
    k = conv.kernel_size[0]
    mixed = MixedKernelSplitAttn(plain.in_channels, plain.out_channels, (k,) * plain.radix,
                                 (conv.dilation[0],) * plain.radix, conv.stride[0],
                                 plain.cardinality, attn_channels=plain.attn_channels)
    state = {key: v for key, v in plain.state_dict().items() if not key.startswith("conv.")}
    for r, part in enumerate(conv.weight.chunk(plain.radix, 0)):  # split r = rows r*C:(r+1)*C
        state[f"convs.{r}.weight"] = part
    mixed.load_state_dict(state)
    return mixed
