"""Model names, create_model and pretrained weights: may import blocks (and timm, lazily inside functions)."""
