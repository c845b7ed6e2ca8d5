"""``check(name, passed)``: the one function exercise notebooks call, for students; Python only.

Each call prints one line, ``CHECK <name>: PASS`` or ``CHECK <name>: FAIL: <why>``,
which the grader (``course_lib.instructor.exercises``) reads back with ``CHECK_LINE``.
"""
from __future__ import annotations

import re

CHECK_LINE = re.compile(r"^CHECK (\S+): (PASS|FAIL)(?:: (.*))?$", re.M)


def check(name: str, passed, message: str = "") -> bool:
    """Record one check: ``passed`` is a bool or a function returning one (exceptions fail it)."""
    try:
        ok = bool(passed() if callable(passed) else passed)
    except Exception as err:  # a student's bug fails this check and not the others
        ok, message = False, f"{type(err).__name__}: {err}"
    print(f"CHECK {name}: PASS" if ok else f"CHECK {name}: FAIL: {message or 'wrong answer'}")
    return ok
