"""Source of exercises/04_split_attention_layouts.ipynb."""
from tools.nb import code, execute, exercise_metadata, md, setup_cell, write

PATH = "exercises/04_split_attention_layouts.ipynb"
write(PATH, [
    md("""
# Exercise 4: the permutation between the two layouts

*Chapter 4.* The cardinality-major layout hands radix split $r$ of cardinal group
$k$ the input slice number $kR + r$; the radix-major layout hands featuremap group
$rK + k$ the slice of the same number. Once the weights are mapped with
`cardinal_to_radix`, the two modules compute the same function, provided the input
channels are reordered. Find that order.
"""),
    setup_cell(),
    code("""
K = 2         # cardinality
R = 2         # radix
width = 32    # channels of the Split-Attention convolution
seed = 0
""", tags=["parameters"]),
    code("""
import torch
from course_lib.blocks.split_attn import SplitAttnCardinal, cardinal_to_radix

torch.manual_seed(seed)
card = SplitAttnCardinal(width, width, cardinality=K, radix=R).eval()
for m in card.modules():                                # random BN statistics: a layout bug cannot hide
    if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.uniform_(-0.5, 0.5); m.running_var.uniform_(0.5, 2.0)
        m.weight.data.uniform_(0.5, 1.5); m.bias.data.uniform_(-0.5, 0.5)
radix = cardinal_to_radix(card).eval()
x = torch.randn(2, width, 6, 6)
print(f"G = K*R = {K * R} featuremap groups of {width // (K * R)} input channels each")
"""),
    md("""
**Task.** Write `input_order(width, K, R)`, a `LongTensor` `p` of length `width`
such that `radix(x[:, p])` equals `card(x)`.
"""),
    code("""
def input_order(width, K, R):
    ### BEGIN SOLUTION
    size = width // (K * R)
    slices = torch.arange(width).view(K, R, size)     # [k, r] -> its channels
    return slices.transpose(0, 1).reshape(-1)          # groups in radix-major order
    ### END SOLUTION


p = input_order(width, K, R)
print(p[: 2 * (width // (K * R))].tolist())
""", tags=["solution", "hide-input"]),
    code("""
from course_lib.check import check

with torch.no_grad():
    same = lambda: torch.allclose(radix(x[:, p]), card(x), atol=1e-5)
check("is_permutation", lambda: sorted(p.tolist()) == list(range(width)))
check("same_function", same)
""", tags=["check", "hide-input"]),
])
exercise_metadata(PATH, title="The permutation between the two Split-Attention layouts", chapter=4,
                  checks=["is_permutation", "same_function"], time_limit=60,
                  parameters={"K": {"choices": [1, 2, 4]}, "R": {"choices": [1, 2, 3, 4]},
                              "width": {"choices": [24, 32, 48, 64, 96]}, "seed": {"min": 0, "max": 10_000}},
                  constraints=[["width % (K * R) == 0", "width must be divisible by G = K*R featuremap groups"]])
execute(PATH)
