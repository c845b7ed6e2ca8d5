"""course_lib.engine.device: the device choice and what it implies, tested without a GPU."""
import pytest
import torch
from torch import nn

from course_lib.engine.device import (PointwiseConv2d, RunSettings, cpu_supports_bf16, deterministic, hardware,
                               pick_device, pointwise_as_matmul)


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
    cpu = RunSettings.for_device(torch.device("cpu"), bf16_supported=False)
    assert (cpu.amp_dtype, cpu.channels_last, cpu.pin_memory, cpu.use_scaler) == (None, False, False, False)
    fast = RunSettings.for_device(torch.device("cpu"), bf16_supported=True)
    assert (fast.precision, fast.channels_last, fast.pin_memory, fast.use_scaler) == ("bf16", True, False, False)
    plain = RunSettings.for_device(torch.device("cpu"), precision="fp32", bf16_supported=True)
    assert (plain.precision, plain.channels_last, plain.compile) == ("fp32", False, False)
    assert RunSettings.for_device("cpu", amp=False, bf16_supported=True).precision == "fp32"
    bf16 = RunSettings.for_device(torch.device("cuda"), bf16_supported=True)
    assert (bf16.amp_dtype, bf16.channels_last, bf16.pin_memory, bf16.non_blocking) == (torch.bfloat16, True, True, True)
    assert not bf16.use_scaler and bf16.precision == "bf16"
    fp16 = RunSettings.for_device(torch.device("cuda:1"), bf16_supported=False)
    assert fp16.amp_dtype == torch.float16 and fp16.use_scaler and fp16.precision == "fp16"
    fp32 = RunSettings.for_device(torch.device("cuda"), amp=False, bf16_supported=True)
    assert fp32.amp_dtype is None and fp32.channels_last and fp32.precision == "fp32"
    mps = RunSettings.for_device(torch.device("mps"))
    assert (mps.amp_dtype, mps.channels_last, mps.pin_memory) == (None, False, False)


def test_bf16_detection_reads_the_cpu_flags():
    assert cpu_supports_bf16({"avx2", "avx512_bf16"}) == torch.backends.mkldnn.is_available()
    assert cpu_supports_bf16({"amx_bf16"}) == torch.backends.mkldnn.is_available()
    assert not cpu_supports_bf16({"avx2", "avx512f"})
    assert not cpu_supports_bf16(set())


def test_bad_speed_options_say_what_is_allowed():
    with pytest.raises(ValueError, match="precision must be one of"):
        RunSettings.for_device("cpu", precision="half")
    with pytest.raises(ValueError, match="'fp16' needs a GPU"):
        RunSettings.for_device("cpu", precision="fp16")
    with pytest.raises(ValueError, match="compile must be True or False"):
        RunSettings.for_device("cpu", compile="yes")


def test_compile_option_is_recorded_and_wraps_the_model(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "compile", lambda m: calls.append(m) or m)
    s = RunSettings.for_device("cpu", compile=True, bf16_supported=False)
    model = nn.Linear(2, 2)
    assert s.compiled(model) is model and calls == [model]
    assert s.describe() == {"device": "cpu", "precision": "fp32", "channels_last": False, "compile": True,
                            "pointwise_matmul": False}
    assert RunSettings.for_device("cpu").compiled(model) is model and len(calls) == 1


def test_pointwise_convs_become_matrix_products_with_the_same_result():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(8, 16, 1), nn.ReLU(), nn.Conv2d(16, 4, 1, bias=False), nn.Conv2d(4, 4, 3),
                          nn.Conv2d(4, 4, 1, groups=2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(5, 8, 1, 1, requires_grad=True)
    big = torch.randn(2, 8, 5, 5)
    ref, ref_big = model[:3](x), model[:3](big)
    ref.sum().backward()
    grad = model[0].weight.grad.clone()
    model.zero_grad()
    assert pointwise_as_matmul(model) == 2                 # the 3x3 and the grouped 1x1 stay convolutions
    assert [type(m).__name__ for m in model][:4] == ["PointwiseConv2d", "ReLU", "PointwiseConv2d", "Conv2d"]
    assert type(model[4]) is nn.Conv2d and model.state_dict().keys() == before.keys()
    out = model[:3](x)
    out.sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(model[0].weight.grad, grad)
    torch.testing.assert_close(model[:3](big), ref_big)   # larger maps take the convolution as before
    fast = RunSettings.for_device("cpu", bf16_supported=True)
    assert fast.pointwise_matmul and not RunSettings.for_device("cpu", precision="fp32").pointwise_matmul
    m2 = fast.prepare_model(nn.Sequential(nn.Conv2d(3, 3, 1)))
    assert isinstance(m2[0], PointwiseConv2d) and m2[0].weight.is_contiguous(memory_format=torch.channels_last)


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


def test_a_gpu_without_native_bf16_gets_fp16(monkeypatch):
    """A T4 (compute capability 7.5) emulates bfloat16: torch.cuda.is_bf16_supported() says True by default."""
    def is_bf16_supported(including_emulation=True):   # what torch answers on a T4
        return including_emulation
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    t4 = RunSettings.for_device(torch.device("cuda"))
    assert t4.precision == "fp16" and t4.use_scaler
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)        # torch < 2.3: no such argument
    for capability, precision in (((7, 5), "fp16"), ((8, 0), "bf16")):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert RunSettings.for_device(torch.device("cuda")).precision == precision


def test_fast_path_bench_times_bf16_on_request_whatever_the_cpu(monkeypatch):
    from course_lib.engine import bench, device
    monkeypatch.setattr(device, "cpu_supports_bf16", lambda flags=None: False)
    out = bench.bench_fast_path(names=("ResNet-14-0s1x64d",), batch=2, repeats=1, warmup=0)
    assert list(out["ResNet-14-0s1x64d"]) == ["fp32 eager", "fp32 + channels-last"]   # engine here: fp32 eager
    out = bench.bench_fast_path(names=("ResNet-14-0s1x64d",), batch=2, repeats=1, warmup=0, bf16=True)
    assert list(out["ResNet-14-0s1x64d"]) == ["fp32 eager", "fp32 + channels-last", "bf16 + channels-last"]
