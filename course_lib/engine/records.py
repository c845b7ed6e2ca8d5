"""One JSON record per training run, keyed by the run's full configuration.

A record lives at ``<results dir>/<model>_<dataset>_seed<seed>_<key>.json`` where
``key`` is a stable hash of the configuration (model, overrides, recipe fields,
data set, images, validation split, seed ...). The same configuration always
maps to the same file, so a finished run is found and reused instead of retrained.

Where records are written (:func:`results_dir`): ``$COURSE_RESULTS`` if set, else the
repository's ``results/`` in a checkout, else ``./course-results`` (a package installed
with pip). The records committed to the repository also travel inside the installed
package (``course_lib/_records``, :func:`packaged_dir`), so readers away from a checkout
find them too. Nothing read is trusted unchecked: a file that is not valid JSON, or
whose key does not match its configuration, is reported by name (:class:`RecordWarning`)
and not used.

Record schema (``SCHEMA`` = 1)::

    key, config, status ('running' | 'finished' | 'diverged'), error,
    history: [{epoch, train_loss, train_acc, val_loss, val_acc, lr, seconds}, ...] (with grad_clip also
             clipped_steps and grad_norm_max: the steps it clipped, the largest finite gradient norm before
             clipping; and skipped_steps when fp16 overflowed: steps whose norm was not finite, which the
             GradScaler skips and which count as neither clipped nor largest),
    val_acc, val_loss, test_acc, test_loss      # final, None when not measured; an overflowed
                                                # loss is the text "inf" / "nan", read back as a float

``diverged``: the loss became NaN or infinite during training (the record stops at the last good
epoch), or the run finished its epochs with a loss that exploded but stayed finite: its last
training loss more than ``train.EXPLODED_MARGIN`` nats above ln(classes), or a final loss overflowed
(:func:`course_lib.engine.train.loss_exploded`); ``error`` says which. A file that cannot be read is
named in a :class:`RecordWarning`, listed by :func:`damaged_records` and in ``load_results(status=None)``
as ``damaged``, and set aside as ``<name>.damaged`` when the run writes its record again.
    params, settings {device, precision, channels_last, compile}, hardware {...},
    torch, course_lib, wall_seconds, started, updated, checkpoint, [latency]
    since the fast path: versions {python, torch, torchvision, timm, numpy}, git_commit,
    data {dataset, source, train|val|test: {n, sha256}}, test_predictions {encoding, n,
    data, labels_sha256}; config gains precision, channels_last, compile
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import warnings
from datetime import datetime, timezone
from pathlib import Path

from .files import atomic_write, set_aside

SCHEMA = 1
ENV_RESULTS = "COURSE_RESULTS"
ENV_RUNS = "COURSE_RUNS"
_PACKAGE = Path(__file__).resolve().parents[1]   # course_lib/
_REPO = _PACKAGE.parent
INSTALLED_RESULTS = "course-results"             # ./course-results when not in a checkout


class RecordWarning(UserWarning):
    """A record file that cannot be trusted (not valid JSON, or its key does not match its configuration)."""


def precision_of(record: dict) -> str | None:
    """The precision a record's run trained in ('bf16', 'fp32', ...)."""
    return (record.get("settings") or {}).get("precision")


def in_checkout() -> bool:
    """True when course_lib runs from a clone of the book's repository (not from an installed package)."""
    return (_REPO / "course_lib").is_dir() and (_REPO / ".git").exists()


def _default(env: str, name: str, installed: str) -> Path:
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    return _REPO / name if in_checkout() else Path.cwd() / installed


def results_dir(path=None) -> Path:
    """Where run records are written: ``path`` > ``$COURSE_RESULTS`` > the repository's results/
    (in a checkout) > ``./course-results`` (an installed package)."""
    return Path(path).expanduser() if path is not None else _default(ENV_RESULTS, "results", INSTALLED_RESULTS)


def packaged_dir() -> Path | None:
    """The records that came with course_lib: the repository's results/ in a checkout, else the
    installed package's ``course_lib/_records`` (the same files, as package data); None if neither."""
    for path in ((_REPO / "results") if in_checkout() else None, _PACKAGE / "_records"):
        if path is not None and path.is_dir():
            return path
    return None


def runs_dir(path=None) -> Path:
    """Where checkpoints go (git-ignored): ``path`` > ``$COURSE_RUNS`` > the repository's runs/
    (in a checkout) > ``./course-results/runs`` (an installed package)."""
    return Path(path).expanduser() if path is not None else _default(ENV_RUNS, "runs", f"{INSTALLED_RESULTS}/runs")


