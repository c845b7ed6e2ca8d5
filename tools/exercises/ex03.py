"""Source of exercises/03_sk_select.ipynb."""
from tools.nb import code, execute, exercise_metadata, md, setup_cell, write

PATH = "exercises/03_sk_select.ipynb"
write(PATH, [
    md("""
# Exercise 3: fuse and select in a Selective Kernel

*Chapter 3.* A Selective Kernel convolution runs $R$ branches, fuses them by a
sum, squeezes the sum into $z$ with $d = \\max(C/r, L)$ units, and selects with a
softmax over the branches. Here the branches are given; you write the fuse and
select steps and match `course_lib.blocks.sk.SelectiveKernel`.
"""),
    setup_cell(),
    code("""
C = 64          # channels
reduction = 16  # r
L = 32          # the smallest hidden width
R = 2           # branches
seed = 0
""", tags=["parameters"]),
    code("""
import torch
from course_lib.blocks.sk import SelectiveKernel

torch.manual_seed(seed)
sk = SelectiveKernel(C, kernel_sizes=(3,) * R, dilations=tuple(range(1, R + 1)),
                     reduction=reduction, min_attn_channels=L).eval()
for m in sk.modules():                                 # random BN statistics, so BN matters
    if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.uniform_(-0.5, 0.5); m.running_var.uniform_(0.5, 2.0)
        m.weight.data.uniform_(0.5, 1.5); m.bias.data.uniform_(-0.5, 0.5)
x = torch.randn(2, C, 8, 8)
with torch.no_grad():
    U = torch.stack([path(x) for path in sk.paths], 1)   # the branches: (N, R, C, H, W)
attn = sk.attn                                            # fc_reduce (C -> d), bn, fc_select (d -> R*C)
print("U", tuple(U.shape), " fc_reduce", tuple(attn.fc_reduce.weight.shape))
"""),
    md("""
**Task.** (1) Set `d` to the hidden width by SKNet's rule. (2) Write
`select(U, attn)` that returns the attention `a` of shape $(N, R, C)$ (a softmax
over the branches) and the output $V = \\sum_i a_i U_i$ of shape $(N, C, H, W)$.
Use `attn.fc_reduce.weight`, `attn.bn` (call it on a $(N, d, 1, 1)$ tensor) and
`attn.fc_select.weight`; both convolutions are $1 \\times 1$ with no bias.
"""),
    code("""
### BEGIN SOLUTION
d = max(C // reduction, L)
### END SOLUTION


def select(U, attn):
    ### BEGIN SOLUTION
    n, r = U.shape[:2]
    s = U.sum(1).mean((2, 3))                                       # fuse + squeeze: (N, C)
    z = s @ attn.fc_reduce.weight.flatten(1).T                      # (N, d)
    z = torch.relu(attn.bn(z[:, :, None, None])).flatten(1)         # (N, d)
    logits = (z @ attn.fc_select.weight.flatten(1).T).view(n, r, -1)  # (N, R, C)
    a = torch.softmax(logits, 1)
    return a, (U * a[..., None, None]).sum(1)
    ### END SOLUTION


with torch.no_grad():
    a, V = select(U, attn)
print(d, tuple(a.shape), tuple(V.shape))
""", tags=["solution", "hide-input"]),
    code("""
from course_lib.check import check

with torch.no_grad():
    expected = sk(x)
check("d", lambda: d == attn.fc_reduce.weight.shape[0])
check("attention", lambda: torch.allclose(a, sk.last_attention, atol=1e-5))
check("sums_to_one", lambda: torch.allclose(a.sum(1), torch.ones(2, C), atol=1e-5))
check("output", lambda: torch.allclose(V, expected, atol=1e-5))
""", tags=["check", "hide-input"]),
])
exercise_metadata(PATH, title="Fuse and select in a Selective Kernel", chapter=3,
                  checks=["d", "attention", "sums_to_one", "output"], time_limit=60,
                  parameters={"C": {"choices": [32, 64, 128, 256, 512, 1024]},
                              "reduction": {"choices": [4, 8, 16, 32]}, "L": {"choices": [8, 16, 32, 64]},
                              "R": {"choices": [2, 3, 4]}, "seed": {"min": 0, "max": 10_000}})
execute(PATH)
