"""Source of chapters/00_setup_and_data.ipynb."""
from tools.nb import code, execute, md, setup_cell, write

PATH = "chapters/00_setup_and_data.ipynb"
write(PATH, [
    md("""
# Setup and data

Every chapter of this book is a notebook that starts the same way: a setup cell,
then imports from `course_lib`, the small package that holds every block the book
builds. This chapter checks that the pipeline works from end to end: the package
imports, the data sets load, and a few CIFAR-10 {cite}`krizhevsky2009cifar` images
appear on the page.
"""),
    setup_cell(),
    md("""
## Where the data comes from

`course_lib.engine.data` is the only place that looks for data. It searches the *data
root*: the `root=` argument of a loader, else the environment variable
`COURSE_DATA`, else the repository's `data/` folder. When a data set is not there
it downloads the official copy (CIFAR-10 through torchvision, D2L's Hotdog through
the `d2l` package), and when that fails too it stops with a message that says
where it looked and what to do.

CIFAR-10 is decoded once into a single `uint8` tensor file, so later epochs and
later chapters never decode an image again. The validation split is carved from
the official training set with a fixed seed: no chapter tunes anything on the
test set.
"""),
    code("""
import torch
from course_lib.engine import data
from course_lib.figures.plots import show_images

train = data.load_cifar10("train")   # 45,000 images
val = data.load_cifar10("val")       # 5,000 images, carved from the training set (split_seed=0)
test = data.load_cifar10("test")     # the official 10,000 test images
print(f"train {len(train):,}  val {len(val):,}  test {len(test):,}")
print("one batch of images:", tuple(train.images[:8].shape), train.images.dtype)
print("classes:", ", ".join(train.classes))
"""),
    md("""
Each image is 32 by 32 pixels with three colour channels, stored as bytes: an
image is a tensor $x \\in \\{0, 1, \\dots, 255\\}^{3 \\times 32 \\times 32}$ of
unsigned 8-bit integers. Here are the first two of every class in the
validation split.
"""),
    code("""
order = torch.cat([torch.nonzero(val.labels == c).flatten()[:2] for c in range(10)])
fig = show_images(val.images[order], [val.classes[int(c)] for c in val.labels[order]], ncols=10)
"""),
    md("""
```{note}
The copy of CIFAR-10 used to build this site is stored as JPEG (quality 75), not
as the original lossless pixels, because the machines that build the book have no
internet. Expect slight compression artefacts, and accuracies that can sit a
little below those measured on the official files.
```
"""),
    md("""
## Browse the images yourself

Twenty images say little about a class. The small explorer below, built with
`ipywidgets`, walks through the validation images of one class: choose a class,
then move the slider. Each image is enlarged four times without smoothing, so
every square you see is one of the 32 by 32 pixels.
"""),
    code("""
import io
import ipywidgets as widgets
from PIL import Image


def png(image, scale=4):
    \"\"\"A uint8 (3, H, W) image as PNG bytes, enlarged `scale` times with nearest-neighbour.\"\"\"
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    pil.save(buffer, format="png")
    return buffer.getvalue()


by_class = [torch.nonzero(val.labels == c).flatten() for c in range(len(val.classes))]
pick = widgets.Dropdown(options=list(val.classes), value="cat", description="class")
index = widgets.IntSlider(value=0, min=0, description="image")
picture = widgets.Image(format="png", width=128, height=128)
caption = widgets.Label()


def update(_=None):
    members = by_class[val.classes.index(pick.value)]
    index.max = len(members) - 1
    i = int(members[index.value])
    picture.value = png(val.images[i])
    caption.value = f"validation image {i:,} of {len(val):,}, labelled {pick.value}"


pick.observe(update, "value")
index.observe(update, "value")
update()
controls = widgets.HBox([pick, index], layout=widgets.Layout(flex_flow="row wrap"))  # wraps on a phone
widgets.VBox([controls, picture, caption])
"""),
    md("""
## The Hotdog data set

Chapter 8 fine-tunes networks on D2L's Hotdog data set {cite}`zhang2023d2l`:
photos with or without a hot dog. The site is built offline with a smaller
stand-in that has the same folder layout, `hotdog64`: 64x64 photos from
Food-101 {cite}`bossard2014food101`, 799 + 799 for training and 200 + 200 for
testing. On Colab the loader downloads the real set.
"""),
    code("""
hot_train = data.load_hotdog("train")
hot_test = data.load_hotdog("test")
print(f"hotdog: train {len(hot_train):,}  test {len(hot_test):,}  classes {hot_train.classes}")
"""),
])
execute(PATH)