def jsonable(value, nonfinite=lambda x: None):
    """Plain JSON values: tuples become lists, NaN/inf become ``nonfinite(x)`` (None for keys),
    dtypes/devices become strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v, nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, nonfinite) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else nonfinite(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy / torch scalars
        return jsonable(value.item(), nonfinite)
    return str(value)


# A record keeps a loss that overflowed: JSON has no infinity, so it is written as the text "inf"
# ("-inf", "nan"), never as null (which means "not measured"), and read back as a float.
NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _nonfinite_text(x: float) -> str:
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _nonfinite_back(value):
    if isinstance(value, dict):
        return {k: _nonfinite_back(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nonfinite_back(v) for v in value]
    return NONFINITE.get(value, value) if isinstance(value, str) else value


def as_stored(record: dict) -> dict:
    """A record as :func:`read_record` returns it once written: plain JSON values, overflowed losses as floats."""
    out = jsonable(record, _nonfinite_text)
    return {k: v if k == "config" else _nonfinite_back(v) for k, v in out.items()}


# Fields added to the configuration after the first records were written, with the value
# every one of those runs had (float32, no channels-last, no compile, warm-up in epochs).
# A field at that value is left out of the hash, so older records keep their keys.
LEGACY_DEFAULTS = {"precision": "fp32", "channels_last": False, "compile": False, "folds": None, "fold": None}
LEGACY_RECIPE_DEFAULTS = {"warmup_steps": 0, "resized_crop": False, "test_crop": 1.0, "freeze_body": False}


def _keyed(config: dict) -> dict:
    out = {k: v for k, v in config.items() if not (k in LEGACY_DEFAULTS and v == LEGACY_DEFAULTS[k])}
    if isinstance(out.get("recipe"), dict):
        out["recipe"] = {k: v for k, v in out["recipe"].items()
                         if not (k in LEGACY_RECIPE_DEFAULTS and v == LEGACY_RECIPE_DEFAULTS[k])}
    return out


def config_key(config: dict) -> str:
    """A stable 12-hex-digit hash of a configuration (order of keys does not matter).

    Fields of ``LEGACY_DEFAULTS`` at their legacy value do not enter the hash.
    """
    text = json.dumps(jsonable(_keyed(config)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def group_key(config: dict) -> str:
    """The hash of a configuration without its seed: runs that differ only by seed share it."""
    return config_key({k: v for k, v in config.items() if k != "seed"})


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(text)).strip("-") or "model"


def record_path(config: dict, directory=None) -> Path:
    name = f"{_slug(config.get('model'))}_{_slug(config.get('dataset', 'data'))}_seed{config.get('seed', 0)}"
    return results_dir(directory) / f"{name}_{config_key(config)}.json"


def write_json(path: Path, obj, what: str = "JSON file") -> Path:
    """Write JSON atomically: a killed writer never leaves half a file, a full disk leaves no temporary file.

    Overflowed floats are written as "inf", "-inf" or "nan" (see ``NONFINITE``).
    """
    text = json.dumps(jsonable(obj, _nonfinite_text), indent=1, sort_keys=False) + "\n"
    return atomic_write(path, lambda fh: fh.write(text.encode()), what=what)


def write_record(record: dict, directory=None) -> Path:
    """Write a run's record; a damaged file in its place is first set aside (``<name>.damaged``), not lost."""
    path = record_path(record["config"], directory)
    if path.exists():
        try:
            json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            set_aside(path, "is not valid JSON (damaged)", then="the run's new record is written in its place")
    return write_json(path, record, what="run record")


def update_record(record: dict, directory=None, **fields) -> dict:
    """Add fields to a stored record (e.g. ``latency=measure_latency(model)``) and rewrite it."""
    record = {**record, **jsonable(fields)}
    write_record(record, directory)
    return record


def read_record(path: Path, key: str | None = None) -> dict | None:
    """The record in ``path`` if it can be trusted, else None with a :class:`RecordWarning` naming the file.

    Trusted: valid JSON, an object with ``config`` and ``key``, a key equal to the hash of
    its configuration, to the key in its file name, and to ``key`` when given.
    """
    path = Path(path)
    fix = "Restore it (git checkout -- <file> in a clone) or delete it so the run trains again."
    try:
        rec = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        warnings.warn(f"{path}: not valid JSON ({err}); this record is not used. {fix}", RecordWarning, stacklevel=3)
        return None
    if not (isinstance(rec, dict) and isinstance(rec.get("config"), dict) and "key" in rec):
        warnings.warn(f"{path}: not a run record (no 'config' or 'key'); it is not used. {fix}", RecordWarning,
                      stacklevel=3)
        return None
    actual = config_key(rec["config"])
    named = path.stem.rsplit("_", 1)[-1]
    if not (rec["key"] == actual == named and key in (None, actual)):
        warnings.warn(f"{path}: its key {rec['key']!r} (file name {named!r}) does not match the hash of its "
                      f"configuration {actual!r}: the file was edited or belongs to another run, so it is not "
                      f"used. {fix}", RecordWarning, stacklevel=3)
        return None
    return {k: v if k == "config" else _nonfinite_back(v) for k, v in rec.items()}


def _folders(directory) -> list[Path]:
    if isinstance(directory, (list, tuple)):
        return [Path(d).expanduser() for d in directory]
    return [results_dir(directory)]


