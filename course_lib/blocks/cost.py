"""What a layer or a network costs: parameters and multiply-adds (MACs).

Two ways that must agree:

- by formula: :func:`conv_params` and :func:`conv_macs` for one convolution, and
  :func:`grouped_saving` for the g-fold saving of a grouped convolution,
  ``O(n_i n_o)`` -> ``O(n_i n_o / g)``;
- by counting: :func:`count_params` over a module's parameters and
  :func:`count_macs`, which runs one forward pass under
  ``torch.utils.flop_counter.FlopCounterMode``. That counter sees convolutions and
  matrix products (2 FLOPs per multiply-add); BN, activations, pooling and the
  attention's softmax are not counted, as is usual for "MACs" tables.
"""
from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["conv_params", "conv_macs", "grouped_saving", "count_params", "count_macs"]


def _out_size(size: int, kernel_size: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def conv_params(n_in: int, n_out: int, kernel_size: int = 3, groups: int = 1,
                bias: bool = False) -> int:
    """Weights of a k x k convolution: ``n_out * (n_in / groups) * k^2`` (+ n_out biases)."""
    if groups < 1 or n_in % groups or n_out % groups:
        raise ValueError(f"groups ({groups}) must be >= 1 and divide n_in ({n_in}) and n_out ({n_out})")
    return n_out * (n_in // groups) * kernel_size ** 2 + (n_out if bias else 0)


def conv_macs(n_in: int, n_out: int, height: int, width: int, kernel_size: int = 3,
              groups: int = 1, stride: int = 1, padding: int | None = None) -> int:
    """Multiply-adds of one image through the convolution: one per weight per output pixel."""
    padding = kernel_size // 2 if padding is None else padding
    h, w = (_out_size(s, kernel_size, stride, padding) for s in (height, width))
    return conv_params(n_in, n_out, kernel_size, groups) * h * w


def grouped_saving(n_in: int, n_out: int, groups: int, kernel_size: int = 3,
                   height: int = 1, width: int = 1) -> dict:
    """Dense against grouped convolution: parameters, MACs and the ratio (= groups)."""
    dense_p = conv_params(n_in, n_out, kernel_size)
    grouped_p = conv_params(n_in, n_out, kernel_size, groups)
    dense_m = conv_macs(n_in, n_out, height, width, kernel_size)
    grouped_m = conv_macs(n_in, n_out, height, width, kernel_size, groups)
    return {"dense_params": dense_p, "grouped_params": grouped_p,
            "dense_macs": dense_m, "grouped_macs": grouped_m,
            "saving": dense_p / grouped_p}


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors counted once)."""
    seen = {id(p): p for p in model.parameters() if p.requires_grad or not trainable_only}
    return sum(p.numel() for p in seen.values())


def count_macs(model: nn.Module, input_size=(3, 224, 224), by_module: bool = False):
    """Multiply-adds of one image's forward pass (eval mode), counted by FlopCounterMode.

    ``by_module=True`` returns ``{module name: MACs}`` for the top-level children
    instead of the total (handy for "where does the cost go" tables).
    """
    was_training = model.training
    model.eval()
    p = next(model.parameters(), None)
    x = torch.zeros(1, *input_size, device=p.device if p is not None else "cpu",
                    dtype=p.dtype if p is not None else torch.float32)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    if not by_module:
        return counter.get_total_flops() // 2
    table = defaultdict(int)
    for name, ops in counter.get_flop_counts().items():
        parts = name.split(".")
        if len(parts) == 2:  # "Global" is the total; "Global.child" the top-level children
            table[parts[1]] += sum(ops.values()) // 2
    return dict(table)
