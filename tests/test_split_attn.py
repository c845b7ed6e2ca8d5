"""Split-Attention: timm's layout and keys, the two layouts, R = 1 vs R > 1, mixed kernels."""
import pytest
import torch
from timm.layers import SplitAttn as TimmSplitAttn
from torch import nn

from course_lib.blocks.split_attn import (MixedKernelSplitAttn, RadixSoftmax, SplitAttn,
                                          SplitAttnCardinal, cardinal_to_radix, mixed_from_plain,
                                          radix_input_order, radix_to_cardinal, split_attn_channels)
from helpers_blocks import one_thread, randomize_bn  # noqa: F401 (autouse fixture)

GRID = [(1, 1), (1, 2), (2, 1), (2, 2), (2, 3), (4, 2)]  # (K, R)


def _random_radix(k, r, cin=None, cout=None, seed=0, **kwargs):
    torch.manual_seed(seed)
    cin = cin or 12 * k * r
    module = SplitAttn(cin, cout or 8 * k, cardinality=k, radix=r, **kwargs)
    return randomize_bn(module, seed=seed).eval()


@pytest.mark.parametrize("k,r", GRID)
@pytest.mark.parametrize("stride", [1, 2])
def test_same_keys_and_outputs_as_timm(k, r, stride):
    torch.manual_seed(0)
    cin, cout = 16 * k * r, 8 * k
    theirs = TimmSplitAttn(cin, cout, stride=stride, groups=k, radix=r, norm_layer=nn.BatchNorm2d)
    randomize_bn(theirs, seed=1).eval()
    mine = SplitAttn(cin, cout, stride=stride, cardinality=k, radix=r).eval()
    assert set(mine.state_dict()) == set(theirs.state_dict())
    mine.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, cin, 7, 7)
    with torch.no_grad():
        torch.testing.assert_close(mine(x), theirs(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("k,r", [(2, 2), (2, 3), (4, 2), (3, 1)])
def test_cardinality_major_equals_radix_major(k, r):
    """Random weights, K > 1: any mix-up of the (k, r) order changes the output."""
    radix = _random_radix(k, r, seed=k * 10 + r)
    card = radix_to_cardinal(radix).eval()
    x = torch.randn(3, radix.in_channels, 6, 6)
    p = radix_input_order(radix.in_channels, k, r)
    with torch.no_grad():
        y_card = card(x)
        y_radix = radix(x[:, p])
    torch.testing.assert_close(y_card, y_radix, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(card.last_attention, radix.last_attention, atol=1e-6, rtol=1e-5)
    assert y_card.std() > 0.05
    # and back again, onto a fresh module
    back = cardinal_to_radix(card, SplitAttn(radix.in_channels, radix.out_channels,
                                             cardinality=k, radix=r)).eval()
    with torch.no_grad():
        torch.testing.assert_close(back(x[:, p]), y_radix, atol=1e-6, rtol=1e-6)


def test_wrong_order_would_be_seen():
    radix = _random_radix(2, 2, seed=7)
    card = radix_to_cardinal(radix).eval()
    x = torch.randn(2, radix.in_channels, 6, 6)
    with torch.no_grad():
        assert (card(x) - radix(x)).abs().max() > 1e-3   # without the input order
    with torch.no_grad():                                # cardinal groups swapped
        first = card.cardinals[0].state_dict()
        card.cardinals[0].load_state_dict(card.cardinals[1].state_dict())
        card.cardinals[1].load_state_dict(first)
        p = radix_input_order(radix.in_channels, 2, 2)
        assert (card(x) - radix(x[:, p])).abs().max() > 1e-3


def test_inside_a_bottleneck_the_1x1_absorbs_the_input_order():
    """1x1 conv -> Split-Attention: permuting the 1x1's rows makes both layouts agree on x."""
    k, r, c = 2, 2, 32
    torch.manual_seed(0)
    card = randomize_bn(SplitAttnCardinal(c, c, cardinality=k, radix=r), seed=2).eval()
    conv1 = nn.Conv2d(48, c, 1, bias=False)
    p = radix_input_order(c, k, r)
    conv1_radix = nn.Conv2d(48, c, 1, bias=False)
    with torch.no_grad():
        conv1_radix.weight.copy_(conv1.weight[p])
    radix = cardinal_to_radix(card).eval()
    x = torch.randn(2, 48, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(radix(conv1_radix(x)), card(conv1(x)), atol=1e-5, rtol=1e-5)


def test_same_parameter_count_in_both_layouts():
    radix = SplitAttn(64, 64, cardinality=4, radix=2)
    card = SplitAttnCardinal(64, 64, cardinality=4, radix=2)
    assert sum(p.numel() for p in radix.parameters()) == sum(p.numel() for p in card.parameters())


def test_radix_one_is_a_sigmoid_gate():
    m = _random_radix(2, 1, seed=3)
    x = torch.randn(2, m.in_channels, 5, 5)
    with torch.no_grad():
        y = m(x)
        u = torch.relu(m.bn0(m.conv(x)))
    a = m.last_attention
    assert a.shape == (2, 1, m.out_channels)
    assert ((a > 0) & (a < 1)).all() and not torch.allclose(a.sum(1), torch.ones(2, m.out_channels))
    torch.testing.assert_close(y, u * a[:, 0, :, None, None])


@pytest.mark.parametrize("k,r", [(1, 2), (2, 4)])
def test_radix_above_one_is_a_softmax_over_splits(k, r):
    m = _random_radix(k, r, seed=4)
    x = torch.randn(2, m.in_channels, 5, 5)
    with torch.no_grad():
        y = m(x)
        u = torch.relu(m.bn0(m.conv(x))).view(2, r, m.out_channels, 5, 5)
    a = m.last_attention
    assert a.shape == (2, r, m.out_channels)
    torch.testing.assert_close(a.sum(1), torch.ones(2, m.out_channels))
    torch.testing.assert_close(y, (u * a[..., None, None]).sum(1), atol=1e-5, rtol=1e-5)


def test_radix_softmax_layout():
    """fc2 emits (K, R, Ck); the weights come out (R, K*Ck), softmax over R."""
    logits = torch.arange(2 * 2 * 3 * 3, dtype=torch.float).view(2, -1)
    w = RadixSoftmax(radix=3, cardinality=2)(logits)
    assert w.shape == (2, 3, 6)
    expected = torch.softmax(logits.view(2, 2, 3, 3), dim=2).permute(0, 2, 1, 3).reshape(2, 3, 6)
    torch.testing.assert_close(w, expected)


@pytest.mark.parametrize("size", [2, 8])
def test_inference_and_autograd_paths_agree(size):
    """The no-grad path (pool first, fused multiply-adds) equals the autograd path."""
    m = _random_radix(2, 3, seed=5)
    x = torch.randn(2, m.in_channels, size, size)
    with torch.no_grad():
        fast = m(x)
    slow = m(x.clone().requires_grad_())
    torch.testing.assert_close(fast, slow.detach(), atol=1e-6, rtol=1e-5)


def test_channels_last_input():
    m = _random_radix(2, 2, seed=6)
    x = torch.randn(2, m.in_channels, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(m(x.contiguous(memory_format=torch.channels_last)), m(x))


def test_gradients_reach_every_parameter():
    m = SplitAttn(32, 32, cardinality=2, radix=2).train()
    m(torch.randn(4, 32, 6, 6)).square().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_attention_width():
    assert split_attn_channels(64, 2) == 32
    assert split_attn_channels(256, 2) == 128
    assert split_attn_channels(24, 1) == 32           # the floor of 32
    assert split_attn_channels(24, 1, cardinality=3) == 33  # d/K units per cardinal group
    assert SplitAttn(64, 64, radix=2).fc1.out_channels == 32


@pytest.mark.parametrize("kwargs,match", [
    (dict(in_channels=30, cardinality=2, radix=2), "divisible by G = K\\*R"),
    (dict(in_channels=32, out_channels=30, cardinality=4, radix=1), "divisible by the cardinality"),
    (dict(in_channels=32, radix=-1), "radix R must be >= 1"),
    (dict(in_channels=32, radix=0), "radix 0 means a plain grouped convolution"),
    (dict(in_channels=32, cardinality=0), "cardinality K must be >= 1"),
    (dict(in_channels=32, cardinality=4, radix=1, attn_channels=6), "multiple of the cardinality"),
    (dict(in_channels=32, reduction=0), "reduction"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SplitAttn(**kwargs)
    with pytest.raises(ValueError, match=match):
        SplitAttnCardinal(**kwargs)


def test_mapping_refuses_different_shapes():
    with pytest.raises(ValueError, match="differ"):
        cardinal_to_radix(SplitAttnCardinal(32, cardinality=2), SplitAttn(32, cardinality=1))


# --- the extension: radix splits with their own kernel sizes ------------------------------

def test_mixed_kernels_shapes_and_radix():
    torch.manual_seed(0)
    m = MixedKernelSplitAttn(48, 32, kernel_sizes=(3, 5, 7), cardinality=2, stride=2)
    assert m.radix == 3 and len(m.convs) == 3
    assert [c.kernel_size for c in m.convs] == [(3, 3), (5, 5), (7, 7)]
    y = m(torch.randn(2, 48, 9, 9))
    assert y.shape == (2, 32, 5, 5)
    assert m.last_attention.shape == (2, 3, 32)
    torch.testing.assert_close(m.last_attention.sum(1), torch.ones(2, 32))


def test_mixed_kernels_with_equal_kernels_is_the_plain_block():
    plain = _random_radix(2, 3, seed=8)
    mixed = mixed_from_plain(plain).eval()
    x = torch.randn(2, plain.in_channels, 7, 7)
    with torch.no_grad():
        torch.testing.assert_close(mixed(x), plain(x), atol=1e-5, rtol=1e-5)


def test_mixed_kernels_dilations():
    m = MixedKernelSplitAttn(16, 16, kernel_sizes=(3, 3), dilations=(1, 2))
    assert [c.dilation for c in m.convs] == [(1, 1), (2, 2)]
    assert m(torch.randn(2, 16, 8, 8)).shape == (2, 16, 8, 8)


def test_mixed_kernels_gradients_flow():
    m = MixedKernelSplitAttn(32, 32, kernel_sizes=(3, 5), cardinality=2).train()
    x = torch.randn(4, 32, 8, 8, requires_grad=True)
    m(x).square().mean().backward()
    assert x.grad.abs().sum() > 0
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kwargs,match", [
    (dict(kernel_sizes=(3, 4)), "odd"),
    (dict(kernel_sizes=(3, 5), dilations=(1,)), "one dilation"),
    (dict(kernel_sizes=()), "one dilation"),
])
def test_mixed_kernels_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MixedKernelSplitAttn(32, 32, **kwargs)