def find_record(config: dict, directory=None) -> dict | None:
    """The stored record of exactly this configuration, or None.

    ``directory`` may be a list of folders, read in order: the first finished record wins,
    else the first record found in any status.
    """
    key, found = config_key(config), None
    for folder in _folders(directory):
        path = record_path(config, folder)
        rec = read_record(path, key) if path.exists() else None
        if rec is not None and rec.get("status") == "finished":
            return rec
        found = found or rec
    return found


# Files beside the records that are not run records: chapter 6-7's latency tables.
NOT_RECORDS = frozenset({"latency.json", "latency-grid.json"})


def is_record_file(path: Path) -> bool:
    return path.suffix == ".json" and path.name not in NOT_RECORDS


def iter_records(directory=None):
    """Every trusted record of a folder (or of a list of folders; a key found twice is yielded once)."""
    seen = set()
    for folder in _folders(directory):
        for path in sorted(folder.glob("*.json")):
            if not is_record_file(path):
                continue
            rec = read_record(path)
            if rec is not None and rec["key"] not in seen:
                seen.add(rec["key"])
                yield rec


DAMAGED = "damaged"


def damaged_records(directory=None) -> list[Path]:
    """The record files of a folder (or folders) that cannot be read as JSON objects."""
    out = []
    for folder in _folders(directory):
        for path in sorted(folder.glob("*.json")):
            try:
                ok = isinstance(json.loads(path.read_text()), dict)
            except (json.JSONDecodeError, UnicodeDecodeError):
                ok = False
            if not ok and is_record_file(path):
                out.append(path)
    return out


def load_results(directory=None, status: str | None = "finished"):
    """All records as a DataFrame, one row per run (``status=None`` keeps every status; a file that
    cannot be read is a row with status ``'damaged'`` and its ``file``, after a RecordWarning).

    Columns: key, group (hash without the seed), model, dataset, images, seed, epochs,
    recipe, status, val_acc, test_acc, params, wall_seconds, precision, device, plus
    every other config field prefixed ``cfg.`` and ``recipe.``.
    """
    import pandas as pd
    rows = []
    if status in (None, DAMAGED):   # a record that cannot be read is a row of its own, not a silent gap
        rows += [{"key": path.stem.rsplit("_", 1)[-1], "status": DAMAGED, "file": str(path)}
                 for path in damaged_records(directory)]
    for rec in iter_records(directory):
        if status is not None and rec.get("status") != status:
            continue
        cfg = rec["config"]
        recipe = cfg.get("recipe", {}) or {}
        row = {"key": rec["key"], "group": group_key(cfg), "model": cfg.get("model"),
               "dataset": cfg.get("dataset"), "images": cfg.get("images"), "seed": cfg.get("seed"),
               "epochs": recipe.get("epochs"), "recipe": recipe.get("name"), "status": rec.get("status"),
               "val_acc": rec.get("val_acc"), "test_acc": rec.get("test_acc"), "params": rec.get("params"),
               "wall_seconds": rec.get("wall_seconds"),
               "precision": precision_of(rec),
               "device": (rec.get("settings") or {}).get("device")}
        row.update({f"cfg.{k}": json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
                    for k, v in cfg.items() if k != "recipe"})
        row.update({f"recipe.{k}": v for k, v in recipe.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(df, metrics=("val_acc", "test_acc"), by=("model", "recipe", "dataset", "images", "epochs")):
    """Mean, std and number of seeds per configuration-without-seed.

    Rows are grouped by ``group`` (the config hash without the seed); the ``by``
    columns are kept as labels. Std is the sample std (NaN for one seed).
    """
    import pandas as pd
    if df.empty:
        return pd.DataFrame(columns=[*by, "seeds", *[f"{m}_{s}" for m in metrics for s in ("mean", "std")]])
    labels = [c for c in by if c in df.columns]
    out = df.groupby("group", sort=False).agg(
        **{c: (c, "first") for c in labels}, seeds=("seed", "nunique"),
        **{f"{m}_{s}": (m, s) for m in metrics for s in ("mean", "std")})
    return out.reset_index()


def mean_std(mean: float, std: float, digits: int = 2, scale: float = 100.0) -> str:
    """'60.25 ± 0.42' (percent by default); a single seed shows the mean only."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


# --------------------------------------------------------------------------- what a record says about its run
def now() -> str:
    """The time in UTC to the second, as records store it: ``2025-01-31T12:00:00+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def log_time(iso: str | None = None) -> str:
    """The same instant (default: now) as the training log writes it: ``2025-01-31 12:00:00 UTC``."""
    return (iso or now()).replace("T", " ").replace("+00:00", " UTC")


def versions() -> dict:
    """The versions of the libraries a run's numbers depend on."""
    from importlib import metadata
    out = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "timm", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The commit of the course_lib source tree that runs (with '+dirty' for local edits), or None."""
    import subprocess
    here = Path(__file__).resolve().parents[1]   # the course_lib package
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "--",
                                str(here)], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
