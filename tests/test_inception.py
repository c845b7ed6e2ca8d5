"""The Inception module of chapter 1: four paths, concatenated, at the cost its layers add up to."""
import pytest
import torch

from course_lib.blocks.cost import conv_params, count_params
from course_lib.blocks.inception import InceptionBlock
from helpers_blocks import one_thread  # noqa: F401 (autouse fixture)

SIZES = (192, 64, 96, 128, 16, 32, 32)   # GoogLeNet's first Inception module, "3a"


def test_output_is_the_concatenation_of_the_paths():
    torch.manual_seed(0)
    block = InceptionBlock(*SIZES).eval()
    x = torch.randn(2, 192, 7, 7)
    with torch.no_grad():
        y = block(x)
        parts = [path(x) for path in block.paths().values()]
    assert y.shape == (2, 256, 7, 7) and block.out_channels == 256
    assert [p.shape[1] for p in parts] == [64, 128, 32, 32]
    torch.testing.assert_close(y, torch.cat(parts, 1))


def test_parameters_follow_the_formula():
    c, o1, r3, o3, r5, o5, pp = SIZES
    weights = (conv_params(c, o1, 1, bias=True) + conv_params(c, r3, 1, bias=True)
               + conv_params(r3, o3, 3, bias=True) + conv_params(c, r5, 1, bias=True)
               + conv_params(r5, o5, 5, bias=True) + conv_params(c, pp, 1, bias=True))
    assert count_params(InceptionBlock(*SIZES)) == weights


def test_each_path_sees_every_input_channel():
    torch.manual_seed(0)
    block = InceptionBlock(8, 2, 3, 4, 2, 2, 2).eval()
    x = torch.randn(1, 8, 5, 5, requires_grad=True)
    for name, path in block.paths().items():
        x.grad = None
        path(x).abs().sum().backward()
        touched = x.grad.abs().sum(dim=(0, 2, 3)) > 0
        assert touched.all(), name


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="out_3x3"):
        InceptionBlock(16, 4, 4, 0, 4, 4, 4)
    with pytest.raises(ValueError, match="16 input channels"):
        InceptionBlock(16, 4, 4, 4, 4, 4, 4)(torch.randn(1, 8, 5, 5))
