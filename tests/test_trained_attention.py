"""The trained networks of chapters 4-5 and the tools that read their attention (course_lib.study)."""
import json
import tomllib
from pathlib import Path

import matplotlib
import pytest
import torch

from course_lib import create_model
from course_lib.blocks.cost import count_params
from course_lib.blocks.split_attn import MixedKernelSplitAttn, SplitAttn
from course_lib.figures.splits import draw_radix_splits
from course_lib.study import attention as at
from course_lib.study import trained

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- eta^2 and its control
def test_eta_squared_is_one_when_the_class_is_everything_and_near_zero_when_nothing():
    labels = torch.arange(10).repeat(20)                                   # 200 images, 20 per class
    by_class = labels.float()[:, None].repeat(1, 3)                        # (N, 3): a function of the class
    assert torch.allclose(at.eta_squared(by_class, labels), torch.ones(3))
    noise = torch.randn(200, 3, generator=torch.Generator().manual_seed(0))
    assert (at.eta_squared(noise, labels) < 0.2).all()


def test_eta_squared_is_the_between_class_share_of_the_sum_of_squares():
    g = torch.Generator().manual_seed(1)
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    values = torch.randn(6, 2, generator=g)
    total = ((values - values.mean(0)) ** 2).sum(0)
    within = sum(((values[labels == m] - values[labels == m].mean(0)) ** 2).sum(0) for m in range(3))
    assert torch.allclose(at.eta_squared(values, labels, 3), 1 - within / total, atol=1e-6)
    assert torch.allclose(at.class_means(values, labels, 3)[1], values[2:5].mean(0))


@pytest.mark.parametrize("values,labels,match", [
    (torch.zeros(4), torch.zeros(4, dtype=torch.long), "values must be"),
    (torch.zeros(4, 2), torch.zeros(3, dtype=torch.long), "same N"),
    (torch.zeros(4, 2), torch.tensor([0, 0, 1, 1]), "every one of the 3 classes"),
    (torch.zeros(4, 2), torch.tensor([0, 1, 2, 3]), "no label may"),
])
def test_eta_squared_names_bad_input(values, labels, match):
    with pytest.raises(ValueError, match=match):
        at.eta_squared(values, labels, 3)


def test_shuffled_labels_are_a_repeatable_permutation():
    labels = torch.arange(10).repeat(5)
    a, b = at.shuffled(labels, 0), at.shuffled(labels, 0)
    assert torch.equal(a, b) and not torch.equal(a, labels)
    assert torch.equal(a.sort().values, labels.sort().values)


# --------------------------------------------------------------------------- zoom and blur
def test_zoom_and_blur_keep_the_shape_and_leave_scale_one_alone():
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for s in (0.5, 0.75, 1.5, 2.0):
        assert at.zoom(x, s).shape == x.shape
    assert torch.allclose(at.zoom(x, 1.0), x, atol=1e-5)
    assert torch.allclose(at.blur(x, 1.0), x, atol=1e-5)
    assert at.blur(x, 2.0).shape == x.shape


def test_zoom_out_pads_with_the_mean_and_zoom_in_enlarges_the_centre():
    x = torch.ones(1, 3, 32, 32)
    small = at.zoom(x, 0.5)                                                # 16 x 16 in the middle
    assert small[..., :8, :].abs().max() == 0 and torch.allclose(small[..., 8:24, 8:24], torch.ones(1, 3, 16, 16))
    x = torch.zeros(1, 1, 32, 32)
    x[..., 8:24, 8:24] = 1.0                                               # a 16-pixel square
    assert at.zoom(x, 2.0).min() > 0.99                                    # fills the whole image


# --------------------------------------------------------------------------- reading a block
@pytest.mark.parametrize("block", [SplitAttn(32, 32, cardinality=2, radix=2),
                                   MixedKernelSplitAttn(32, 32, (3, 5)),
                                   SplitAttn(24, 24, cardinality=1, radix=3)])
def test_split_parts_give_v_as_the_weighted_sum_of_the_splits(block):
    torch.manual_seed(0)
    x = torch.randn(2, 32 if block.in_channels == 32 else 24, 8, 8)
    parts = at.split_parts(block, x)
    r, c = block.radix, block.out_channels
    assert parts["U"].shape == (2, r, c, 8, 8) and parts["a"].shape == (2, r, c)
    assert (parts["U"] >= 0).all()                                         # after the ReLU
    assert torch.allclose((parts["U"] * parts["a"][..., None, None]).sum(1), parts["V"], atol=1e-5)


def quarter_net(**options):
    torch.manual_seed(0)
    return create_model("ResNeSt-14-2s1x64d", num_classes=10, base_planes=16, stem_width=16, **options).eval()


def test_collect_attention_returns_every_layer_in_order():
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    preds, att = at.collect_attention(quarter_net(), images, batch_size=2)
    assert preds.shape == (5,) and list(att) == [f"layer{i}.0.conv2" for i in (1, 2, 3, 4)]
    assert [tuple(a.shape) for a in att.values()] == [(5, 2, 16), (5, 2, 32), (5, 2, 64), (5, 2, 128)]
    assert all(torch.allclose(a.sum(1), torch.ones(5, a.shape[2])) for a in att.values())
    _, zoomed = at.collect_attention(quarter_net(), images, transform=lambda x: at.zoom(x, 2.0))
    assert not torch.equal(zoomed["layer1.0.conv2"], att["layer1.0.conv2"])
    x = at.block_input(quarter_net(), "layer1.0.conv2", images[:2])
    assert x.shape == (2, 16, 8, 8)


