"""Bad arguments and inputs get a ValueError that names the parameter and the fix, before torch fails.

Each case here failed deep inside torch (or silently did the wrong thing) before these checks.
"""
import pytest
import torch

from course_lib.blocks.grouped import ResNeXtBlock
from course_lib.blocks.resnest import ResNeSt
from course_lib.blocks.se import SqueezeExcite
from course_lib.blocks.sk import SelectiveKernel
from course_lib.blocks.split_attn import SplitAttn
from course_lib.engine.recipes import get_recipe
from course_lib.models.factory import create_model


@pytest.mark.parametrize("build,match", [
    (lambda: SplitAttn(0), "in_channels must be >= 1"),
    (lambda: SplitAttn(-8), "in_channels must be >= 1"),
    (lambda: SplitAttn(32, 0), "out_channels must be >= 1"),
    (lambda: SplitAttn(32, kernel_size=0), "kernel_size must be >= 1"),
    (lambda: SplitAttn(32, kernel_size=4), "kernel_size must be odd .* use 3 or 5"),
    (lambda: SplitAttn(32, stride=0), "stride must be >= 1"),
    (lambda: SplitAttn(32, radix="2"), "radix R must be a whole number .* \\(write 2\\)"),
    (lambda: SplitAttn(32.0), "must be a whole number"),
    (lambda: SqueezeExcite(64, hidden_channels=0), "hidden_channels must be >= 1"),
    (lambda: SqueezeExcite(0), "channels must be >= 1"),
    (lambda: SelectiveKernel(32, stride=0), "stride must be >= 1"),
    (lambda: SelectiveKernel(0), "in_channels must be >= 1"),
    (lambda: ResNeXtBlock(0, 32, 4), "in_channels must be >= 1"),
    (lambda: ResNeSt(layers=14), "layers must be 4 positive block counts.*\\(1, 1, 1, 1\\)"),
    (lambda: ResNeSt(layers=(1, 1, 1, 1), width=0), "bottleneck width must be >= 1"),
])
def test_bad_block_arguments_are_named(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize("make,x,match", [
    (lambda: SplitAttn(32), torch.randn(32, 8, 8), "one image\\? add the batch dimension"),
    (lambda: SplitAttn(32), torch.randn(2, 16, 8, 8), "built for 32 input channels, got 16"),
    (lambda: SplitAttn(32), torch.randn(1, 32, 8, 8), "batch of 1 image.*\\.eval\\(\\)"),
    (lambda: SelectiveKernel(32), torch.randn(1, 32, 8, 8), "batch of 1 image"),
    (lambda: ResNeSt(layers=(1, 1, 1, 1), num_classes=10), torch.randn(3, 32, 32), "add the batch dimension"),
    (lambda: ResNeSt(layers=(1, 1, 1, 1), num_classes=10), torch.randn(2, 1, 32, 32), "built for 3 input"),
])
def test_bad_inputs_are_named_before_torch_fails(make, x, match):
    with pytest.raises(ValueError, match=match):
        make().train()(x)


def test_one_image_in_eval_mode_is_fine():
    assert SplitAttn(32).eval()(torch.randn(1, 32, 8, 8)).shape == (1, 32, 8, 8)


@pytest.mark.parametrize("kwargs,match", [
    (dict(radix="2"), "radix R must be a whole number"),
    (dict(num_classes=10.5), "num_classes must be a whole number"),
    (dict(layers=14), "layers must be 4 positive block counts"),
])
def test_create_model_type_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_model("ResNeSt-14-2s1x64d", **kwargs)


def test_a_huge_model_is_refused_before_any_memory_is_taken():
    with pytest.raises(ValueError, match=r"5,752 M parameters .* max_params = 200 M"):
        create_model("ResNeSt-14-2s1000x64d", num_classes=10)
    small = create_model("ResNeSt-14-2s1x64d", num_classes=10, max_params=9_000_000)
    assert sum(p.numel() for p in small.parameters()) < 9_000_000


@pytest.mark.parametrize("changes,match", [
    (dict(lr="0.1"), "lr must be a finite number, got '0.1'"),
    (dict(lr=float("inf")), "lr must be a finite number, got inf"),
    (dict(momentum=float("nan")), "momentum must be a finite number"),
    (dict(flip="yes"), "flip must be True or False"),
    (dict(epochs=2.5), "epochs must be an integer >= 1"),
])
def test_recipe_values_are_checked_for_type(changes, match):
    with pytest.raises(ValueError, match=match):
        get_recipe("study", **changes)
