"""Source of chapters/05_assembling_resnest.ipynb."""
import nbformat

from tools.nb import code, execute, md, setup_cell, write

PATH = "chapters/05_assembling_resnest.ipynb"
WIDGET_NOTE = ("Move the sliders in a live kernel (Colab or local); the static page shows the "
               "initial state.")

write(PATH, [
    md("""
# Assembling ResNeSt

Chapter 4 built the Split-Attention block. A network needs more than its block:
a stem that turns the image into the first feature maps, a way to halve the maps
between stages, shortcuts whose shapes match, and a classifier. ResNeSt
{cite}`zhang2022resnest` takes the ResNet {cite}`he2016resnet` layout of four
stages of bottlenecks and changes three of these parts, two of them borrowed from
the "bag of tricks" for ResNets {cite}`he2019bag`. This chapter follows an image
through a ResNeSt-14, takes the report's naming scheme apart {cite}`resnestreport`,
finds the three differences between its ResNet-14 and ResNeSt-14 in the two
models' module trees, recounts the parameters of every network in the report's
Tables I and II, and finally loads timm's ImageNet weights into course_lib's model
and gets the same outputs.
"""),
    setup_cell(),
    code("""
import difflib
import torch
from torch import nn

from course_lib import create_model, parse_name, list_models
from course_lib.blocks.cost import count_params, count_macs
from course_lib.figures import diagrams

_ = torch.manual_seed(0)
"""),
    md("""
## The skeleton

Every network of this chapter has the same plan:

| part | what it does | output for a $3 \\times H \\times W$ image |
|---|---|---|
| stem | convolutions and a max pool | $(64, H/4, W/4)$ |
| stage 1 | bottlenecks, stride 1 | $(256, H/4, W/4)$ |
| stage 2 | bottlenecks, the first with stride 2 | $(512, H/8, W/8)$ |
| stage 3 | bottlenecks, the first with stride 2 | $(1024, H/16, W/16)$ |
| stage 4 | bottlenecks, the first with stride 2 | $(2048, H/32, W/32)$ |
| head | global average pool, dense layer | (classes,) |

A bottleneck of stage $i$ has `planes` $p = 64 \\cdot 2^{i-1}$: a 1x1 convolution
to $B$ channels, the 3x3 (Split-Attention) on $B$ channels, a 1x1 convolution to
$4p$ channels, and the shortcut. Counting the stem convolution and the classifier
as one layer each and three layers per bottleneck gives the depth,

$$
\\text{depth} = 2 + 3 \\sum_{i=1}^{4} n_i ,
$$

for $n_i$ blocks in stage $i$: ResNeSt-14 has one block per stage, ResNeSt-50 has
$(3, 4, 6, 3)$. One ResNeSt bottleneck of stage 2, for a 32x32 map:
"""),
    code("""
fig = diagrams.draw_resnest_block(in_channels=256, planes=128, stride=2, radix=2,
                                  cardinality=1, width=64, height=32)
"""),
    md("""
## Three changes to the ResNet plan

**Deep stem.** ResNet starts with one 7x7 convolution (stride 2) from 3 to 64
channels. ResNeSt replaces it by three 3x3 convolutions, 3 → 32 (stride 2),
32 → 32, 32 → 64, each followed by batch norm and ReLU: the "ResNet-C" tweak of
{cite}`he2019bag`. The output shape is the same. The stack sees a slightly larger
window of the image (11x11 pixels instead of 7x7, because its second and third 3x3
work on the already halved map), has three times the weights, and adds two
nonlinearities.
"""),
    code("""
fig = diagrams.draw_stems(size=224, stem_width=32)
"""),
    md("""
**Average-pool shortcut ("avg-down").** When a stage halves the map, ResNet's
shortcut is a 1x1 convolution with stride 2: it reads one pixel in four and
ignores the other three. ResNet-D {cite}`he2019bag` first averages each 2x2 patch
(a 2x2 average pool with stride 2) and then applies a stride-1 1x1 convolution, so
every input pixel reaches the output. Same output shape, same weights, and the
same multiply-adds; only the information used differs. A small experiment shows
the difference: change only the pixels at odd rows and columns, and see which
shortcut notices.
"""),
    code("""
resnet = create_model("ResNet-14-0s1x64d", num_classes=10).eval()
resnest = create_model("ResNeSt-14-0s1x64d", num_classes=10).eval()
x = torch.randn(1, 256, 8, 8)
x_changed = x.clone()
x_changed[:, :, 1::2, 1::2] += 1.0                 # 16 of the 64 pixels change
with torch.no_grad():
    for label, model in (("strided 1x1 (ResNet)", resnet),
                         ("avg-down (ResNeSt)", resnest)):
        shortcut = model.layer2[0].downsample
        change = (shortcut(x_changed) - shortcut(x)).abs().max().item()
        print(f"{label:22s} output {tuple(shortcut(x).shape)}, max change {change:.3f}")
"""),
    md("""
**Average downsampling in the block ("avd").** In ResNet the strided block's 3x3
convolution has stride 2 (torchvision's "ResNet-B" placement). In ResNeSt that
convolution is the Split-Attention, and it runs at stride 1 on the full map; a
3x3 average pool with stride 2 halves the map afterwards. The attention then pools
and weighs the full-resolution splits. This costs multiply-adds, since the 3x3
works on four times as many pixels, and no parameters (a pool has none).

The table switches the three changes off one at a time (`create_model` passes
`deep_stem=`, `avg_down=` and `avd=` on to `ResNeSt`). Counting needs only the
shapes of the tensors, not their values, so the models are built on PyTorch's
`meta` device, where no memory is allocated and no arithmetic is done:
"""),
    code("""
def on_meta(name, **options):
    \"\"\"A model without memory for its weights: enough to count parameters and MACs.\"\"\"
    with torch.device("meta"):
        return create_model(name, num_classes=10, **options)


none = dict(deep_stem=False, avg_down=False, avd=False)
print(f"{'ResNeSt-14 (2s1x64d)':22s} {'parameters':>11s} {'MACs 32x32':>11s} "
      f"{'MACs 224x224':>13s}")
for label, options in [("with all three", {}),
                       ("without the deep stem", dict(deep_stem=False)),
                       ("without avg-down", dict(avg_down=False)),
                       ("without avd", dict(avd=False)),
                       ("without any", none)]:
    model = on_meta("ResNeSt-14", **options)
    params = count_params(model) / 1e6
    macs_32 = count_macs(model, (3, 32, 32)) / 1e6
    macs_224 = count_macs(model, (3, 224, 224)) / 1e9
    print(f"{label:22s} {params:9.3f} M {macs_32:9.1f} M {macs_224:11.3f} G")
"""),
    md("""
The deep stem adds about 19 thousand parameters; avg-down changes nothing that
can be counted; avd leaves the parameters alone but is responsible for most of the
extra multiply-adds, because each strided block's Split-Attention runs on a map
twice as wide and twice as high.

## Following an image through ResNeSt-14

Forward hooks record the shape that comes out of each named module. The same
network is fed a CIFAR-sized $32 \\times 32$ image and an ImageNet-sized
$224 \\times 224$ one:
"""),
    code("""
def trace(model, size, names):
    \"\"\"Output shape (C, H, W) of each named submodule for one size x size image.\"\"\"
    shapes, hooks = {}, []
    for name in names:
        def hook(module, inputs, output, name=name):
            shapes[name] = tuple(output.shape[1:])
        hooks.append(model.get_submodule(name).register_forward_hook(hook))
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    return shapes


rows = [("conv1.0", "stem: 3x3 conv, stride 2"),
        ("conv1", "stem: three 3x3 convs"),
        ("maxpool", "stem: 3x3 max pool, stride 2"),
        ("layer1.0.conv2", "Split-Attention"),
        ("layer1", "stage 1 output")]
for i in (2, 3, 4):
    rows += [(f"layer{i}.0.conv1", "1x1 conv"),
             (f"layer{i}.0.conv2", "Split-Attention, stride 1"),
             (f"layer{i}.0.avd_last", "avd: 3x3 avg pool, stride 2"),
             (f"layer{i}.0.downsample.0", "shortcut: 2x2 avg pool"),
             (f"layer{i}", f"stage {i} output")]
rows += [("global_pool", "global average pool"), ("fc", "dense layer, 10 classes")]

model = create_model("ResNeSt-14", num_classes=10)
small, large = (trace(model, size, [name for name, _ in rows]) for size in (32, 224))
print(f"{'module':22s} {'what':29s} {'32x32 image':>13s} {'224x224 image':>16s}")
for name, what in rows:
    print(f"{name:22s} {what:29s} {str(small[name]):>13s} {str(large[name]):>16s}")
"""),
    md("""
Two things stand out. On ImageNet-sized images the last stage works on $7 \\times 7$
maps; on CIFAR's $32 \\times 32$ images the network is down to $2 \\times 2$ before
stage 4 and $1 \\times 1$ after it, so the last Split-Attention block pools and
weighs a map of four pixels, and without avd it would see a single pixel. And the
main path (3x3 average pool, stride 2, padding 1) and the shortcut (2x2 average
pool, stride 2, rounding up) always agree on the output size, odd sizes included,
which is what lets the two be added.

## Names: ResNeSt-*depth*-*R*s*K*x*W*d

The report names its variants like the ResNeSt paper: `ResNeSt-14-2s1x64d` is
depth 14 with radix $R = 2$ ("2s", splits), cardinality $K = 1$ ("1x") and
bottleneck width 64 ("64d"), the number of 3x3 channels of each cardinal group in
stage 1 (they double with every stage). In a block of stage $i$ the 3x3 stage has

$$
B = \\left\\lfloor p \\cdot \\frac{W}{64} \\right\\rfloor \\cdot K, \\qquad p = 64 \\cdot 2^{i-1},
$$

channels; `0s` means no Split-Attention at all, a plain (grouped) 3x3.
`parse_name` turns a name into the configuration that `create_model` builds:
"""),
    code("""
names = ["ResNeSt-14-2s1x64d", "ResNeSt-14-1s2x64d", "ResNeSt-14-1s1x40d",
         "ResNet-14-0s1x64d", "ResNeSt-50", "ResNeSt-32", "resnest50d_4s2x40d"]
for name in names:
    c = parse_name(name)
    tricks = [t for t in ("deep_stem", "avg_down", "avd", "avd_first") if getattr(c, t)]
    print(f"{name:18s} layers {c.layers}, R={c.radix} K={c.cardinality} "
          f"width {c.width:2d}, {' '.join(tricks) or 'plain ResNet'}")

import textwrap
try:
    parse_name("ResNeSt-18")
except ValueError as err:
    message = "ValueError: " + str(err).split(" Accepted:")[0]
    print()
    print(textwrap.fill(message, width=88))
"""),
    md("""
Note the last line of the list: timm's `resnest50d_4s2x40d` places the avd pool
*before* the Split-Attention (`avd_first`), as the ResNeSt authors did for their
fast variants, while the report-style name `ResNeSt-50-4s2x40d` keeps the standard
placement after it.

## The report's ResNet-14 and ResNeSt-14

The report lists three differences between its `ResNet-14-0s1x64d` and
`ResNeSt-14-0s1x64d` {cite}`resnestreport`. Both have plain 3x3 convolutions
(radix 0), so the differences are outside the attention, and the clearest way to
find them is to compare the two module trees line by line: every leaf module with
its shape, `-` for a line only ResNet-14 has, `+` for one only ResNeSt-14 has.
"""),
    code("""
def describe(m):
    \"\"\"A leaf module in one short line.\"\"\"
    if isinstance(m, nn.Conv2d):
        groups = f", groups {m.groups}" if m.groups > 1 else ""
        k = m.kernel_size[0]
        return (f"Conv2d {m.in_channels}->{m.out_channels}, {k}x{k}, "
                f"stride {m.stride[0]}{groups}")
    if isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)):
        k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
        s = m.stride if isinstance(m.stride, int) else m.stride[0]
        return f"{type(m).__name__} {k}x{k}, stride {s}"
    if isinstance(m, nn.BatchNorm2d):
        return f"BatchNorm2d {m.num_features}"
    return type(m).__name__


def leaves(model):
    return [f"{name:24s} {describe(m)}" for name, m in model.named_modules()
            if not list(m.children())]


for line in difflib.unified_diff(leaves(resnet), leaves(resnest), lineterm="", n=0):
    if line.startswith("@@"):
        print()
    elif not line.startswith(("---", "+++")):
        print(line)
"""),
    md("""
Reading the diff from the top:

1. **The stem**: one 7x7 convolution against three 3x3 convolutions with batch
   norm and ReLU in between (32, 32 and 64 channels), as the report describes.
2. **The shortcuts**: where a stage halves the map, ResNet's strided 1x1 becomes a
   2x2 average pool (kernel equal to the stride) followed by a stride-1 1x1: the
   average pool "before the 1x1 convolutional layer" of the report. (In stage 1
   nothing is halved, and the pool is an `Identity`.)
3. **avd**: in the first block of stages 2-4 the 3x3 convolution loses its stride
   and a 3x3 average pool with stride 2 appears after it.

The report words the third difference as a 3x3 average pool with stride 1 applied
before the second convolution of the first residual block. In the official ResNeSt
code and in timm, whose module names and weights course_lib shares, the pool
exists only in blocks that downsample, has stride 2 and, for the standard models,
follows the 3x3 convolution; only the `avd_first` variants put it before. That is
what the module tree above shows.

## Parameters of the report's networks

The report's Table I compares ResNet-14 and ResNeSt-14 variants and its Table II
deeper ResNeSts, ResNet-18 and EfficientNets {cite}`tan2019efficientnet`, all with
10 output classes for CIFAR-10. Here are the parameters of course_lib's models
(`create_model(name, num_classes=10)`, counted on the meta device), next to the
report's:
"""),
    code("""
from course_lib.study.report import REPORT_PARAMS as report  # millions, Tables I and II

counted = {}
print(f"{'network':20s} {'course_lib':>11s} {'report':>8s}   agree to 0.01 M")
for name, theirs in report.items():
    if name == "ResNeSt-14":
        print("-" * 62, "Table II")
    counted[name] = count_params(on_meta(name)) / 1e6
    agree = abs(counted[name] - theirs) < 0.01
    print(f"{name:20s} {counted[name]:9.3f} M {theirs:6.2f} M   {agree}")
"""),
    md("""
Every count agrees with the report to the precision it prints (the report seems
to cut `ResNet-14-0s1x64d`'s 8.036 M to 8.03 rather than round it). Two rows need
a word.

**ResNeSt-32 is not a standard depth.** The ResNeSt paper reports depths 50,
101, 200 and 269, and the authors' GluonCV models (the source of timm's
`resnest14d` and `resnest26d` weights) add 14 and 26; none has 32 layers. By the depth
formula, 32 layers means 10 bottlenecks, and the report does not say how it split
them over the four stages. course_lib's `parse_name` picks `(2, 3, 3, 2)`, and the
reason is the parameter count itself: every split of 10 blocks into four stages
(each at least one block) gives a different count, and only this one lands on the
report's 16.56 M. The count of any split follows from two small models: a
ResNeSt-14 holds the first block of each stage, and the second block of each stage
of a ResNeSt-26 is what every further block adds.
"""),
    code("""
import itertools

base = count_params(on_meta("ResNeSt-14"))
resnest26 = on_meta("ResNeSt-26")
# what one more block adds to each stage
extra = [count_params(getattr(resnest26, f"layer{i}")[1]) for i in (1, 2, 3, 4)]
splits = [s for s in itertools.product(range(1, 8), repeat=4) if sum(s) == 10]
params = {s: base + sum((n - 1) * e for n, e in zip(s, extra)) for s in splits}
closest = sorted(splits, key=lambda s: abs(params[s] / 1e6 - 16.56))
print(f"{len(splits)} ways to put 10 blocks in 4 stages; "
      "the closest to the report's 16.56 M:")
for s in closest[:4]:
    print(f"  layers {s}: {params[s] / 1e6:6.3f} M")
print("parse_name('ResNeSt-32').layers =", parse_name("ResNeSt-32").layers)
"""),
    md("""
So `ResNeSt-32` in this book is a reconstruction, consistent with the report's
parameter count but not a network the ResNeSt authors defined.

**ResNeSt-101's stem.** The report's 46.14 M matches a ResNeSt-101 with the
32-wide deep stem used by ResNeSt-14, 26 and 50. The ResNeSt paper's own
ResNeSt-101 (timm's `resnest101e`) has a 64-wide stem, which also widens the input
of the first block. Only the stem and that first block differ, so the gap can be
measured on a ResNeSt-14 without building a second 101-layer network:
"""),
    code("""
wide = count_params(on_meta("ResNeSt-14", stem_width=64))
gap = wide - count_params(on_meta("ResNeSt-14"))
print(f"the 64-wide stem adds {gap:,} parameters")
print(f"resnest101e: {counted['ResNeSt-101'] + gap / 1e6:.2f} M with 10 classes, "
      f"the report's ResNeSt-101: {counted['ResNeSt-101']:.2f} M")
"""),
    md("""
## Explore the variants

Pick a family, a depth, the radix $R$, the cardinality $K$ and the bottleneck
width. The explorer builds `<family>-<depth>-<R>s<K>x<width>d` on the meta device
and shows its parameters, its multiply-adds for one CIFAR image and one
ImageNet-sized image, and where the parameters sit. Combinations that do not fit
(a 3x3 stage whose channels $G = K R$ does not divide) show course_lib's error
message instead.

*""" + WIDGET_NOTE + """*
"""),
    code("""
import html
import ipywidgets as widgets

family = widgets.ToggleButtons(options=["ResNeSt", "ResNet"], value="ResNeSt",
                               description="family")
depth = widgets.Dropdown(options=[14, 26, 32, 50, 101], value=14, description="depth")
radix = widgets.IntSlider(value=2, min=0, max=4, description="radix R",
                          continuous_update=False)
cardinality = widgets.IntSlider(value=1, min=1, max=8, description="K",
                                continuous_update=False)
width = widgets.IntSlider(value=64, min=8, max=128, step=8, description="width",
                          continuous_update=False)
result = widgets.HTML()


def show(_=None):
    name = (f"{family.value}-{depth.value}-"
            f"{radix.value}s{cardinality.value}x{width.value}d")
    try:
        model = on_meta(name)
    except ValueError as err:               # course_lib says which constraint broke
        result.value = (f"<p><b>{name}</b></p><p style='color:#b00020'>"
                        f"<b>ValueError:</b> {html.escape(str(err))}</p>")
        return
    stages = {part: count_params(getattr(model, part)) for part in
              ("conv1", "layer1", "layer2", "layer3", "layer4", "fc")}
    rows = "".join(f"<tr><td>{part}</td>"
                   f"<td style='text-align:right'>{p / 1e6:.3f} M</td></tr>"
                   for part, p in stages.items())
    result.value = (
        f"<p><b>{name}</b>: layers {parse_name(name).layers}<br>"
        f"parameters <b>{count_params(model) / 1e6:.2f} M</b> &nbsp; "
        f"MACs <b>{count_macs(model, (3, 32, 32)) / 1e6:.1f} M</b> per 32x32 image, "
        f"<b>{count_macs(model, (3, 224, 224)) / 1e9:.2f} G</b> per 224x224 image</p>"
        f"<table><tr><th>part</th><th>parameters</th></tr>{rows}</table>")


for w in (family, depth, radix, cardinality, width):
    w.observe(show, "value")
show()
wrap = widgets.Layout(flex_flow="row wrap")
widgets.VBox([widgets.HBox([family, depth], layout=wrap),
              widgets.HBox([radix, cardinality, width], layout=wrap), result])
"""),
    md("""
Try `ResNeSt-14` with radix 3: the first stage's 64 channels cannot be cut into
three splits. Choose depth 50: stage 4 alone holds more parameters than the stem
and the three stages before it together, because its blocks have the most
channels; the `fc` row is the classifier for 10 classes.

## timm's weights in course_lib's model

course_lib's `ResNeSt` uses timm's module and parameter names on purpose, so that a
state dict saved by timm loads into it with `strict=True` (every key present on
both sides, every shape equal). Loading is not yet proof that the two compute the
same thing, so the check goes further: build timm's `resnest14d` (1000 ImageNet
classes), give its batch-norm layers random statistics (a fresh network has mean 0
and variance 1 everywhere, which would hide a wrongly ordered channel), load its
state dict into course_lib's model of the same name, and compare the logits.
"""),
    code("""
import timm

reference = timm.create_model("resnest14d")
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    for m in reference.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.weight.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.bias.copy_(0.1 * torch.randn(m.num_features, generator=g))

ours = create_model("resnest14d")
loaded = ours.load_state_dict(reference.state_dict(), strict=True)
print("load_state_dict(strict=True):", loaded)
reference.eval()
ours.eval()
for size in (32, 224):
    x = torch.randn(2, 3, size, size, generator=g)
    with torch.no_grad():
        a, b = reference(x), ours(x)
    same_class = bool((a.argmax(1) == b.argmax(1)).all())
    print(f"{size}x{size}: logits {tuple(a.shape)}, "
          f"largest |logit| {a.abs().max():.3f}")
    print(f"  max |timm - course_lib| = {(a - b).abs().max():.0e}, "
          f"same top class: {same_class}")
"""),
    md("""
The two agree to the last bit. That is no accident of these inputs: course_lib's
Split-Attention runs the same steps in the same order as timm's (sum the splits,
pool, the two 1x1 convolutions, the softmax across the radix, the weighted sum),
so float32 rounds them the same way. An implementation that ordered some sums
differently, pooling before summing the splits for instance, would be allowed to
differ in the last bits and nothing else.

With internet access the same mechanism gives the official ImageNet weights
directly: `create_model(name, pretrained=True)` downloads timm's weights once
(they are cached by `huggingface_hub`) and loads them, strictly, into course_lib's
model. It works for the names that have published weights, such as `ResNeSt-14`
(timm's `resnest14d`), `ResNeSt-50` and `resnest101e`; chapter 8 fine-tunes them.

```python
model = create_model("ResNeSt-50", pretrained=True)                 # ImageNet, 1000 classes
model = create_model("ResNeSt-50", num_classes=2, pretrained=True)  # new 2-class classifier
```

Without a network connection (as on the machine that built this book) the call
stops with a `PretrainedUnavailableError` that says so, instead of hanging.

## Exercises

**Exercise 1 (why `ceil_mode`).** The avg-down pool of the shortcut is built with
`ceil_mode=True`. For map sizes $n = 2, \\dots, 9$, compare the output size of the
main path's avd pool (`AvgPool2d(3, 2, padding=1)`) with the shortcut's pool
(`AvgPool2d(2, 2)`) with and without `ceil_mode`. For which $n$ would the block
fail without it?
"""),
    code("""
# Solution to exercise 1
main = nn.AvgPool2d(3, 2, padding=1)
floor_pool = nn.AvgPool2d(2, 2)
ceil_pool = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)
for n in range(2, 10):
    x = torch.zeros(1, 1, n, n)
    sizes = [p(x).shape[-1] for p in (main, ceil_pool, floor_pool)]
    note = "" if sizes[0] == sizes[2] else "  <- the addition fails"
    print(f"n = {n}: avd {sizes[0]}, shortcut with ceil_mode {sizes[1]}, "
          f"without {sizes[2]}{note}")
""", tags=["hide-input"]),
    md("""
**Exercise 2 (where the attention's parameters are).** In a ResNeSt-50 with 10
classes, what share of the parameters sits in the attention MLPs (`fc1`, `bn1`,
`fc2` of every Split-Attention block) and what share in the split convolutions?
Use `named_parameters` on a model built on the meta device.
"""),
    code("""
# Solution to exercise 2
model = on_meta("ResNeSt-50")
total = count_params(model)
attention = splits = 0
for name, p in model.named_parameters():
    if any(f".conv2.{part}." in name for part in ("fc1", "bn1", "fc2")):
        attention += p.numel()
    elif name.endswith(".conv2.conv.weight"):
        splits += p.numel()
print(f"total {total / 1e6:.2f} M")
print(f"attention MLPs     {attention / 1e6:5.2f} M ({attention / total:.1%})")
print(f"split convolutions {splits / 1e6:5.2f} M ({splits / total:.1%})")
""", tags=["hide-input"]),
    md("""
**Exercise 3 (a ResNeSt with mixed kernels).** Chapter 4's `MixedKernelSplitAttn`
reaches whole networks through `kernel_sizes`. Compare the parameters and the
multiply-adds per 32x32 image of `ResNeSt-14` with those of the same network built
with `kernel_sizes=(3, 5)` and with `kernel_sizes=(3, 3)` (then check that the last
one has exactly the parameters of the plain ResNeSt-14, and say why).
"""),
    code("""
# Solution to exercise 3
for label, options in [("ResNeSt-14", {}),
                       ("kernel_sizes=(3, 5)", dict(kernel_sizes=(3, 5))),
                       ("kernel_sizes=(3, 3)", dict(kernel_sizes=(3, 3)))]:
    model = on_meta("ResNeSt-14", **options)
    print(f"{label:20s} {count_params(model) / 1e6:6.3f} M parameters, "
          f"{count_macs(model, (3, 32, 32)) / 1e6:6.1f} M MACs")
# (3, 3) is the plain block with its grouped convolution cut into R per-split
# convolutions: the same weights, stored in two tensors instead of one.
""", tags=["hide-input"]),
])
# One output box per cell on the site, however the kernel happened to flush stdout.
notebook = nbformat.read(PATH, as_version=4)
notebook.metadata["mystnb"] = {"merge_streams": True}
nbformat.write(notebook, PATH)
execute(PATH)
