"""course_lib.device: the device choice and what it implies, tested without a GPU."""
import pytest
import torch
from torch import nn

from course_lib.device import RunSettings, deterministic, hardware, pick_device


def test_auto_picks_cpu_here_and_cuda_first_when_present(monkeypatch):
    if not torch.cuda.is_available():
        assert pick_device().type in ("cpu", "mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("cuda")


def test_unknown_or_missing_device_raises_value_error(monkeypatch):
    with pytest.raises(ValueError, match="'cpu', 'cuda', 'mps'"):
        pick_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA"):
        pick_device("cuda")
    assert pick_device("cpu") == torch.device("cpu")


def test_settings_follow_the_device():
    cpu = RunSettings.for_device(torch.device("cpu"))
    assert (cpu.amp_dtype, cpu.channels_last, cpu.pin_memory, cpu.use_scaler) == (None, False, False, False)
    bf16 = RunSettings.for_device(torch.device("cuda"), bf16_supported=True)
    assert (bf16.amp_dtype, bf16.channels_last, bf16.pin_memory, bf16.non_blocking) == (torch.bfloat16, True, True, True)
    assert not bf16.use_scaler and bf16.precision == "bf16"
    fp16 = RunSettings.for_device(torch.device("cuda:1"), bf16_supported=False)
    assert fp16.amp_dtype == torch.float16 and fp16.use_scaler and fp16.precision == "fp16"
    fp32 = RunSettings.for_device(torch.device("cuda"), amp=False, bf16_supported=True)
    assert fp32.amp_dtype is None and fp32.channels_last and fp32.precision == "fp32"
    mps = RunSettings.for_device(torch.device("mps"))
    assert (mps.amp_dtype, mps.channels_last, mps.pin_memory) == (None, False, False)


def test_cpu_autocast_and_channels_last_paths_run():
    s = RunSettings(torch.device("cpu"), amp_dtype=torch.bfloat16, channels_last=True)
    model = s.prepare_model(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)))
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    with s.autocast():
        y = model(x)
    assert y.dtype == torch.bfloat16 and y.shape == (2, 2)
    assert not s.grad_scaler().is_enabled()


def test_deterministic_block_restores_the_setting():
    before = torch.are_deterministic_algorithms_enabled()
    with deterministic():
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.are_deterministic_algorithms_enabled() == before


def test_hardware_names_cpu_threads_and_torch():
    info = hardware()
    assert info["cpu"] and info["torch_threads"] >= 1 and info["torch"] == torch.__version__ and info["gpu"] is None
