"""The engine (data, device, recipes, training loop, records, run, distributed, timing): may import blocks, models."""
