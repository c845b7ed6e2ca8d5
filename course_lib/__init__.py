"""course_lib: the blocks of the Split-Attention Networks course.

Each idea of the book has one module, named after it:

- ``data``        CIFAR-10 and Hotdog, found offline or downloaded
- ``plots``       image grids and block diagrams drawn with matplotlib
- ``diagrams``    block diagrams with tensor shapes: grouped conv, ResNeXt, SE, SK, ...
- ``device``      CUDA > MPS > CPU, and the mixed precision / channels-last that follow
- ``train``       recipes, training on uint8 tensors, checkpoints and exact resume, ``run``
- ``results``     one JSON record per run, keyed by its configuration; tables over seeds
- ``latency``     parameters, multiply-adds, latency and throughput
- ``grouped``     grouped convolution and the ResNeXt bottleneck in its two forms (Fig. 1)
- ``se``          Squeeze-and-Excitation, with its gates kept for plotting
- ``sk``          Selective Kernel: attention over branches of different kernels
- ``split_attn``  Split-Attention in the cardinality-major and radix-major layouts
- ``resnest``     the ResNeSt network, its names, ``create_model`` and ``parse_name``
- ``cost``        parameters and multiply-adds, counted and by formula
- ``bench``       ``python -m course_lib.bench``: course_lib against timm, speed ratios
"""
__version__ = "0.1.0"
REPO_URL = "https://github.com/split-attention-course/resnest-book"  # same as _config.yml

# The engine's names, imported on first use so that ``import course_lib`` stays light.
_ENGINE = {"run": "train", "get_recipe": "train", "Recipe": "train", "RECIPES": "train",
           "DivergenceError": "train", "pick_device": "device", "RunSettings": "device",
           "load_results": "results", "summarize": "results", "count_macs": "cost", "count_params": "cost",
           "measure_latency": "latency", "benchmark": "latency"}
# The blocks' names, imported on first use too.
_ENGINE.update({"create_model": "resnest", "parse_name": "resnest", "list_models": "resnest",
                "ResNeSt": "resnest", "ResNestBottleneck": "resnest",
                "SplitAttn": "split_attn", "SplitAttnCardinal": "split_attn",
                "MixedKernelSplitAttn": "split_attn", "SqueezeExcite": "se",
                "SelectiveKernel": "sk", "ResNeXtBlock": "grouped",
                "ResNeXtBranchBlock": "grouped"})


def __getattr__(name):
    if name in _ENGINE:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_ENGINE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
