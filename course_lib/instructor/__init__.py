"""Instructor tools (exercises, notebook parameters, the experiments command line): may import every layer."""
