"""Squeeze-and-Excitation: the formulas, inspectable gates, and timm's SE-ResNet weights."""
import pytest
import timm
import torch
from torch import nn

from course_lib.blocks.se import SqueezeExcite, pooled_fc
from helpers_blocks import one_thread, randomize_bn  # noqa: F401 (autouse fixture)


def test_gate_follows_the_formulas():
    torch.manual_seed(0)
    se = SqueezeExcite(32, reduction=4)
    x = torch.randn(3, 32, 5, 6)
    s = x.mean((2, 3))                                            # squeeze
    w1, b1 = se.fc1.weight.view(8, 32), se.fc1.bias
    w2, b2 = se.fc2.weight.view(32, 8), se.fc2.bias
    a = torch.sigmoid(torch.relu(s @ w1.T + b1) @ w2.T + b2)      # excitation
    y = se(x)
    torch.testing.assert_close(se.last_gate, a)
    torch.testing.assert_close(y, x * a[:, :, None, None])
    assert se.last_gate.shape == (3, 32)
    assert ((0 < se.last_gate) & (se.last_gate < 1)).all()
    assert not se.last_gate.requires_grad


def test_hidden_width():
    assert SqueezeExcite(256).hidden_channels == 16
    assert SqueezeExcite(64, hidden_channels=8).fc1.out_channels == 8


@pytest.mark.parametrize("kwargs,match", [
    (dict(channels=8, reduction=16), "too few"),
    (dict(channels=64, reduction=0), "reduction"),
    (dict(channels=0), "channels"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SqueezeExcite(**kwargs)


def test_wrong_input_channels():
    with pytest.raises(ValueError, match="expected"):
        SqueezeExcite(32)(torch.randn(1, 16, 4, 4))


def test_pooled_fc_is_the_1x1_convolution():
    torch.manual_seed(0)
    conv = nn.Conv2d(32, 16, 1)
    s = torch.randn(5, 32)
    torch.testing.assert_close(pooled_fc(conv, s), conv(s[..., None, None]).flatten(1))
    with pytest.raises(ValueError, match="dense 1x1"):
        pooled_fc(nn.Conv2d(32, 16, 1, groups=4), s)


@pytest.fixture(scope="module")
def seresnet18():
    torch.manual_seed(0)
    return randomize_bn(timm.create_model("seresnet18", num_classes=10), seed=3).eval()


def _timm_se(model):
    return [(n, m) for n, m in model.named_modules() if type(m).__name__ == "SEModule"]


def test_each_timm_se_module_loads_and_agrees(seresnet18):
    found = _timm_se(seresnet18)
    assert len(found) == 8
    torch.manual_seed(1)
    for name, theirs in found:
        mine = SqueezeExcite(theirs.fc1.in_channels, hidden_channels=theirs.fc1.out_channels)
        mine.load_state_dict(theirs.state_dict(), strict=True)
        x = torch.randn(2, theirs.fc1.in_channels, 5, 5)
        with torch.no_grad():
            torch.testing.assert_close(mine(x), theirs(x), atol=1e-6, rtol=1e-5, msg=name)


def test_swapped_into_seresnet18_gives_the_same_logits(seresnet18):
    import copy
    swapped = copy.deepcopy(seresnet18)
    for name, theirs in _timm_se(swapped):
        mine = SqueezeExcite(theirs.fc1.in_channels, hidden_channels=theirs.fc1.out_channels)
        mine.load_state_dict(theirs.state_dict())
        block = swapped.get_submodule(name.rsplit(".", 1)[0])
        block.se = mine
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = seresnet18(x)
        torch.testing.assert_close(swapped(x), ref, atol=1e-5, rtol=1e-5)
    gates = [m.last_gate for m in swapped.modules() if isinstance(m, SqueezeExcite)]
    assert len(gates) == 8 and all(g.shape[0] == 2 for g in gates)
