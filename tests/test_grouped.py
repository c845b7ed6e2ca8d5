"""Grouped convolution, the two ResNeXt forms of Fig. 1, and the cost formulas."""
import pytest
import torch
from torch import nn

from course_lib.blocks.cost import conv_macs, conv_params, count_macs, count_params, grouped_saving
from course_lib.blocks.grouped import (ResNeXtBlock, ResNeXtBranchBlock, branches_to_grouped,
                                grouped_conv_by_loop, grouped_to_branches)
from helpers_blocks import one_thread, randomize_bn  # noqa: F401 (autouse fixture)


@pytest.mark.parametrize("groups,stride,padding", [(1, 1, 1), (4, 1, 1), (8, 2, 0)])
def test_grouped_conv_is_split_convolve_concatenate(groups, stride, padding):
    torch.manual_seed(0)
    conv = nn.Conv2d(32, 64, 3, stride, padding, groups=groups, bias=False)
    x = torch.randn(2, 32, 9, 9)
    by_loop = grouped_conv_by_loop(x, conv.weight, groups, stride, padding)
    torch.testing.assert_close(by_loop, conv(x), atol=1e-5, rtol=1e-5)


def test_grouped_conv_by_loop_rejects_bad_groups():
    with pytest.raises(ValueError, match="divide"):
        grouped_conv_by_loop(torch.randn(1, 30, 4, 4), torch.randn(8, 10, 3, 3), groups=4)
    with pytest.raises(ValueError, match="expects"):
        grouped_conv_by_loop(torch.randn(1, 32, 4, 4), torch.randn(8, 4, 3, 3), groups=4)


@pytest.mark.parametrize("cardinality,out_channels,stride", [(4, None, 1), (8, 96, 2), (2, 64, 1)])
def test_both_forms_compute_the_same(cardinality, out_channels, stride):
    torch.manual_seed(cardinality)
    grouped = randomize_bn(ResNeXtBlock(64, 32, cardinality, out_channels, stride), seed=1).eval()
    branched = grouped_to_branches(grouped).eval()
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        y = grouped(x)
        torch.testing.assert_close(branched(x), y, atol=1e-5, rtol=1e-5)
        assert y.std() > 0.1  # the residual branch is not silent
    # and back: a fresh grouped block from the branches gives the same again
    again = branches_to_grouped(branched).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x), y, atol=1e-5, rtol=1e-5)


def test_mapping_is_not_trivial():
    """With the branches shuffled the outputs differ: the test above can see layout bugs."""
    torch.manual_seed(0)
    grouped = randomize_bn(ResNeXtBlock(64, 32, 4), seed=2).eval()
    branched = grouped_to_branches(grouped).eval()
    first = branched.branches[0].state_dict()
    branched.branches[0].load_state_dict(branched.branches[1].state_dict())
    branched.branches[1].load_state_dict(first)
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        assert (branched(x) - grouped(x)).abs().max() > 1e-3


def test_both_forms_cost_the_same():
    grouped, branched = ResNeXtBlock(256, 128, 32), ResNeXtBranchBlock(256, 128, 32)
    assert count_params(grouped) == count_params(branched)
    assert count_macs(grouped, (256, 14, 14)) == count_macs(branched, (256, 14, 14))


def test_mapping_checks_shapes():
    with pytest.raises(ValueError, match="differ"):
        grouped_to_branches(ResNeXtBlock(64, 32, 4), ResNeXtBranchBlock(64, 32, 8))


@pytest.mark.parametrize("bottleneck,cardinality", [(30, 4), (2, 4), (32, 0)])
def test_bad_block_arguments(bottleneck, cardinality):
    with pytest.raises(ValueError, match="cardinality"):
        ResNeXtBlock(64, bottleneck, cardinality)
    with pytest.raises(ValueError, match="cardinality"):
        ResNeXtBranchBlock(64, bottleneck, cardinality)


@pytest.mark.parametrize("n_in,n_out,k,groups", [(64, 128, 3, 1), (64, 128, 3, 8), (256, 256, 1, 32)])
def test_conv_formulas_match_the_counters(n_in, n_out, k, groups):
    conv = nn.Conv2d(n_in, n_out, k, padding=k // 2, groups=groups, bias=False)
    assert conv_params(n_in, n_out, k, groups) == count_params(conv)
    assert conv_macs(n_in, n_out, 10, 12, k, groups) == count_macs(conv, (n_in, 10, 12))
    with_bias = nn.Conv2d(n_in, n_out, k, groups=groups)
    assert conv_params(n_in, n_out, k, groups, bias=True) == count_params(with_bias)


def test_strided_conv_macs():
    conv = nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)
    assert conv_macs(16, 32, 15, 15, 3, stride=2) == count_macs(conv, (16, 15, 15))


@pytest.mark.parametrize("groups", [1, 2, 4, 32])
def test_grouped_saving_is_g_fold(groups):
    saving = grouped_saving(128, 256, groups, 3, 8, 8)
    assert saving["saving"] == groups
    assert saving["dense_macs"] == groups * saving["grouped_macs"]
    assert saving["dense_params"] == 128 * 256 * 9


def test_conv_params_rejects_bad_groups():
    with pytest.raises(ValueError, match="divide"):
        conv_params(30, 64, 3, groups=4)


def test_count_macs_by_module_adds_up():
    from course_lib import create_model
    model = create_model("ResNeSt-14", num_classes=10)
    parts = count_macs(model, (3, 32, 32), by_module=True)
    assert set(parts) >= {"conv1", "layer1", "layer2", "layer3", "layer4", "fc"}
    assert sum(parts.values()) == count_macs(model, (3, 32, 32))
    assert model.training  # restored


def test_count_params_trainable_only():
    block = ResNeXtBlock(64, 32, 4)
    for p in block.conv1.parameters():
        p.requires_grad_(False)
    assert count_params(block, trainable_only=True) == count_params(block) - block.conv1.weight.numel()
