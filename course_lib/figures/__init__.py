"""Diagrams and plots drawn with matplotlib: may import blocks and models only."""
