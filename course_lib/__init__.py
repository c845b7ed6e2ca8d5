"""course_lib: the blocks of the Split-Attention Networks course.

Each idea of the book has one module, named after it:

- ``data``        CIFAR-10 and Hotdog, found offline or downloaded
- ``plots``       image grids and block diagrams drawn with matplotlib
"""
__version__ = "0.1.0"
REPO_URL = "https://github.com/split-attention-course/resnest-book"  # same as _config.yml
