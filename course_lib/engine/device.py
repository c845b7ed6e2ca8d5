"""Where a run computes, and what that choice implies.

``pick_device()`` prefers CUDA, then Apple's MPS, then the CPU. ``RunSettings``
turns a device into the speed tricks that pay off on it (``precision="auto"``):

=============  ======================  =============  ==========================
device         mixed precision         channels-last  pinned, non-blocking copy
=============  ======================  =============  ==========================
CUDA           bfloat16 if the GPU     yes            yes
               has it (compute 8.0+),
               else float16 with
               gradient scaling (T4)
MPS            no                      no             no
CPU            bfloat16 if the CPU     with bfloat16  no
               has AVX512-BF16 or AMX
=============  ======================  =============  ==========================

On the CPU with bfloat16, ``prepare_model`` also runs every 1x1 convolution
that meets a 1x1 feature map (the last stage of a ResNeSt on 32x32 images) as
the matrix product it is: oneDNN's convolution backward is several times slower
than a matrix product there. Same weights, same names, same result up to rounding.

``python -m course_lib.engine.bench --fast-path --compile`` measures all of it against
float32 eager. ``torch.compile`` is an option (``compile=True``), off by default.

``RunSettings.for_device`` is a pure function of the device, the requested
precision and whether the hardware supports bfloat16, so the table above is
tested on a machine without a GPU.
"""
from __future__ import annotations

import contextlib
import os
import platform
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

