"""``python -m course_lib.experiments``: train, list and render the book's studies.

The command line itself is :mod:`course_lib.instructor.experiments`; the runs are
:mod:`course_lib.study.specs`, the training queue :mod:`course_lib.study.queue`.
This module stays at the top of the package so that the command keeps its name.
"""
import sys

from .instructor.experiments import main

if __name__ == "__main__":
    sys.exit(main())