def test_collect_attention_refuses_a_network_without_split_attention():
    with pytest.raises(ValueError, match="no Split-Attention"):
        at.collect_attention(quarter_net(radix=0), torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def test_base_planes_scales_every_stage_and_64_is_resnest():
    assert count_params(create_model("ResNeSt-14", num_classes=10)) == count_params(
        create_model("ResNeSt-14", num_classes=10, base_planes=64))
    net = quarter_net()
    assert [net.get_submodule(f"layer{i}.0.conv3").out_channels for i in (1, 2, 3, 4)] == [64, 128, 256, 512]
    with pytest.raises(ValueError, match="base_planes"):
        create_model("ResNeSt-14", base_planes=0)


def test_draw_radix_splits_draws_a_row_per_channel_and_checks_shapes():
    u, a, v = torch.rand(2, 4, 8, 8), torch.full((2, 4), 0.5), torch.rand(4, 8, 8)
    image = torch.zeros(3, 32, 32, dtype=torch.uint8)
    fig = draw_radix_splits(image, u, a, v, channels=[0, 3], split_names=["3x3", "5x5"])
    assert len(fig.axes) == 2 * 5
    with pytest.raises(ValueError, match="channels"):
        draw_radix_splits(image, u, a, v, channels=[4])
    with pytest.raises(ValueError, match="need U"):
        draw_radix_splits(image, u, a[:1], v, channels=[0])


# --------------------------------------------------------------------------- the shipped weights
def _ship(directory: Path, key="plain", seed=0) -> Path:
    torch.manual_seed(0)
    path = trained.weights_file(key, seed, directory)
    sha = trained.save_fp16(trained.build(key), path)
    (directory / trained.MANIFEST).write_text(json.dumps({key: {str(seed): {"sha256": sha}}}))
    return path


def test_weights_round_trip_through_float16(tmp_path):
    path = _ship(tmp_path)
    state = torch.load(path, weights_only=True)
    assert all(v.dtype in (torch.float16, torch.int64) for v in state.values())
    model = trained.load_trained("plain", 0, tmp_path)
    assert not model.training and next(model.parameters()).dtype == torch.float32
    assert torch.equal(model.state_dict()["fc.weight"], state["fc.weight"].float())


def test_a_damaged_weight_file_names_itself_and_its_rebuild_command(tmp_path):
    path = _ship(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(trained.WeightsError, match="damaged") as err:
        trained.load_trained("plain", 0, tmp_path)
    assert str(path) in str(err.value)
    assert "python -m course_lib.study.trained --nets plain --seeds 0" in str(err.value)


def test_missing_weights_say_how_to_build_them(tmp_path):
    with pytest.raises(trained.WeightsError, match="--nets mixed --seeds 1"):
        trained.load_trained("mixed", 1, tmp_path)                           # no manifest entry
    _ship(tmp_path).unlink()
    with pytest.raises(trained.WeightsError, match="missing"):
        trained.load_trained("plain", 0, tmp_path)
    with pytest.raises(ValueError, match="unknown trained network"):
        trained.load_trained("wide", 0, tmp_path)


def test_shipped_weights_match_their_checksums_and_stay_small():
    manifest = trained.read_manifest()
    if not manifest:
        pytest.skip("no trained weights shipped yet")
    for key, seeds in manifest.items():
        for seed, entry in seeds.items():
            path = trained.weights_file(key, int(seed))
            assert trained.file_sha256(path) == entry["sha256"], path
            assert path.stat().st_size <= 2 * 2 ** 20, f"{path} is larger than 2 MiB"
            assert entry["command"] == trained.rebuild_command(key, int(seed))
    table = trained.summary_table()
    assert len(table) == sum(len(seeds) for seeds in manifest.values())
    assert (table["MiB"] <= 2).all() and table["val acc"].between(0.1, 1).all()


def test_the_wheel_carries_the_weights():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert {"weights/*.pt", "weights/trained.json"} <= set(data["course_lib.study"])


def test_untrained_is_the_same_start_for_the_same_seed():
    a, b, c = trained.untrained("plain", 1), trained.untrained("plain", 1), trained.untrained("plain", 2)
    assert torch.equal(a.fc.weight, b.fc.weight) and not torch.equal(a.fc.weight, c.fc.weight)


def test_build_weights_trains_saves_records_and_loads_back(tmp_path, monkeypatch):
    """The whole command on a tiny stand-in data set (no CIFAR-10 needed, one short epoch)."""
    from course_lib.engine.data import TensorImages
    g = torch.Generator().manual_seed(0)

    def fake(n):
        return TensorImages(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                            torch.arange(n) % 10, tuple(f"c{i}" for i in range(10)))

    monkeypatch.setattr(trained, "load_data", lambda *a, **k: {"train": fake(40), "val": fake(20),
                                                               "test": fake(20)})
    tiny = trained.TrainedNet("plain", overrides=dict(base_planes=8, stem_width=8), epochs=1, batch_size=20)
    monkeypatch.setitem(trained.NETWORKS, "plain", tiny)
    manifest = trained.build_weights(["plain"], [0], tmp_path)
    entry = manifest["plain"]["0"]
    assert entry["sha256"] == trained.file_sha256(tmp_path / "plain_seed0.pt")
    assert entry["epochs"] == 1 and entry["train_images"] == 40 and 0 <= entry["test_acc"] <= 1
    assert entry["command"] == "python -m course_lib.study.trained --nets plain --seeds 0"
    assert json.loads((tmp_path / trained.MANIFEST).read_text()) == manifest
    assert trained.load_trained("plain", 0, tmp_path).fc.in_features == 8 * 8 * 4
