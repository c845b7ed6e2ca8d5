"""Helpers of the block tests: random BatchNorm statistics, one thread per test module."""
import pytest
import torch
from torch import nn


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small forwards gain nothing from a second thread, and on a busy shared machine
    a second thread waits for CPU time at every operation. Imported by a test module,
    this fixture runs it on one thread and restores the count afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@torch.no_grad()
def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BN a random scale, shift and running statistics (in place).

    timm zero-initialises the last BN of each residual block, which silences the
    whole residual branch: a layout bug there would not change the output. The
    ranges keep ResNeSt-101's logits of order 1 (float error ~1e-6) while a
    wrong channel order in one block moves them by ~1e-2.
    """
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.weight.copy_(torch.rand(c, generator=g) * 0.5 + 0.5)
            m.bias.copy_(torch.randn(c, generator=g) * 0.5)
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    return model
