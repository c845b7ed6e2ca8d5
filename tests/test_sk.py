"""Selective Kernel: shapes, attention over branches, and timm's SK-ResNet weights."""
import copy

import pytest
import timm
import torch

from course_lib.blocks.sk import SelectiveKernel, sk_attn_channels
from helpers_blocks import one_thread, randomize_bn  # noqa: F401 (autouse fixture)


def test_shapes_and_attention():
    torch.manual_seed(0)
    sk = SelectiveKernel(32, 64, kernel_sizes=(3, 5, 7), dilations=None, stride=2)
    y = sk(torch.randn(4, 32, 9, 9))
    assert y.shape == (4, 64, 5, 5)
    a = sk.last_attention
    assert a.shape == (4, 3, 64)                        # (N, R, C)
    torch.testing.assert_close(a.sum(1), torch.ones(4, 64))
    assert not a.requires_grad


def test_output_is_the_attention_weighted_sum():
    torch.manual_seed(0)
    sk = randomize_bn(SelectiveKernel(16, 16, groups=4), seed=1).eval()
    x = torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        y = sk(x)
        u = [path(x) for path in sk.paths]
    a = sk.last_attention
    expected = sum(a[:, i, :, None, None] * u[i] for i in range(2))
    torch.testing.assert_close(y, expected)


def test_hidden_width_is_max_of_c_over_r_and_l():
    assert sk_attn_channels(256, 16, 32) == 32
    assert sk_attn_channels(1024, 16, 32) == 64
    assert SelectiveKernel(64).attn.fc_reduce.out_channels == 32


@pytest.mark.parametrize("kwargs,match", [
    (dict(in_channels=16, kernel_sizes=(3,), dilations=None), "R >= 2"),
    (dict(in_channels=16, kernel_sizes=(3, 4), dilations=None), "odd"),
    (dict(in_channels=16, kernel_sizes=(3, 3), dilations=(1,)), "one dilation"),
    (dict(in_channels=15, split_input=True), "divisible"),
    (dict(in_channels=16, groups=3), "groups"),
    (dict(in_channels=16, reduction=0), "reduction"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SelectiveKernel(**kwargs)


def _timm_sk(model):
    return [(n, m) for n, m in model.named_modules() if type(m).__name__ == "SelectiveKernel"]


def _mine_like(theirs, reduction, min_attn):
    conv = theirs.paths[0].conv
    return SelectiveKernel(theirs.in_channels, theirs.out_channels, kernel_sizes=(3, 3),
                           dilations=(1, 2), stride=conv.stride[0], groups=conv.groups,
                           reduction=reduction, min_attn_channels=min_attn,
                           split_input=theirs.split_input)


@pytest.fixture(scope="module")
def skresnet18():
    torch.manual_seed(0)
    return randomize_bn(timm.create_model("skresnet18", num_classes=10), seed=4).eval()


def test_each_timm_sk_module_loads_and_agrees(skresnet18):
    found = _timm_sk(skresnet18)
    assert len(found) == 8
    torch.manual_seed(1)
    for name, theirs in found:
        # skresnet18: rd_ratio 1/8, rounded to 16 -> d = max(C/8, 16); split input
        mine = _mine_like(theirs, reduction=8, min_attn=16).eval()
        mine.load_state_dict(theirs.state_dict(), strict=True)
        x = torch.randn(2, theirs.in_channels, 6, 6)
        with torch.no_grad():
            torch.testing.assert_close(mine(x), theirs(x), atol=1e-5, rtol=1e-5, msg=name)


def test_swapped_into_skresnet18_gives_the_same_logits(skresnet18):
    swapped = copy.deepcopy(skresnet18)
    for name, theirs in _timm_sk(swapped):
        mine = _mine_like(theirs, 8, 16).eval()
        mine.load_state_dict(theirs.state_dict())
        parent, child = name.rsplit(".", 1)
        setattr(swapped.get_submodule(parent), child, mine)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(swapped(x), skresnet18(x), atol=1e-5, rtol=1e-5)


def test_grouped_sk_of_skresnext_agrees():
    """skresnext50_32x4d: grouped branches (G=32), no input split, SKNet's L = 32."""
    torch.manual_seed(0)
    model = timm.create_model("skresnext50_32x4d", num_classes=10)
    (name, theirs), *_ = _timm_sk(model)
    randomize_bn(theirs, seed=5).eval()
    mine = _mine_like(theirs, reduction=16, min_attn=32).eval()
    mine.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, theirs.in_channels, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(mine(x), theirs(x), atol=1e-5, rtol=1e-5)
