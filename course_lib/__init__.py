"""course_lib: the blocks of the Split-Attention Networks course.

The folders read as the book, each layer importing only the ones above it in this list:

- ``blocks``      chapters 1-5: ``grouped`` convolution and ResNeXt (Fig. 1), ``se``
                  (Squeeze-and-Excitation), ``sk`` (Selective Kernel), ``split_attn`` (its
                  two layouts, mixed kernels), ``resnest`` (the network), ``cost`` (formulas)
- ``models``      the report's names, ``parse_name``, ``list_models``, ``create_model``; ``pretrained`` weights
- ``figures``     ``diagrams`` (block diagrams with tensor shapes) and ``plots`` (image grids)
- ``engine``      ``data``, ``device``, ``recipes``, the training loop (``train``), run
                  ``records``, ``runner`` (``run``), ``distributed`` (torchrun), ``timing``
                  (latency) and ``bench``
- ``study``       chapters 6-8: the report's numbers (``report``), the runs (``specs``), their
                  ``cost``, the statistics (``stats``) and what the runs say (``analysis``),
                  ``tables``, ``latency``, ``attention``, ``trained`` weights and the training ``queue``
- ``instructor``  ``exercises``, ``nbparams`` and the command line of ``python -m course_lib.experiments``

``check`` (the exercises' ``check(name, passed)``) needs nothing but Python.
"""
__version__ = "0.4.4"  # the one place; pyproject.toml reads it, CHANGELOG.md says what changed
REPO_URL = "https://github.com/split-attention-course/resnest-book"  # same as _config.yml

# The engine's names, imported on first use so that ``import course_lib`` stays light.
_ENGINE = {"run": "engine.runner", "get_recipe": "engine.recipes", "Recipe": "engine.recipes",
           "RECIPES": "engine.recipes", "DivergenceError": "engine.train", "pick_device": "engine.device",
           "RunSettings": "engine.device", "load_results": "engine.records", "summarize": "engine.records",
           "count_macs": "blocks.cost", "count_params": "blocks.cost",
           "measure_latency": "engine.timing", "benchmark": "engine.timing"}
# The blocks' and models' names, imported on first use too.
_ENGINE.update({"create_model": "models.factory", "parse_name": "models.names", "list_models": "models.names",
                "ResNeSt": "blocks.resnest", "ResNestBottleneck": "blocks.resnest",
                "SplitAttn": "blocks.split_attn", "SplitAttnCardinal": "blocks.split_attn",
                "MixedKernelSplitAttn": "blocks.split_attn", "SqueezeExcite": "blocks.se",
                "SelectiveKernel": "blocks.sk", "ResNeXtBlock": "blocks.grouped",
                "ResNeXtBranchBlock": "blocks.grouped"})


def __getattr__(name):
    if name in _ENGINE:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_ENGINE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
