"""The training engine (data, device, recipes, training loop, records, run, timing): may import blocks and models."""
