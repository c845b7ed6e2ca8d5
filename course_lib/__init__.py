"""course_lib: the blocks of the Split-Attention Networks course.

Each idea of the book has one module, named after it:

- ``data``        CIFAR-10 and Hotdog, found offline or downloaded
- ``plots``       image grids and block diagrams drawn with matplotlib
- ``device``      CUDA > MPS > CPU, and the mixed precision / channels-last that follow
- ``train``       recipes, training on uint8 tensors, checkpoints and exact resume, ``run``
- ``results``     one JSON record per run, keyed by its configuration; tables over seeds
- ``latency``     parameters, multiply-adds, latency and throughput
"""
__version__ = "0.1.0"
REPO_URL = "https://github.com/split-attention-course/resnest-book"  # same as _config.yml

# The engine's names, imported on first use so that ``import course_lib`` stays light.
_ENGINE = {"run": "train", "get_recipe": "train", "Recipe": "train", "RECIPES": "train",
           "DivergenceError": "train", "pick_device": "device", "RunSettings": "device",
           "load_results": "results", "summarize": "results", "count_macs": "latency",
           "measure_latency": "latency", "benchmark": "latency"}


def __getattr__(name):
    if name in _ENGINE:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_ENGINE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
