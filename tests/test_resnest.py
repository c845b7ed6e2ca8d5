"""The ResNeSt builder: timm's weights load and agree, the report's parameter counts, names."""
import socket

import pytest
import timm
import torch
from torch import nn

import course_lib
from course_lib.blocks.resnest import ResNeSt, ResNestBottleneck
from course_lib.blocks.split_attn import MixedKernelSplitAttn, SplitAttn
from course_lib.models.factory import create_model
from course_lib.models.names import list_models, parse_name
from course_lib.models.pretrained import PretrainedUnavailableError
from course_lib.study.report import REPORT_PARAMS
from helpers_blocks import one_thread, randomize_bn  # noqa: F401 (autouse fixture)

TIMM_NAMES = ["resnest14d", "resnest26d", "resnest50d", "resnest101e",
              "resnest50d_4s2x40d", "resnest50d_1s4x24d"]


def _pair(name):
    """timm's model with random BN, and ours holding its state dict (strict)."""
    torch.manual_seed(0)
    theirs = randomize_bn(timm.create_model(name, num_classes=10), seed=1).eval()
    with torch.device("meta"):          # skip our own init: every tensor comes from timm
        ours = create_model(name, num_classes=10)
    state = {k: v.clone() for k, v in theirs.state_dict().items()}  # no shared tensors
    ours.load_state_dict(state, strict=True, assign=True)
    return theirs, ours.eval()


@pytest.mark.parametrize("name", TIMM_NAMES)
def test_timm_weights_load_and_give_the_same_logits(name):
    theirs, ours = _pair(name)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref, out = theirs(x), ours(x)
    assert ref.std() > 0.01                      # the logits carry a signal worth comparing
    assert (out - ref).abs().max() < 1e-4


