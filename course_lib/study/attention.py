"""Reading a trained network's Split-Attention on real images (chapters 4 and 5).

- :func:`collect_attention`: every Split-Attention layer's weights ``a`` (N, R, C)
  for a batch of uint8 images, with the predicted classes;
- :func:`eta_squared`, :func:`class_means`, :func:`shuffled`: how much of a weight's
  variance over images the class explains (chapter 2's one-way analysis of variance),
  and the shuffled-label control;
- :func:`zoom`, :func:`blur`: chapter 3's change of object size and its blur control;
- :func:`split_parts`: the radix splits U, the weights a and the output V of one block.

Symbols: N images, R radix splits, C channels of a block's 3x3 stage (B in chapter 5).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks.split_attn import SplitAttn
from ..engine.data import CIFAR10_MEAN, CIFAR10_STD, normalize

__all__ = ["split_attention_layers", "collect_attention", "class_means", "eta_squared", "shuffled",
           "zoom", "blur", "split_parts", "block_input"]


def split_attention_layers(model: nn.Module) -> dict[str, SplitAttn]:
    """The Split-Attention convolutions of ``model`` by name, in forward order ('layer1.0.conv2', ...)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, SplitAttn)}


@torch.no_grad()
def collect_attention(model: nn.Module, images: torch.Tensor, transform=None, batch_size: int = 500,
                      mean=CIFAR10_MEAN, std=CIFAR10_STD) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(predicted classes (N,), {layer: weights (N, R, C)}) for uint8 images (N, 3, H, W).

    ``transform`` acts on the normalised batch (e.g. ``lambda x: zoom(x, 2)``).
    """
    model.eval()
    layers = split_attention_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no Split-Attention layer (radix 0?): nothing to collect")
    preds, parts = [], {name: [] for name in layers}
    for chunk in images.split(batch_size):
        x = normalize(chunk, mean, std)                               # (b, 3, H, W)
        preds.append(model(transform(x) if transform else x).argmax(1))
        for name, layer in layers.items():
            parts[name].append(layer.last_attention)                  # (b, R, C)
    return torch.cat(preds), {name: torch.cat(p) for name, p in parts.items()}


def class_means(values: torch.Tensor, labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """Mean of every column over the images of each class: (N, C) -> (classes, C)."""
    _check_pairs(values, labels, num_classes)
    return torch.stack([values[labels == m].mean(0) for m in range(num_classes)])


def eta_squared(values: torch.Tensor, labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """Per column, the share of its variance over images that the class explains: (N, C) -> (C,).

    eta^2_c = sum_m n_m (mean_{c,m} - mean_c)^2 / sum_n (value_{c,n} - mean_c)^2, in [0, 1].
    """
    values = values.double()
    overall = values.mean(0)                                          # (C,)
    counts = torch.bincount(labels, minlength=num_classes).double()[:, None]  # (classes, 1)
    between = (counts * (class_means(values, labels, num_classes) - overall) ** 2).sum(0)
    total = ((values - overall) ** 2).sum(0)
    return (between / total.clamp_min(1e-30)).float()


def _check_pairs(values: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
    if values.ndim != 2 or labels.ndim != 1 or len(values) != len(labels):
        raise ValueError(f"values must be (N, C) and labels (N,) for the same N images, got "
                         f"{tuple(values.shape)} and {tuple(labels.shape)}")
    present = torch.bincount(labels, minlength=num_classes)
    if len(present) > num_classes or (present == 0).any():
        raise ValueError(f"every one of the {num_classes} classes needs at least one image, and no label may "
                         f"reach {num_classes}; counts per class: {present.tolist()}")


def shuffled(labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The labels in a random order: the control that gives eta^2's value by chance."""
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


def _resize(x: torch.Tensor, size: int, antialias: bool = False) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=antialias, align_corners=False)


def zoom(x: torch.Tensor, s: float) -> torch.Tensor:
    """Normalised images (N, 3, n, n) with their content scaled by ``s`` about the centre.

    s > 1 enlarges the central n/s pixels to n; s < 1 shrinks the image to n*s pixels and
    pads it with 0, the mean colour after normalisation.
    """
    n = x.shape[-1]
    if s >= 1:
        m = round(n / s)
        o = (n - m) // 2
        return _resize(x[..., o:o + m, o:o + m], n)                   # (N, 3, n, n)
    m = round(n * s)
    o = (n - m) // 2
    return F.pad(_resize(x, m, antialias=True), (o, n - m - o, o, n - m - o))


def blur(x: torch.Tensor, s: float) -> torch.Tensor:
    """The control for zoom(x, s), s >= 1: the same loss of detail (down to n/s pixels and back up),
    the objects at their size."""
    n = x.shape[-1]
    return _resize(_resize(x, round(n / s), antialias=True), n)       # (N, 3, n, n)


@torch.no_grad()
def block_input(model: nn.Module, layer: str, images: torch.Tensor, mean=CIFAR10_MEAN,
                std=CIFAR10_STD) -> torch.Tensor:
    """What the submodule ``layer`` receives when ``model`` sees uint8 ``images``."""
    seen = []
    handle = model.get_submodule(layer).register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    try:
        model.eval()(normalize(images, mean, std))
    finally:
        handle.remove()
    return seen[0]


@torch.no_grad()
def split_parts(block: SplitAttn, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """U (N, R, C, H, W): the radix splits after BN + ReLU; a (N, R, C): their weights;
    V (N, C, H, W): the block's output, equal to sum_i a_i U_i."""
    seen = []
    handle = block.bn0.register_forward_hook(lambda m, args, out: seen.append(F.relu(out)))
    try:
        v = block.eval()(x)                                           # (N, C, H, W)
    finally:
        handle.remove()
    n, rc, h, w = seen[0].shape
    u = seen[0].view(n, block.radix, rc // block.radix, h, w)         # (N, R, C, H, W)
    return {"U": u, "a": block.last_attention, "V": v}
