"""Source of exercises/05_predict_block_params.ipynb."""
from tools.nb import code, execute, exercise_metadata, md, setup_cell, write

PATH = "exercises/05_predict_block_params.ipynb"
write(PATH, [
    md("""
# Exercise 5: predict the parameters of an `NsKxWd` block

*Chapter 5.* A name like `ResNeSt-14-2s1x64d` fixes the radix $R$ (`2s`), the
cardinality $K$ (`1x`) and the bottleneck width (`64d`). Predict, with pen and
paper turned into a function, how many parameters the **first bottleneck block of
stage 1** (`layer1[0]`) of your variant has, then let the checks build the network
and count.
"""),
    setup_cell(),
    code("""
name = "ResNeSt-14-2s1x64d"
""", tags=["parameters"]),
    md("""
What you need to know about `layer1[0]` of a ResNeSt-14 (deep stem of width 32,
so the block receives 64 channels; `planes = 64`; expansion 4):

- `conv1`: $1\\times1$, 64 → $B$ channels, no bias, then BN. $B = \\lfloor 64 \\cdot W / 64 \\rfloor \\cdot K$.
- `conv2`: Split-Attention on $B$ channels: a $3\\times3$ convolution from $B$ to $B R$
  channels in $G = KR$ groups (no bias) and its BN; `fc1` from $B$ to $d$ channels in
  $K$ groups, with bias, and its BN; `fc2` from $d$ to $B R$ channels in $K$ groups,
  with bias. $d$ = `course_lib.blocks.split_attn.split_attn_channels(B, R)`.
- `conv3`: $1\\times1$, $B$ → 256, no bias, then BN.
- `downsample`: an average pool (no parameters), a $1\\times1$ convolution 64 → 256
  (no bias) and its BN.

A BN layer over $c$ channels has $2c$ parameters (its running statistics are buffers).
"""),
    code("""
from course_lib import parse_name
from course_lib.blocks.split_attn import split_attn_channels

config = parse_name(name)
print(config)
"""),
    md("**Task.** Write `predict_block_params(R, K, W)` and set `prediction` for your variant."),
    code("""
def predict_block_params(R, K, W, inplanes=64, planes=64):
    ### BEGIN SOLUTION
    B = int(planes * W / 64) * K
    d = split_attn_channels(B, R)
    out = planes * 4
    conv1 = inplanes * B + 2 * B
    conv2 = (B // (K * R)) * B * R * 9 + 2 * B * R           # split conv + bn0
    conv2 += (B // K) * d + d + 2 * d                         # fc1 + bn1
    conv2 += (d // K) * B * R + B * R                         # fc2
    conv3 = B * out + 2 * out
    downsample = inplanes * out + 2 * out
    return conv1 + conv2 + conv3 + downsample
    ### END SOLUTION


### BEGIN SOLUTION
prediction = predict_block_params(config.radix, config.cardinality, config.width)
### END SOLUTION
print(f"{name}: layer1[0] has {prediction:,} parameters (predicted)")
""", tags=["solution", "hide-input"]),
    code("""
from course_lib import create_model
from course_lib.check import check

block = create_model(name, num_classes=10).layer1[0]
counted = sum(p.numel() for p in block.parameters())
print(f"counted: {counted:,}")
check("prediction", lambda: prediction == counted, f"predicted {prediction:,}, counted {counted:,}")
check("other_variant", lambda: predict_block_params(2, 2, 40) == sum(
    p.numel() for p in create_model("ResNeSt-14-2s2x40d", num_classes=10).layer1[0].parameters()))
""", tags=["check", "hide-input"]),
])
exercise_metadata(PATH, title="Predict the parameters of an NsKxWd block", chapter=5,
                  checks=["prediction", "other_variant"], time_limit=90,
                  parameters={"name": {"choices": ["ResNeSt-14-1s1x64d", "ResNeSt-14-2s1x64d", "ResNeSt-14-4s1x64d",
                                                   "ResNeSt-14-1s2x64d", "ResNeSt-14-2s2x40d", "ResNeSt-14-1s4x24d",
                                                   "ResNeSt-14-4s2x40d", "ResNeSt-14-3s1x48d"]}})
execute(PATH)
