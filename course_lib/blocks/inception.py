"""The Inception module of GoogLeNet: split, transform, merge with paths that differ.

Four paths read the same input and keep its height and width; their outputs are
concatenated along the channels:

- a 1x1 convolution;
- a 1x1 that narrows the channels, then a 3x3;
- a 1x1 that narrows the channels, then a 5x5;
- a 3x3 max pool (stride 1), then a 1x1.

Every convolution has a bias and is followed by a ReLU, as in GoogLeNet (which
predates batch norm). Chapter 1 builds it next to ResNeXt's block, whose paths
are all alike.
"""
from __future__ import annotations

import torch
from torch import nn

from .grouped import check_input, check_int

__all__ = ["InceptionBlock"]


def conv_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """A k x k convolution that keeps the map's size, then a ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
                         nn.ReLU(inplace=True))


class InceptionBlock(nn.Module):
    """Four different paths over one input, concatenated (GoogLeNet's Inception module).

    Args:
        in_channels: channels of the input.
        out_1x1: outputs of the 1x1 path.
        reduce_3x3, out_3x3: the narrowing 1x1 and the outputs of the 3x3 path.
        reduce_5x5, out_5x5: the same for the 5x5 path.
        pool_proj: outputs of the 1x1 after the max pool.
    The block returns ``out_1x1 + out_3x3 + out_5x5 + pool_proj`` channels.
    """

    def __init__(self, in_channels: int, out_1x1: int, reduce_3x3: int, out_3x3: int,
                 reduce_5x5: int, out_5x5: int, pool_proj: int):
        super().__init__()
        sizes = dict(in_channels=in_channels, out_1x1=out_1x1, reduce_3x3=reduce_3x3, out_3x3=out_3x3,
                     reduce_5x5=reduce_5x5, out_5x5=out_5x5, pool_proj=pool_proj)
        for name, value in sizes.items():
            check_int(name, value)
        self.in_channels = in_channels
        self.out_channels = out_1x1 + out_3x3 + out_5x5 + pool_proj
        self.path_1x1 = conv_relu(in_channels, out_1x1, 1)
        self.path_3x3 = nn.Sequential(conv_relu(in_channels, reduce_3x3, 1),
                                      conv_relu(reduce_3x3, out_3x3, 3))
        self.path_5x5 = nn.Sequential(conv_relu(in_channels, reduce_5x5, 1),
                                      conv_relu(reduce_5x5, out_5x5, 5))
        self.path_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                       conv_relu(in_channels, pool_proj, 1))

    def paths(self) -> dict[str, nn.Module]:
        """The four paths by name, in the order of the output channels."""
        return {"1x1": self.path_1x1, "3x3": self.path_3x3, "5x5": self.path_5x5,
                "pool": self.path_pool}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, False, "InceptionBlock")
        outs = [path(x) for path in self.paths().values()]   # 4 x (N, c_path, H, W)
        return torch.cat(outs, dim=1)                        # (N, out_channels, H, W)
