"""Source of exercises/07_frozen_backbone.ipynb."""
from tools.nb import code, execute, exercise_metadata, md, setup_cell, write

PATH = "exercises/07_frozen_backbone.ipynb"
write(PATH, [
    md("""
# Exercise 7: fine-tuning with a frozen backbone

*Chapter 8.* Fine-tuning as in D2L updates every layer, with a small learning rate
for the pretrained body and a larger one for the new head. The cheapest variant
freezes the body altogether and trains only the new classifier: the backbone is
then a fixed feature extractor. Write the freezing, train on Hotdog, and show that
the backbone did not move.

With `pretrained=True` (online, e.g. on Colab) the backbone carries ImageNet
weights. Offline the backbone is randomly initialised: then you measure how far
*random* features go, which is a useful baseline but not transfer learning.
"""),
    setup_cell(),
    code("""
model_name = "ResNet-18"
pretrained = False
images = 200      # Hotdog training images (class-balanced)
epochs = 1
lr = 0.01         # learning rate of the head
seed = 0
""", tags=["parameters"]),
    code("""
import torch
from course_lib import create_model
from course_lib.engine.data import load_data
from course_lib.engine.recipes import get_recipe
from course_lib.engine.train import train

torch.manual_seed(seed)
model = create_model(model_name, num_classes=2, pretrained=pretrained)
data = load_data("hotdog", images=images, test_images=200)
before = {k: v.clone() for k, v in model.state_dict().items()}
print(model_name, "head:", model.get_classifier())
"""),
    md("""
**Task.** Write `freeze_backbone(model)`: switch off gradients for every parameter
except those of the classifier (`model.get_classifier()`), and return the sorted
list of the names of the parameters that still train.
"""),
    code("""
def freeze_backbone(model):
    ### BEGIN SOLUTION
    head = {id(p) for p in model.get_classifier().parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in head)
    return sorted(name for name, p in model.named_parameters() if p.requires_grad)
    ### END SOLUTION


trainable = freeze_backbone(model)
print("trainable:", trainable)
""", tags=["solution", "hide-input"]),
    code("""
recipe = get_recipe("finetune", epochs=epochs, lr=lr, head_lr_mult=1.0, loss_reduction="mean", batch_size=64)
out = train(model, data, recipe, seed=seed, progress=False, image_size=64,
            mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
print(f"test accuracy after {epochs} epoch(s) on {images} images: {out['test_acc']:.3f}")
"""),
    code("""
from course_lib.check import check

after = model.state_dict()
head_names = {f"{n}" for n, _ in model.named_parameters() if n.startswith(("fc.", "classifier."))}
check("trainable_names", lambda: set(trainable) == head_names and len(trainable) > 0)
check("backbone_frozen", lambda: all(torch.equal(before[n], after[n]) for n, _ in model.named_parameters()
                                     if n not in head_names))
check("head_trained", lambda: any(not torch.equal(before[n], after[n]) for n in head_names))
""", tags=["check", "hide-input"]),
])
exercise_metadata(PATH, title="Fine-tuning with a frozen backbone", chapter=8,
                  checks=["trainable_names", "backbone_frozen", "head_trained"], time_limit=300,
                  parameters={"model_name": {"choices": ["ResNet-18", "ResNet-50", "ResNeSt-14", "ResNeSt-50"]},
                              "images": {"min": 20, "max": 1598}, "epochs": {"min": 1, "max": 10},
                              "lr": {"min": 1e-5, "max": 1.0}, "seed": {"min": 0, "max": 10_000}})
execute(PATH)
