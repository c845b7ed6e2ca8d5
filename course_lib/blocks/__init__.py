"""The book's blocks, chapters 1-5: may import torch and each other, nothing else of course_lib."""
