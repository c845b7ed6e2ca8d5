"""Source of exercises/02_se_from_scratch.ipynb."""
from tools.nb import code, execute, exercise_metadata, md, setup_cell, write

PATH = "exercises/02_se_from_scratch.ipynb"
write(PATH, [
    md("""
# Exercise 2: Squeeze-and-Excitation from scratch

*Chapter 2.* Write the SE block with plain tensor operations, then match the
output of `course_lib.blocks.se.SqueezeExcite` with the same weights. Your variant fixes
the number of channels $C$, the reduction ratio $r$ and the seed.
"""),
    setup_cell(),
    code("""
C = 32          # channels
reduction = 4   # r: the hidden layer has C // r units
seed = 0
""", tags=["parameters"]),
    code("""
import torch
from course_lib.blocks.se import SqueezeExcite

torch.manual_seed(seed)
reference = SqueezeExcite(C, reduction=reduction).eval()
U = torch.randn(2, C, 5, 5)                           # (N, C, H, W)
W1 = reference.fc1.weight.detach().flatten(1)         # (C/r, C)
b1 = reference.fc1.bias.detach()                      # (C/r,)
W2 = reference.fc2.weight.detach().flatten(1)         # (C, C/r)
b2 = reference.fc2.bias.detach()                      # (C,)
print("W1", tuple(W1.shape), " W2", tuple(W2.shape))
"""),
    md("""
**Task.** Write `squeeze_excite(U, W1, b1, W2, b2)` returning the pair `(V, a)`:
the gated features $V_c = a_c U_c$ (shape $(N, C, H, W)$) and the gates
$a = \\sigma(W_2\\,\\delta(W_1 s + b_1) + b_2)$ (shape $(N, C)$), where $s$ is the
squeezed descriptor. Use only `torch` functions, not `torch.nn` modules.
"""),
    code("""
def squeeze_excite(U, W1, b1, W2, b2):
    ### BEGIN SOLUTION
    s = U.mean(dim=(2, 3))                      # squeeze: (N, C)
    z = torch.relu(s @ W1.T + b1)               # (N, C/r)
    a = torch.sigmoid(z @ W2.T + b2)            # excitation: (N, C)
    return U * a[:, :, None, None], a
    ### END SOLUTION


V, a = squeeze_excite(U, W1, b1, W2, b2)
print(tuple(V.shape), tuple(a.shape))
""", tags=["solution", "hide-input"]),
    code("""
from course_lib.check import check

with torch.no_grad():
    expected = reference(U)
check("gate_shape", lambda: tuple(a.shape) == (2, C))
check("gates", lambda: torch.allclose(a, reference.last_gate, atol=1e-6))
check("output", lambda: torch.allclose(V, expected, atol=1e-6))
""", tags=["check", "hide-input"]),
])
exercise_metadata(PATH, title="Squeeze-and-Excitation from scratch", chapter=2,
                  checks=["gate_shape", "gates", "output"], time_limit=60,
                  parameters={"C": {"choices": [16, 32, 64, 128]}, "reduction": {"choices": [2, 4, 8, 16]},
                              "seed": {"min": 0, "max": 10_000}})
execute(PATH)