def test_resnet50_is_the_plain_configuration():
    """ResNet-50 = 7x7 stem, strided-conv shortcut, radix 0: timm's (torchvision's) resnet50."""
    torch.manual_seed(0)
    theirs = randomize_bn(timm.create_model("resnet50", num_classes=10), seed=1).eval()
    with torch.device("meta"):
        ours = create_model("ResNet-50", num_classes=10)
    ours.load_state_dict({k: v.clone() for k, v in theirs.state_dict().items()},
                         strict=True, assign=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (ours.eval()(x) - theirs(x)).abs().max() < 1e-4


def test_a_wrong_layout_would_be_caught():
    """Swapping the two radix halves of one block's split conv changes the logits."""
    theirs, ours = _pair("resnest14d")
    with torch.no_grad():
        w = ours.layer2[0].conv2.conv.weight
        w.copy_(torch.cat(w.chunk(2)[::-1]))
        x = torch.randn(1, 3, 64, 64)
        assert (ours(x) - theirs(x)).abs().max() > 1e-3


# --- parameter counts of the report's Tables I and II, with 10 classes ---------------------

def _millions(name, **kw):
    with torch.device("meta"):
        model = create_model(name, num_classes=10, **kw)
    return sum(p.numel() for p in model.parameters()) / 1e6


@pytest.mark.parametrize("name,report", REPORT_PARAMS.items())
def test_parameter_count_matches_the_report(name, report):
    assert abs(_millions(name) - report) <= 0.01


def test_parameter_counts_that_tell_variants_apart():
    # The paper's ResNeSt-101 (timm resnest101e) has a 64-wide stem: 46.25M, not the report's.
    assert abs(_millions("resnest101e") - 46.25) < 0.005
    assert abs(_millions("ResNeSt-101") - REPORT_PARAMS["ResNeSt-101"]) < 0.005
    # rounded to two decimals, all but ResNet-14-0s1x64d (8.0364M) print as in the report
    assert round(_millions("ResNet-14-0s1x64d"), 2) == 8.04


# --- names ---------------------------------------------------------------------------------

def test_parse_report_names():
    c = parse_name("ResNeSt-14-1s2x64d")
    assert (c.layers, c.radix, c.cardinality, c.width) == ((1, 1, 1, 1), 1, 2, 64)
    assert c.deep_stem and c.stem_width == 32 and c.avg_down and c.avd and not c.avd_first
    base = parse_name("ResNet-14-0s1x64d")
    assert (base.radix, base.deep_stem, base.avg_down, base.avd) == (0, False, False, False)
    assert parse_name("ResNeSt-14") == parse_name("ResNeSt-14-2s1x64d").__class__(
        "ResNeSt-14", "resnest", parse_name("ResNeSt-14-2s1x64d").kwargs, None, "resnest14d.gluon_in1k")
    assert parse_name("ResNeSt-32").layers == (2, 3, 3, 2)
    assert parse_name("ResNeSt-101").stem_width == 32
    assert parse_name("resnest101e").stem_width == 64
    assert parse_name("resnest-50").name == "ResNeSt-50"      # case does not matter
    assert parse_name("ResNet-50").pretrained == "resnet50.tv_in1k"


def test_parse_timm_names_and_baselines():
    c = parse_name("resnest50d_4s2x40d")
    assert (c.radix, c.cardinality, c.width, c.avd_first) == (4, 2, 40, True)
    assert parse_name("EfficientNet-b2").timm_name == "efficientnet_b2"
    assert parse_name("efficientnet_b2").name == "EfficientNet-b2"
    assert parse_name("EfficientNet b2").name == "EfficientNet-b2"   # as in Table II
    assert parse_name("ResNet-18").builder == "timm"


def test_every_listed_name_parses():
    names = list_models()
    assert {"ResNeSt-14-2s1x64d", "ResNet-14-0s1x64d", "ResNeSt-32", "resnest101e",
            "EfficientNet-b3", "ResNet-18"} <= set(names)
    for name in names:
        parse_name(name)


@pytest.mark.parametrize("name,match", [
    ("ResNeSt-15", "depth 15 has no layer configuration"),
    ("ResNeSt-50-2s1x64", "neither a known name"),
    ("resnest50", "Did you mean: .*resnest50d"),
    ("EfficientNet-b9", "Accepted: "),
    ("", "non-empty"),
    ("ResNeSt-14-2s0x64d", "cardinality K"),
    ("ResNeSt-14-2s1x0d", "width"),
])
def test_unknown_or_broken_names(name, match):
    with pytest.raises(ValueError, match=match):
        parse_name(name)


@pytest.mark.parametrize("name,kwargs,match", [
    ("ResNeSt-14", dict(radix=-1), "radix R must be >= 0"),
    ("ResNeSt-14", dict(cardinality=0), "cardinality K must be >= 1"),
    ("ResNeSt-14", dict(layers=(1, 1, 1)), "4 positive block counts"),
    ("ResNeSt-14", dict(drop_rate=1.5), "drop_rate"),
    ("ResNeSt-14-64s1x1d", {}, "too small"),
    ("ResNeSt-14-2s1x9d", {}, "divisible by G = K\\*R"),
    ("ResNeSt-14", dict(colour="red"), "unknown option"),
])
def test_bad_configurations(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_model(name, num_classes=10, **kwargs)


# --- the network ---------------------------------------------------------------------------

def test_forward_shapes_and_head():
    model = create_model("ResNeSt-14", num_classes=10, drop_rate=0.2).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert model.forward_features(x).shape == (2, 2048, 1, 1)
        assert model(x).shape == (2, 10)
    assert model.drop_rate == 0.2
    model.reset_classifier(2)
    assert model.get_classifier().out_features == 2


def test_resnet14_stem_and_blocks():
    """The report's three differences: 7x7 stem vs deep stem, shortcut pooling, avd."""
    plain, nest = create_model("ResNet-14"), create_model("ResNeSt-14-0s1x64d")
    assert isinstance(plain.conv1, nn.Conv2d) and plain.conv1.kernel_size == (7, 7)
    assert [m.kernel_size for m in nest.conv1 if isinstance(m, nn.Conv2d)] == [(3, 3)] * 3
    assert isinstance(plain.layer2[0].downsample[0], nn.Conv2d)
    assert plain.layer2[0].downsample[0].stride == (2, 2)
    assert isinstance(nest.layer2[0].downsample[0], nn.AvgPool2d)
    assert plain.layer2[0].avd_last is None and nest.layer2[0].avd_last is not None
    assert nest.layer1[0].avd_last is None            # no avd where the block does not stride
    assert isinstance(plain.layer1[0].conv2, nn.Conv2d)
    assert isinstance(create_model("ResNet-14-1s1x64d").layer1[0].conv2, SplitAttn)


def test_mixed_kernels_in_the_network():
    model = create_model("ResNeSt-14", num_classes=10, kernel_sizes=(3, 5), zero_init_last=False)
    assert isinstance(model.layer1[0].conv2, MixedKernelSplitAttn)
    model.train()
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert model.layer3[0].conv2.convs[1].weight.grad.abs().sum() > 0


def test_bottleneck_alone():
    block = ResNestBottleneck(64, 16, stride=2, downsample=nn.Sequential(
        nn.Conv2d(64, 64, 1, 2, bias=False), nn.BatchNorm2d(64)), radix=2, cardinality=2,
        width=64, avd=True)
    assert block(torch.randn(2, 64, 8, 8)).shape == (2, 64, 4, 4)


def test_top_level_exports():
    assert course_lib.create_model is create_model
    assert course_lib.ResNeSt is ResNeSt
    assert "ResNeSt-50" in course_lib.list_models()
    assert course_lib.parse_name("ResNeSt-50").layers == (3, 4, 6, 3)


def test_timm_baselines_are_built_by_timm():
    with torch.device("meta"):
        model = create_model("ResNet-18", num_classes=10)
    assert type(model).__module__.startswith("timm")


# --- pretrained weights --------------------------------------------------------------------

@pytest.fixture
def offline(monkeypatch):
    """No network: every TCP connection fails at once, and nothing is cached; counts the attempts."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[0] if args else kwargs.get("address"))
        raise OSError("network is unreachable (test)")
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr("course_lib.models.pretrained._cached_weights", lambda name: None)
    return attempts


@pytest.mark.parametrize("name", ["ResNeSt-50", "resnest14d", "ResNet-18"])
def test_pretrained_offline_fails_fast_and_says_why(offline, name):
    with pytest.raises(PretrainedUnavailableError, match="cannot be reached.*no network"):
        create_model(name, num_classes=2, pretrained=True)
    assert 1 <= len(offline) <= 2   # one look at the hub, no retry loop (speed-independent "fast")


def test_pretrained_where_no_weights_exist():
    with pytest.raises(PretrainedUnavailableError, match="no ImageNet weights exist"):
        create_model("ResNeSt-14-1s2x64d", pretrained=True)
    with pytest.raises(PretrainedUnavailableError, match="does not exist"):
        create_model("ResNeSt-14", pretrained="/nonexistent/weights.pth")
    with pytest.raises(ValueError, match="overrides"):
        create_model("ResNeSt-14", pretrained=True, radix=4)


def test_pretrained_from_a_saved_file(tmp_path, offline):
    """The real loading path, offline: timm's ImageNet-shaped state dict saved to a file."""
    torch.manual_seed(0)
    source = timm.create_model("resnest14d")                    # 1000 classes, as published
    path = tmp_path / "resnest14d.pth"
    torch.save(source.state_dict(), path)
    model = create_model("ResNeSt-14", num_classes=2, pretrained=path)
    assert model.fc.out_features == 2                           # a fresh classifier
    torch.testing.assert_close(model.layer3[0].conv2.fc2.weight, source.layer3[0].conv2.fc2.weight)
    torch.testing.assert_close(model.conv1[0].weight, source.conv1[0].weight)


def test_pretrained_from_our_own_checkpoint(tmp_path):
    """A course_lib model saved after training (here: as a checkpoint's "model") loads back."""
    torch.manual_seed(0)
    trained = create_model("ResNeSt-14-1s2x64d", num_classes=10, kernel_sizes=(3, 5))
    path = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 3, "model": trained.state_dict()}, path)
    same = create_model("ResNeSt-14-1s2x64d", num_classes=10, kernel_sizes=(3, 5), pretrained=path)
    torch.testing.assert_close(same.fc.weight, trained.fc.weight)      # same head shape: kept
    other = create_model("ResNeSt-14-1s2x64d", num_classes=3, kernel_sizes=(3, 5), pretrained=path)
    assert other.fc.out_features == 3
    with pytest.raises(PretrainedUnavailableError, match="do not fit"):
        create_model("ResNeSt-14", pretrained=path)
