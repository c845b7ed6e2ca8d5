"""``check(name, passed)``: the one function exercise notebooks call, for students; Python only.

Each call prints one line, ``CHECK <name>: PASS`` or ``CHECK <name>: FAIL: <why>``,
and is kept in ``RESULTS``. Grading never trusts a student's kernel with the checks: the
student's notebook only *exports* its answers (``collect`` in a cell tagged ``answers``), and
the checks run on those answers, as data, in a separate process (``course_lib.instructor.grading``).
"""
from __future__ import annotations

import re

CHECK_LINE = re.compile(r"^CHECK (\S+): (PASS|FAIL)(?:: (.*))?$", re.M)
RESULTS: list = []   # (name, "PASS" | "FAIL", message) for every call, in order


class AnswerError(Exception):
    """An answer that the student's notebook could not give (its code raised, or it is missing)."""


class Answers:
    """The answers a notebook exports: name -> value, or the error its code raised."""

    def __init__(self, values: dict, errors: dict | None = None):
        self.values, self.errors = dict(values), dict(errors or {})

    def __getitem__(self, name):
        if name in self.values:
            return self.values[name]
        raise AnswerError(f"answer {name!r}: {self.errors.get(name, 'not given')}")

    def __contains__(self, name):
        return name in self.values

    def __repr__(self):
        return f"Answers({sorted(self.values)}, errors={sorted(self.errors)})"


def collect(**answers) -> Answers:
    """Evaluate each answer (a function of no arguments); one that raises spoils only itself."""
    values, errors = {}, {}
    for name, get in answers.items():
        try:
            values[name] = get() if callable(get) else get
        except Exception as err:
            errors[name] = f"{type(err).__name__}: {err}"[:300]
    return Answers(values, errors)


def check(name: str, passed, message: str = "") -> bool:
    """Record one check: ``passed`` is a bool or a function returning one (exceptions fail it)."""
    try:
        ok = bool(passed() if callable(passed) else passed)
    except Exception as err:  # a student's bug fails this check and not the others
        ok, message = False, f"{type(err).__name__}: {err}"
    message = " ".join(str(message or "wrong answer").split())[:300]   # one line: nothing can forge another
    RESULTS.append((name, "PASS" if ok else "FAIL", "" if ok else message))
    print(f"CHECK {name}: PASS" if ok else f"CHECK {name}: FAIL: {message}")
    return ok
