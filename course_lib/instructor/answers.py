"""Answers as data: what a student's kernel hands to the grader, in a format that runs no code.

The student's kernel writes ``answers.json`` (numbers, strings, lists, tuples, dicts with
string keys) and one ``N.npy`` file per array or tensor. The grader reads them with ``json``
and ``numpy.load(allow_pickle=False)``: no pickle, no import of anything the student named.
Anything else (a function, a module, a custom object) is not an answer; the check that needs
it fails with that reason.
"""
from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

from ..check import Answers

MANIFEST = "answers.json"
MAX_ARRAYS = 256
MAX_BYTES = 256 * 2**20      # all the answer files of one notebook together
MAX_DEPTH = 20


class _NotData(Exception):
    pass


# --------------------------------------------------------------------------- student side (in the sandbox)
def export(answers: Answers, folder) -> None:
    """Write ``answers`` to ``folder``: one answer that is not data spoils only itself."""
    import numpy as np
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays: list = []
    values, errors = {}, dict(getattr(answers, "errors", {}))
    for name, value in dict(getattr(answers, "values", {})).items():
        mark = len(arrays)
        try:
            values[str(name)] = _encode(value, arrays, 0)
        except (_NotData, RecursionError) as err:
            del arrays[mark:]
            errors[str(name)] = f"not data: {err}"[:300]
    for i, array in enumerate(arrays):
        np.save(folder / f"{i}.npy", array, allow_pickle=False)
    (folder / MANIFEST).write_text(json.dumps({"version": 1, "arrays": len(arrays), "values": values,
                                               "errors": {k: str(v)[:300] for k, v in errors.items()}}))


def _encode(value, arrays: list, depth: int):
    import numpy as np
    if depth > MAX_DEPTH:
        raise _NotData("nested too deep")
    if value is None or isinstance(value, (bool, str)):
        return {"v": str(value) if isinstance(value, str) else value}
    if isinstance(value, int):
        return {"v": int(value)} if abs(value) < 2**53 else {"int": str(int(value))}
    if isinstance(value, float):
        return {"v": value} if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, (list, tuple)):
        items = [_encode(v, arrays, depth + 1) for v in value]
        return {"list": items} if isinstance(value, list) else {"tuple": items}
    if isinstance(value, (set, frozenset)):
        return {"set": [_encode(v, arrays, depth + 1) for v in value]}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise _NotData("a dict's keys must be strings")
        return {"dict": {k: _encode(v, arrays, depth + 1) for k, v in value.items()}}
    if isinstance(value, np.generic):
        return _encode(value.item(), arrays, depth)
    if isinstance(value, np.ndarray) or _is_tensor(value):
        torch_tensor = not isinstance(value, np.ndarray)
        array = value.detach().cpu().numpy() if torch_tensor else value
        if array.dtype.hasobject:
            raise _NotData("an array of Python objects")
        arrays.append(np.ascontiguousarray(array))
        return {"array": len(arrays) - 1, "torch": torch_tensor}
    raise _NotData(f"a {type(value).__name__}")


def _is_tensor(value) -> bool:
    try:
        import torch
    except ImportError:
        return False
    return isinstance(value, torch.Tensor)


# --------------------------------------------------------------------------- grader side
def copy_files(src, dst) -> None:
    """Copy the answer files from the student's folder: regular files only, no links, bounded sizes.

    Raises ValueError when they are missing, too large or not plain files."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    manifest = _read_plain(src / MANIFEST, MAX_BYTES)
    try:
        count = int(json.loads(manifest).get("arrays", 0))
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"{MANIFEST} is not a JSON object") from None
    if not 0 <= count <= MAX_ARRAYS:
        raise ValueError(f"{count} arrays: at most {MAX_ARRAYS}")
    (dst / MANIFEST).write_bytes(manifest)
    total = len(manifest)
    for i in range(count):
        data = _read_plain(src / f"{i}.npy", MAX_BYTES - total)
        total += len(data)
        (dst / f"{i}.npy").write_bytes(data)


def _read_plain(path: Path, limit: int) -> bytes:
    """A regular file's bytes, never through a symbolic link, at most ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        raise ValueError(f"{path.name}: {err.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path.name}: the answers are larger than {MAX_BYTES // 2**20} MB")
    return data


def load(folder) -> Answers:
    """The answers in ``folder`` (written by :func:`export`, copied by :func:`copy_files`), as data."""
    folder = Path(folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    values, errors = {}, {str(k): str(v)[:300] for k, v in dict(manifest.get("errors", {})).items()}
    cache: dict = {}
    for name, encoded in dict(manifest.get("values", {})).items():
        try:
            values[str(name)] = _decode(encoded, folder, cache, 0)
        except (ValueError, TypeError, KeyError, AttributeError, OSError, RecursionError) as err:
            errors[str(name)] = f"unreadable: {type(err).__name__}: {err}"[:300]
    return Answers(values, errors)


def _decode(item, folder: Path, cache: dict, depth: int):
    if depth > MAX_DEPTH or not isinstance(item, dict) or len(item) not in (1, 2):
        raise ValueError("not an encoded answer")
    if "v" in item:
        if not (item["v"] is None or isinstance(item["v"], (bool, int, float, str))):
            raise ValueError("not a plain value")
        return item["v"]
    if "int" in item:
        return int(str(item["int"])[:5000])
    if "float" in item:
        return float(str(item["float"]))
    if "list" in item or "tuple" in item or "set" in item:
        kind = next(k for k in ("list", "tuple", "set") if k in item)
        items = [_decode(v, folder, cache, depth + 1) for v in item[kind]]
        return {"list": list, "tuple": tuple, "set": set}[kind](items)
    if "dict" in item:
        return {str(k): _decode(v, folder, cache, depth + 1) for k, v in dict(item["dict"]).items()}
    if "array" in item:
        import numpy as np
        index = int(item["array"])
        if not 0 <= index < MAX_ARRAYS:
            raise ValueError("no such array")
        if index not in cache:
            cache[index] = np.load(folder / f"{index}.npy", allow_pickle=False)
        array = cache[index]
        if item.get("torch"):
            import torch
            return torch.from_numpy(array.copy())
        return array.copy()
    raise ValueError("not an encoded answer")