DEVICE_TYPES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
PRECISION_CHOICES = ("auto", *PRECISIONS)
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_supports_bf16(flags: set[str] | None = None) -> bool:
    """True when oneDNN can run bfloat16 natively here (AVX512-BF16 or AMX-BF16)."""
    flags = cpu_flags() if flags is None else flags
    return torch.backends.mkldnn.is_available() and any(f in flags for f in _BF16_CPU_FLAGS)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def pick_device(name: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``name`` if given, else CUDA > MPS > CPU.

    Under torchrun (``course_lib.engine.distributed``), 'auto' and 'cuda' mean this
    process's own GPU, ``cuda:LOCAL_RANK`` (``cuda:0`` where each process sees one GPU).
    """
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").lower()
    kind = name.split(":")[0]
    if kind not in DEVICE_TYPES:
        raise ValueError(f"unknown device {name!r}: use one of {DEVICE_TYPES} (cuda may carry an index, cuda:1)")
    if kind == "auto":
        if torch.cuda.is_available():
            return _rank_gpu()
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA GPU: use device='auto' or 'cpu'")
    if name == "cuda":
        return _rank_gpu()
    if kind == "mps" and not _mps_available():
        raise ValueError("device 'mps' was asked for, but this torch has no MPS backend: use 'auto' or 'cpu'")
    return torch.device(name)


@dataclass(frozen=True)
class RunSettings:
    """The device plus the speed options used on it."""
    device: torch.device
    amp_dtype: torch.dtype | None = None   # autocast dtype, None = float32 throughout
    channels_last: bool = False            # NHWC memory format for images and conv weights
    pin_memory: bool = False               # page-locked host copy before an async transfer
    compile: bool = False                  # train through torch.compile(model)
    sync_bn: bool = False                  # under torchrun: batch norm statistics over the global batch

    @classmethod
    def for_device(cls, device, *, precision: str = "auto", channels_last: bool | None = None,
                   compile: bool = False, amp: bool = True, bf16_supported: bool | None = None,
                   sync_bn: bool = False) -> "RunSettings":
        """The table of the module docstring.

        ``precision``: 'auto' (the table), 'fp32', 'bf16' or 'fp16'; ``amp=False`` is
        'fp32'. ``channels_last=None`` follows the table. ``bf16_supported`` overrides
        the hardware check (for tests). ``sync_bn``: under torchrun, batch norm layers
        become ``torch.nn.SyncBatchNorm`` (GPUs only); a single process ignores it.
        """
        device = pick_device(device)
        if precision not in PRECISION_CHOICES:
            raise ValueError(f"precision must be one of {PRECISION_CHOICES}, got {precision!r}")
        for opt, value in (("compile", compile), ("sync_bn", sync_bn)):
            if not isinstance(value, bool):
                raise ValueError(f"{opt} must be True or False, got {value!r}")
        if not amp:
            precision = "fp32"
        if precision == "auto":
            precision = _auto_precision(device, bf16_supported)
        if precision == "fp16" and device.type == "cpu":
            raise ValueError("precision 'fp16' needs a GPU: on the CPU use 'bf16' or 'fp32'")
        if channels_last is None:
            channels_last = device.type == "cuda" or (device.type == "cpu" and precision == "bf16")
        return cls(device, amp_dtype=PRECISIONS[precision], channels_last=bool(channels_last),
                   pin_memory=device.type == "cuda", compile=compile, sync_bn=sync_bn)

    @property
    def non_blocking(self) -> bool:
        return self.pin_memory

    @property
    def use_scaler(self) -> bool:
        """Gradient scaling is needed for float16 only (bfloat16 has float32's range)."""
        return self.amp_dtype == torch.float16

    @property
    def precision(self) -> str:
        return next(k for k, v in PRECISIONS.items() if v == self.amp_dtype)

    def autocast(self):
        """Mixed precision context for forward passes, or a no-op."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, enabled=self.use_scaler)

    @property
    def pointwise_matmul(self) -> bool:
        """1x1 convolutions on 1x1 maps as matrix products (the CPU's bfloat16 path)."""
        return self.device.type == "cpu" and self.amp_dtype == torch.bfloat16

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move the model to the device (in channels-last layout if chosen).

        With :attr:`pointwise_matmul`, the model's plain 1x1 convolutions become
        :class:`PointwiseConv2d` in place (same parameters and state-dict keys).
        """
        if self.pointwise_matmul:
            pointwise_as_matmul(model)
        if self.channels_last:
            return model.to(self.device, memory_format=torch.channels_last)
        return model.to(self.device)

    def to_device(self, t: torch.Tensor) -> torch.Tensor:
        """Copy a host tensor to the device (pinned + asynchronous where it helps)."""
        if t.device == self.device:
            return t
        if self.pin_memory and t.device.type == "cpu":
            t = t.pin_memory()
        return t.to(self.device, non_blocking=self.non_blocking)

    def compiled(self, model: torch.nn.Module):
        """The callable a training step runs: ``torch.compile(model)`` or the model itself.

        Checkpoints keep saving ``model``: the compiled wrapper shares its parameters.
        """
        return torch.compile(model) if self.compile else model

    def describe(self) -> dict:
        out = {"device": str(self.device), "precision": self.precision, "channels_last": self.channels_last,
               "compile": self.compile, "pointwise_matmul": self.pointwise_matmul}
        return {**out, "sync_bn": True} if self.sync_bn else out


class PointwiseConv2d(torch.nn.Conv2d):
    """A 1x1 convolution that runs as a matrix product when its input map is 1x1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (1, 1):
            return super().forward(x)
        y = F.linear(x.flatten(1), self.weight.flatten(1), self.bias)   # (N, C_out)
        return y[..., None, None]                                        # (N, C_out, 1, 1)


def pointwise_as_matmul(model: torch.nn.Module) -> int:
    """Turn the plain 1x1 convolutions of ``model`` into :class:`PointwiseConv2d`; returns how many."""
    n = 0
    for m in model.modules():
        if (type(m) is torch.nn.Conv2d and m.kernel_size == (1, 1) and m.stride == (1, 1) and m.groups == 1
                and m.padding in ((0, 0), 0) and m.dilation == (1, 1)):
            m.__class__ = PointwiseConv2d
            n += 1
    return n


def _rank_gpu() -> torch.device:
    """``cuda:LOCAL_RANK`` under torchrun, else ``cuda`` (the current GPU)."""
    from .distributed import local_rank
    local = local_rank()
    if local is None:
        return torch.device("cuda")
    count = torch.cuda.device_count()
    if count == 1:
        return torch.device("cuda:0")   # e.g. a scheduler gave each process one GPU by CUDA_VISIBLE_DEVICES
    if local >= count:
        raise ValueError(f"LOCAL_RANK={local} but this machine shows {count} GPUs: start at most {count} "
                         "processes per machine (torchrun --nproc_per_node)")
    return torch.device(f"cuda:{local}")


def cuda_supports_bf16() -> bool:
    """True when this process's GPU computes bfloat16 natively (compute capability 8.0 and up, or ROCm).

    torch's ``is_bf16_supported()`` also counts emulation by default, and says True on a T4 (compute 7.5),
    which runs bfloat16 slowly; torch before 2.3 has no ``including_emulation`` argument.
    """
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:
        return bool(torch.version.hip) or torch.cuda.get_device_capability()[0] >= 8


def _auto_precision(device: torch.device, bf16_supported: bool | None) -> str:
    if device.type == "cuda":
        ok = cuda_supports_bf16() if bf16_supported is None else bf16_supported
        return "bf16" if ok else "fp16"
    if device.type == "cpu":
        ok = cpu_supports_bf16() if bf16_supported is None else bf16_supported
        return "bf16" if ok else "fp32"
    return "fp32"


def cpu_name() -> str:
    """The CPU model, e.g. 'Intel(R) Xeon(R) CPU @ 2.20GHz'."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: torch.device | None = None) -> dict:
    """What a measurement ran on: CPU, threads, GPU, torch version."""
    device = device or torch.device("cpu")
    info = {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": str(device), "gpu": None, "torch": torch.__version__,
            "python": platform.python_version()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        info["gpu"] = "Apple MPS"
    return info


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    try:
        import numpy as np
        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass
    torch.manual_seed(seed)


@contextlib.contextmanager
def deterministic(enabled: bool = True):
    """Ask torch for deterministic kernels inside the block, then restore the old setting.

    ``warn_only``: an op without a deterministic version warns instead of failing.
    """
    old = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    old_bench = torch.backends.cudnn.benchmark
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old[0], warn_only=old[1])
        torch.backends.cudnn.benchmark = old_bench


def rng_state() -> dict:
    """Every global random state a run depends on (for checkpoints)."""
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    try:
        import numpy as np
        state["numpy"] = np.random.get_state()
    except ImportError:  # pragma: no cover
        pass
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        import numpy as np
        np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
