"""The report's numbers, in this one place: Tables I and II and the transfer results.

Every row of Tables I and II is (parameters in millions, latency in ms per image,
throughput in images per second, test accuracy in %), measured by the report on a
T4 GPU with 10-class CIFAR-10 models. ``REPORT_PARAMS`` is the parameter column of
both tables (chapter 5 counts course_lib's models against it).
"""
from __future__ import annotations

# Table I: the ablation of ResNeSt-14's parts (chapter 6)
TABLE1 = ("ResNet-14-0s1x64d", "ResNet-14-1s1x64d", "ResNeSt-14-0s1x64d", "ResNeSt-14-1s1x64d",
          "ResNeSt-14-1s1x40d", "ResNeSt-14-1s2x64d", "ResNeSt-14-2s1x64d")
# model: (parameters in millions, latency ms per image, throughput img/s, test accuracy %); T4 GPU, CIFAR-10
REPORT_TABLE1 = {
    "ResNet-14-0s1x64d": (8.03, 0.1223, 8177, 58.08), "ResNet-14-1s1x64d": (8.21, 0.1311, 7624, 58.68),
    "ResNeSt-14-0s1x64d": (8.06, 0.1716, 5826, 62.96), "ResNeSt-14-1s1x64d": (8.23, 0.1282, 7797, 61.21),
    "ResNeSt-14-1s1x40d": (5.44, 0.1435, 6967, 61.22), "ResNeSt-14-1s2x64d": (13.63, 0.1307, 7646, 62.95),
    "ResNeSt-14-2s1x64d": (8.58, 0.1545, 6471, 62.64),
}
# The differences the report reads a conclusion from, each (variant, baseline)
TABLE1_PAIRS = (
    ("ResNeSt-14-0s1x64d", "ResNet-14-0s1x64d"),   # ResNeSt's stem and shortcut, same plain block
    ("ResNet-14-1s1x64d", "ResNet-14-0s1x64d"),    # radix-1 block in the ResNet body
    ("ResNeSt-14-1s1x64d", "ResNeSt-14-0s1x64d"),  # radix 1 against the plain block
    ("ResNeSt-14-2s1x64d", "ResNeSt-14-1s1x64d"),  # radix 2 against radix 1
    ("ResNeSt-14-1s2x64d", "ResNeSt-14-1s1x64d"),  # cardinality 2 against 1
    ("ResNeSt-14-1s1x40d", "ResNeSt-14-1s1x64d"),  # width 40 against 64
    ("ResNeSt-14-2s1x64d", "ResNet-14-0s1x64d"),   # the full change
)
_BASE = "ResNet-14-0s1x64d"
_RESNEST14 = ("ResNeSt-14-0s1x64d", "ResNeSt-14-1s1x64d", "ResNeSt-14-1s1x40d", "ResNeSt-14-1s2x64d",
              "ResNeSt-14-2s1x64d")
# What the report reads from Table I's accuracy column (section IV-A and the conclusions), in the book's
# words: (reading, ((variant, baseline), ...), claimed sign). Sign +1: the variant is better; -1: worse;
# 0: no noticeable change. A reading about several pairs claims it for each of them.
TABLE1_CLAIMS = (
    ("every ResNeSt variant beats the ResNet baseline", tuple((v, _BASE) for v in _RESNEST14), +1),
    ("the radix block slightly lowers ResNet's accuracy", (("ResNet-14-1s1x64d", _BASE),), -1),
    ("radix 1 lowers ResNeSt's accuracy against the plain block", (("ResNeSt-14-1s1x64d", "ResNeSt-14-0s1x64d"),), -1),
    ("radix 2 beats radix 1, mitigating its loss", (("ResNeSt-14-2s1x64d", "ResNeSt-14-1s1x64d"),), +1),
    ("width 40 instead of 64 changes accuracy unnoticeably", (("ResNeSt-14-1s1x40d", "ResNeSt-14-1s1x64d"),), 0),
    ("cardinality 2 instead of 1 improves accuracy", (("ResNeSt-14-1s2x64d", "ResNeSt-14-1s1x64d"),), +1),
    ("ResNeSt-14-2s1x64d beats ResNet-14 (the conclusions)", (("ResNeSt-14-2s1x64d", _BASE),), +1),
)
# What it reads from Table I's throughput column, in the same form; sign +1: more images per second.
TABLE1_COST_CLAIMS = (
    ("ResNet and ResNeSt with the same block are comparable",
     (("ResNeSt-14-0s1x64d", _BASE), ("ResNeSt-14-1s1x64d", "ResNet-14-1s1x64d")), 0),
    ("the radix block raises ResNeSt's throughput", (("ResNeSt-14-1s1x64d", "ResNeSt-14-0s1x64d"),), +1),
    ("the radix block lowers ResNet's throughput", (("ResNet-14-1s1x64d", _BASE),), -1),
    ("radix 2 instead of 1 lowers throughput slightly", (("ResNeSt-14-2s1x64d", "ResNeSt-14-1s1x64d"),), -1),
    ("cardinality 2 instead of 1 lowers throughput slightly", (("ResNeSt-14-1s2x64d", "ResNeSt-14-1s1x64d"),), -1),
    ("width 40 instead of 64 lowers throughput slightly", (("ResNeSt-14-1s1x40d", "ResNeSt-14-1s1x64d"),), -1),
)
# Table II: depths and baselines (chapter 7)
TABLE2 = ("ResNeSt-14", "ResNeSt-26", "ResNeSt-32", "ResNeSt-50", "ResNeSt-101", "ResNet-18",
          "EfficientNet-b0", "EfficientNet-b1", "EfficientNet-b2", "EfficientNet-b3")
REPORT_TABLE2 = {  # ResNeSt-26 is not in the report
    "ResNeSt-14": (8.58, 0.1808, 5530, 61.68), "ResNeSt-32": (16.56, 0.1761, 5678, 59.04),
    "ResNeSt-50": (25.45, 0.1894, 5277, 59.45), "ResNeSt-101": (46.14, 0.2670, 3745, 58.18),
    "ResNet-18": (11.18, 0.1247, 8016, 58.55), "EfficientNet-b0": (4.02, 0.1450, 6668, 50.72),
    "EfficientNet-b1": (6.53, 0.1692, 5908, 46.57), "EfficientNet-b2": (7.72, 0.1703, 5871, 43.23),
    "EfficientNet-b3": (10.71, 0.2181, 4584, 41.80),
}
# Section IV-C: fine-tuning on Hotdog (chapter 8)
TRANSFER_MODELS = ("ResNeSt-50", "ResNet-50")
REPORT_TRANSFER = {"ResNeSt-50": 0.950, "ResNet-50": 0.907}  # validation accuracy on D2L's Hotdog

# The parameter counts of both tables, in millions, in the tables' order
REPORT_PARAMS = {name: row[0] for table in (REPORT_TABLE1, REPORT_TABLE2) for name, row in table.items()}
