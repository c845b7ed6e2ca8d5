"""course_lib.engine.timing: exact multiply-adds, and timing records with the right structure (no thresholds)."""
import pytest
import torch
from torch import nn

from course_lib.engine.device import RunSettings
from course_lib.engine.timing import benchmark, count_macs, measure_latency, measure_train_speed


def _tiny():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def test_macs_of_a_conv_and_a_linear_are_exact():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_macs(conv, (3, 32, 32)) == 8 * 32 * 32 * (3 * 3 * 3)           # C_out*H*W*(C_in*k*k)
    assert count_macs(nn.Conv2d(4, 8, 3, padding=1, groups=2), (4, 16, 16)) == 8 * 16 * 16 * (2 * 3 * 3)
    assert count_macs(_tiny(), (3, 32, 32)) == 8 * 32 * 32 * 27 + 8 * 10


def test_latency_record_is_complete_and_positive():
    model = _tiny()
    rec = measure_latency(model, batch_size=8, warmup=1, repeats=3)
    assert rec["mode"] == "inference" and rec["batch_size"] == 8 and rec["repeats"] == 3 and len(rec["times_ms"]) == 3
    assert rec["ms_per_image"] > 0 and rec["img_per_s"] > 0
    assert rec["ms_per_image"] * rec["img_per_s"] == pytest.approx(1000)
    assert rec["device"] == "cpu" and rec["hardware"]["cpu"]
    assert rec["precision"] == RunSettings.for_device("cpu").precision   # the engine's settings for this CPU
    assert model.training  # the caller's model is untouched


def test_train_speed_leaves_the_model_unchanged():
    model = _tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rec = measure_train_speed(model, batch_size=8, warmup=1, repeats=2)
    assert rec["mode"] == "train" and rec["img_per_s"] > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_benchmark_bundles_params_macs_latency():
    out = benchmark(_tiny(), batch_size=4, warmup=0, repeats=1, train=True)
    assert out["params"] == 8 * 27 + 8 + 16 + 80 + 10 and out["macs"] > 0
    assert {"latency", "train_speed"} <= set(out)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="batch_size"):
        measure_latency(_tiny(), batch_size=0)


def test_cpu_clock_is_recorded_and_refused_on_a_gpu():
    rec = measure_latency(_tiny(), batch_size=4, warmup=0, repeats=2, clock="cpu")
    assert rec["clock"] == "CPU time" and rec["ms_per_image"] > 0
    assert measure_train_speed(_tiny(), batch_size=4, warmup=0, repeats=1)["clock"] == "elapsed time"
    gpu = RunSettings.for_device(torch.device("cuda"), bf16_supported=True)  # no GPU needed: refused first
    with pytest.raises(ValueError, match="clock='wall'"):
        measure_latency(_tiny(), clock="cpu", settings=gpu)
    with pytest.raises(ValueError, match="unknown clock 'gpu'"):
        measure_latency(_tiny(), clock="gpu")
