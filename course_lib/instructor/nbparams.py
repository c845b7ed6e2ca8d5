"""Papermill parameters, checked before a notebook runs, and runs with a time limit.

Papermill only warns about a parameter name that the notebook does not have, and
does not check values at all. Instructors' class sets and ``make experiments``
go through :func:`validate` first, so a typo stops with a list of what is allowed.

Allowed values are declared in a notebook's metadata, next to its ``parameters`` cell,
with optional constraints that tie parameters together::

    "course": {"parameters": {"K": {"choices": [1, 2, 4]}, "epochs": {"min": 1}},
               "constraints": [["width % (K * R) == 0", "width must be divisible by G = K*R"]]}
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def notebook_parameters(path) -> dict[str, object]:
    """Names and default values of the ``parameters`` cell (evaluated literals)."""
    import papermill
    found = papermill.inspect_notebook(str(path))
    if not found:
        raise ValueError(f"{path} has no cell tagged 'parameters': papermill cannot set anything in it.")
    return {name: _literal(p["default"]) for name, p in found.items()}


def _literal(text: str):
    import ast
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _course_meta(path) -> dict:
    return json.loads(Path(path).read_text()).get("metadata", {}).get("course", {})


def rules(path) -> dict[str, dict]:
    """The per-parameter rules (choices, min, max) from the notebook's metadata."""
    return _course_meta(path).get("parameters", {})


def describe(path) -> str:
    """One line per parameter: name, default, and allowed values."""
    defaults, allowed = notebook_parameters(path), rules(path)
    lines = []
    for name, default in defaults.items():
        rule = allowed.get(name, {})
        extra = ""
        if "choices" in rule:
            extra = f", one of {rule['choices']}"
        elif "min" in rule or "max" in rule:
            extra = f", from {rule.get('min', '-inf')} to {rule.get('max', 'inf')}"
        lines.append(f"  {name} (default {default!r}{extra})")
    return "\n".join(lines)


def validate(path, params: dict) -> dict:
    """Return ``params`` with values coerced to the defaults' types; raise ValueError on anything wrong."""
    defaults, allowed = notebook_parameters(path), rules(path)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"{Path(path).name} has no parameter {', '.join(map(repr, unknown))}. "
                         f"Allowed parameters:\n{describe(path)}")
    out = {}
    for name, value in params.items():
        value = _coerce(name, value, defaults[name], path)
        rule = allowed.get(name, {})
        bad = ("choices" in rule and value not in rule["choices"]) or \
              ("min" in rule and value < rule["min"]) or ("max" in rule and value > rule["max"])
        if bad:
            raise ValueError(f"{Path(path).name}: {name}={value!r} is not allowed. "
                             f"Allowed parameters:\n{describe(path)}")
        out[name] = value
    _check_constraints(path, {**defaults, **out})
    return out


def _check_constraints(path, values: dict) -> None:
    """Rules between parameters, e.g. ``width % (K * R) == 0``, evaluated on the final values."""
    for expr, message in _course_meta(path).get("constraints", []):
        if not eval(expr, {"__builtins__": {}}, dict(values)):  # expressions come from the notebook's author
            shown = ", ".join(f"{k}={v!r}" for k, v in values.items() if k in expr)
            raise ValueError(f"{Path(path).name}: {shown}: {message}. Allowed parameters:\n{describe(path)}")


def _coerce(name, value, default, path):
    """Sheets give strings: turn '4' into 4 when the default is an int, and so on."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        raise ValueError(f"{Path(path).name}: parameter {name} has no value. Allowed parameters:\n{describe(path)}")
    kind = type(default)
    if default is None or isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    try:
        if kind is bool:
            text = str(value).strip().lower()
            if text not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text in ("true", "1", "yes")
        if kind is int and float(value) != int(float(value)):
            raise ValueError
        return kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{Path(path).name}: {name}={value!r} is not a {kind.__name__} like its default "
                         f"{default!r}. Allowed parameters:\n{describe(path)}") from None


def run(input_path, output_path, params: dict, *, timeout: float, cwd=None) -> dict:
    """Execute a notebook with papermill in a child process, killed after ``timeout`` seconds.

    Returns ``{"status": "ok" | "error" | "timeout", "error": str, "seconds": float}``.
    The executed notebook (as far as it got) is written to ``output_path``.
    """
    cmd = [sys.executable, "-m", "papermill", str(input_path), str(output_path),
           "--no-progress-bar", "-y", json.dumps(params)]
    if cwd:
        cmd += ["--cwd", str(cwd)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group: the kernel dies with it
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"status": "timeout", "seconds": round(time.perf_counter() - start, 1),
                "error": f"stopped after the time limit of {timeout:g} s"}
    seconds = round(time.perf_counter() - start, 1)
    if proc.returncode == 0:
        return {"status": "ok", "error": "", "seconds": seconds}
    return {"status": "error", "seconds": seconds, "error": _last_error(err)}


def _last_error(stderr: str) -> str:
    """The line of papermill's stderr that names the exception, not the whole trace."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "Exception" in line:
            return line[:500]
    return (lines[-1] if lines else "the notebook failed")[:500]
