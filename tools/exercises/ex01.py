"""Source of exercises/01_grouped_conv_cost.ipynb."""
from tools.nb import code, execute, exercise_metadata, md, setup_cell, write

PATH = "exercises/01_grouped_conv_cost.ipynb"
write(PATH, [
    md("""
# Exercise 1: the cost of a grouped convolution

*Chapter 1.* A convolution with $n_i$ input channels, $n_o$ output channels and a
$k \\times k$ kernel, split into $g$ groups, gives each group $n_i/g$ inputs and
$n_o/g$ outputs. Your variant of the exercise fixes the numbers below.
"""),
    setup_cell(),
    code("""
n_i = 64      # input channels
n_o = 128     # output channels
g = 4         # groups
k = 3         # kernel size
H = 16        # output height
W = 16        # output width
""", tags=["parameters"]),
    md("""
**Task.** Write two functions:

- `grouped_params(n_i, n_o, g, k)`: the number of weights (no bias) of such a convolution;
- `grouped_macs(n_i, n_o, g, k, H, W)`: the multiply-adds it spends on one image
  whose output is $H \\times W$.

Then set `saving` to how many times fewer weights your variant has than the same
convolution with one group.
"""),
    code("""
def grouped_params(n_i, n_o, g, k):
    ### BEGIN SOLUTION
    return g * (n_i // g) * (n_o // g) * k * k
    ### END SOLUTION


def grouped_macs(n_i, n_o, g, k, H, W):
    ### BEGIN SOLUTION
    return grouped_params(n_i, n_o, g, k) * H * W
    ### END SOLUTION


### BEGIN SOLUTION
saving = grouped_params(n_i, n_o, 1, k) / grouped_params(n_i, n_o, g, k)
### END SOLUTION
print(grouped_params(n_i, n_o, g, k), grouped_macs(n_i, n_o, g, k, H, W), saving)
""", tags=["solution", "hide-input"]),
    md("The checks below compare your answers with PyTorch's own layer and its FLOP counter."),
    code("""
import torch
from torch.utils.flop_counter import FlopCounterMode
from course_lib.check import check

conv = torch.nn.Conv2d(n_i, n_o, k, padding=k // 2, groups=g, bias=False)
check("params", lambda: grouped_params(n_i, n_o, g, k) == conv.weight.numel())
with FlopCounterMode(display=False) as counter:
    conv(torch.zeros(1, n_i, H, W))
check("macs", lambda: grouped_macs(n_i, n_o, g, k, H, W) == counter.get_total_flops() // 2)
check("saving", lambda: abs(saving - g) < 1e-9)
""", tags=["check", "hide-input"]),
])
exercise_metadata(PATH, title="The cost of a grouped convolution", chapter=1,
                  checks=["params", "macs", "saving"], time_limit=60,
                  parameters={"n_i": {"choices": [32, 64, 128, 256]}, "n_o": {"choices": [32, 64, 128, 256]},
                              "g": {"choices": [1, 2, 4, 8, 16, 32]}, "k": {"choices": [1, 3, 5]},
                              "H": {"min": 1, "max": 64}, "W": {"min": 1, "max": 64}})
execute(PATH)
