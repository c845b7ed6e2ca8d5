"""The training queue: train the missing runs of a profile, measure latencies, rerun a record.

``train`` goes through the runs in priority order (``specs.all_specs``), writes each
record as it finishes (``course_lib.engine.runner.run`` checkpoints every epoch and
resumes), skips a run another process holds the lock of, and appends a line per run to
``<results>/LOG.md``. ``measure_latencies`` stores the chapters' parameters, multiply-adds
and latency in ``<results>/latency.json``; ``rerun`` trains the run of one record again
and compares the two.
"""
from __future__ import annotations

import contextlib
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from ..blocks.cost import count_macs, count_params
from ..engine import records as res
from ..engine.data import DataConfig
from ..engine.device import RunSettings, hardware, pick_device
from ..engine.runner import Numerics, load_model, run
from ..engine.timing import compare, measure_latency
from ..models.factory import create_model
from .report import TABLE1, TABLE2
from .specs import (CHAPTERS, PROFILES, Spec, all_specs, check_chapter, checkpoints_dir, find, model_factory,
                    protocol, record_dirs, results_dir, run_key, study)


# ------------------------------------------------------------------------------- weights
def _factory(spec: Spec, profile: str, directory=None):
    """``model_factory`` with the weights: a pretraining run's are trained first if missing."""
    return model_factory(spec, lambda pre: pretrained_model(pre, profile, directory))


def pretrained_model(pre: Spec, profile: str | None, directory=None):
    """The model of a finished pretraining run, with its weights (retrained when its checkpoint is gone)."""
    directory = results_dir(profile, directory) if profile else directory
    record = find(pre, directory)
    ckpts = checkpoints_dir(profile) if profile else None
    try:
        if record is None or record.get("status") != "finished":
            raise ValueError("not trained yet")
        return load_model(record, runs_dir=ckpts)
    except ValueError:
        record = train_one(pre, profile, directory, force=record is not None)
        return load_model(record, runs_dir=ckpts)


# ------------------------------------------------------------------------------- training
def log(directory: Path, text: str) -> None:
    """Append one line to <results>/LOG.md (created with a header)."""
    path = Path(directory) / "LOG.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text("# Training log\n\nOne line per run started or finished by "
                        "`python -m course_lib.experiments`: time, run, outcome, wall time.\n\n")
    with path.open("a") as fh:
        fh.write(f"- {res.log_time()}  {text}\n")


def train_one(spec: Spec, profile: str, directory=None, *, force: bool = False, progress: bool = False) -> dict:
    """Train one run (or reuse its finished record); the record is written every epoch."""
    directory = results_dir(profile, directory)
    found = find(spec, directory)
    if found and found.get("status") == "finished" and not force:
        return found
    model, name = _factory(spec, profile, directory)
    log(directory, f"start  {spec.describe()}")
    t0 = time.perf_counter()

    def on_epoch(epoch, entry, history):
        val = "-" if entry["val_acc"] is None else f"{entry['val_acc']:.4f}"
        print(f"    epoch {epoch}/{spec.epochs}: train loss {entry['train_loss']:.4f}, train acc "
              f"{entry['train_acc']:.4f}, val acc {val}, {entry['seconds']:.0f} s", flush=True)
    try:
        record = run(model, spec.recipe, data=spec.data(), seed=spec.seed, name=name, results_dir=directory,
                     runs_dir=checkpoints_dir(profile), force=force, progress=progress, callback=on_epoch,
                     raise_on_divergence=False, **spec.numerics(), **spec.recipe_fields)
    except BaseException as err:  # noqa: BLE001 - log the interruption, then let it go on
        log(directory, f"stopped {spec.label} seed {spec.seed}: {type(err).__name__} "
                       f"after {time.perf_counter() - t0:.0f} s (resumes from its checkpoint)")
        raise
    acc = record.get("test_acc")
    log(directory, f"{record['status']:8s} {spec.label} seed {spec.seed}: test acc "
                   f"{'-' if acc is None else f'{acc:.4f}'}, {record.get('wall_seconds') or 0:.0f} s of training "
                   f"({time.perf_counter() - t0:.0f} s in this session)")
    return record


LATENCY_FILE = "latency.json"
LATENCY = {"smoke": dict(batch_size=2, warmup=0, repeats=1),
           "cpu": dict(batch_size=64, warmup=2, repeats=9),
           "full": dict(batch_size=256, warmup=10, repeats=50)}


def latency_models(chapter: str) -> tuple[str, ...]:
    return {"06": TABLE1, "07": TABLE2}.get(check_chapter(chapter), ())


def load_latency(profile: str, directory=None) -> dict:
    """The chapters' latency table of a profile: the first latency.json of ``record_dirs``, or {}."""
    for folder in record_dirs(profile, directory):
        path = folder / LATENCY_FILE
        if path.exists():
            try:
                table = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                warnings.warn(f"{path}: not valid JSON ({err}); it is not used.", res.RecordWarning, stacklevel=2)
                continue
            if isinstance(table, dict):
                return table
            warnings.warn(f"{path}: not a latency table (a JSON object); it is not used.", res.RecordWarning,
                          stacklevel=2)
    return {}


def measure_latencies(chapter: str, profile: str, directory=None, *, force: bool = False) -> dict:
    """Parameters, multiply-adds and inference latency of a chapter's models (10 classes, 32x32),
    stored in <results>/latency.json; a chapter already measured is kept unless ``force``.

    On a GPU (the full profile): elapsed time per batch (``course_lib.engine.timing.measure_latency``).
    On a CPU: one thread and the CPU time of this process, all the chapter's models
    measured together, their order rotating every repeat (``course_lib.engine.timing.compare``):
    other programs on a shared machine inflate elapsed time, not this process's CPU time.
    """
    directory = results_dir(profile, directory)
    table = load_latency(profile, directory)
    names = latency_models(chapter)
    if not names or (all(n in table for n in names) and not force):
        return table
    opts = LATENCY[profile]
    settings = RunSettings.for_device(pick_device())
    models = {n: create_model(n, num_classes=10, drop_rate=0.2).eval() for n in names}
    out = {n: {"params": count_params(m), "macs": count_macs(m, (3, 32, 32))} for n, m in models.items()}
    if settings.device.type != "cpu":
        for n, m in models.items():
            out[n]["latency"] = measure_latency(m, input_size=(3, 32, 32), settings=settings, **opts)
    else:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            x = torch.randn(opts["batch_size"], 3, 32, 32, generator=torch.Generator().manual_seed(0))

            def forward(m):
                def call():
                    with torch.inference_mode():
                        m(x)
                return call
            times = compare({n: forward(m) for n, m in models.items()}, opts["repeats"], opts["warmup"], "cpu")
        finally:
            torch.set_num_threads(threads)
        for n in names:
            batch_s = statistics.median(times[n])
            out[n]["latency"] = {
                "mode": "inference", "clock": "CPU time of the process, 1 thread", "batch_size": opts["batch_size"],
                "input_size": [3, 32, 32], "warmup": opts["warmup"], "repeats": opts["repeats"],
                "ms_per_batch": 1000 * batch_s, "ms_per_image": 1000 * batch_s / opts["batch_size"],
                "img_per_s": opts["batch_size"] / batch_s, "times_ms": [round(1000 * t, 3) for t in times[n]],
                "device": "cpu", "precision": "fp32", "channels_last": False,
                "hardware": {**hardware(torch.device("cpu")), "torch_threads": 1}}
    for n in names:
        out[n]["measured"] = res.log_time()
        table[n] = out[n]
        print(f"  latency {n}: {out[n]['latency']['ms_per_image']:.3f} ms/image "
              f"(batch {opts['batch_size']})", flush=True)
    res.write_json(directory / LATENCY_FILE, table)
    return table


@contextlib.contextmanager
def _run_lock(spec: Spec, profile: str):
    """True while this process holds the run's lock file (flock: released when the process dies)."""
    import fcntl
    path = checkpoints_dir(profile) / f"{run_key(spec)}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def train(profile: str, chapter: str | None = None, directory=None, *, dry_run: bool = False,
          groups=None) -> list[dict]:
    """Train every missing run of a profile in priority order (latencies last); returns the records."""
    directory = results_dir(profile, directory)
    specs = all_specs(profile, chapter, groups)
    if dry_run:
        for s in specs:
            rec = find(s, directory)
            print(("done    " if rec and rec.get("status") == "finished" else "missing ") + s.describe())
        return []
    out = []
    for i, s in enumerate(specs, 1):
        rec = find(s, directory)
        if rec and rec.get("status") == "finished":
            out.append(rec)
            continue
        with _run_lock(s, profile) as mine:
            if not mine:
                print(f"[{i}/{len(specs)}] skipped, another process is training it: {s.describe()}", flush=True)
                continue
            print(f"[{i}/{len(specs)}] {s.describe()}", flush=True)
            out.append(train_one(s, profile, directory))
    # latencies last: training comes first on a busy machine (``latency`` measures them on their own)
    for ch in [] if groups else ([check_chapter(chapter)] if chapter else list(CHAPTERS)):
        measure_latencies(ch, profile, directory)
    return out


# ------------------------------------------------------------------------------- rerunning one record
def read_record(path) -> dict:
    """A record from disk, checked: valid JSON, a configuration, and a key that matches it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"{path}: no such record file")
    try:
        rec = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a valid JSON record ({err}): restore it from git or delete it") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("config"), dict) or "key" not in rec:
        raise ValueError(f"{path} is not a run record: it has no 'config' and 'key'")
    if res.config_key(rec["config"]) != rec["key"]:
        raise ValueError(f"{path}: its key {rec['key']} does not match its configuration "
                         f"({res.config_key(rec['config'])}): the record was edited or damaged")
    return rec


def spec_of(key: str) -> tuple[Spec, str] | None:
    """The (spec, profile) of the book's run with this key, or None."""
    for profile in PROFILES:
        for ch in CHAPTERS:
            for s in (*study(ch, profile), *protocol(ch, profile)):
                if run_key(s) == key:
                    return s, profile
    return None


def rerun(path, *, workdir=None, progress: bool = False) -> dict:
    """Train the run of a stored record again, in a scratch folder, and compare it with the record.

    Returns {stored, new, test_acc difference, identical, seed spread of its siblings}.
    """
    path = Path(path).expanduser()
    rec = read_record(path)
    cfg = rec["config"]
    work = Path(workdir or tempfile.mkdtemp(prefix="rerun-"))
    found = spec_of(rec["key"])
    if found:
        spec, profile = found
        model, name = _factory(spec, profile, path.parent)
    elif cfg.get("arch") is None:
        model, name = cfg["model"], None
    else:
        raise ValueError(f"{path}: this run trained a model object ({cfg['model']}) that is not one of the "
                         "book's runs, so it cannot be rebuilt from the record alone")
    data = DataConfig(cfg["dataset"], cfg["images"], cfg["val_size"], cfg["split_seed"], cfg["test_images"],
                      cfg["image_size"])
    numerics = Numerics(precision=cfg.get("precision", "fp32"), channels_last=cfg.get("channels_last", False),
                        compile=cfg.get("compile", False))
    new = run(model, dict(cfg["recipe"]), data=data, numerics=numerics, seed=cfg["seed"], name=name,
              num_classes=cfg["num_classes"], model_overrides=cfg.get("overrides") or None,
              results_dir=work / "results", runs_dir=work / "runs", force=True, progress=progress,
              raise_on_divergence=False)
    if new["key"] != rec["key"]:
        raise ValueError(f"rerun of {path} produced another configuration ({new['key']} != {rec['key']}): "
                         "the code that builds this run has changed since it was recorded")
    siblings = [r.get("test_acc") for r in res.iter_records(path.parent)
                if r.get("status") == "finished" and r["key"] != rec["key"]
                and res.group_key(r["config"]) == res.group_key(cfg)]
    spread = None
    if len(siblings) + 1 >= 2 and rec.get("test_acc") is not None:
        spread = statistics.stdev([rec["test_acc"], *siblings])
    same = [h.get("train_loss") for h in rec.get("history", [])] == [h.get("train_loss") for h in new["history"]]
    out = {"record": str(path), "stored_test_acc": rec.get("test_acc"), "new_test_acc": new.get("test_acc"),
           "difference": None if rec.get("test_acc") is None or new.get("test_acc") is None
           else new["test_acc"] - rec["test_acc"],
           "identical": same and new.get("test_acc") == rec.get("test_acc"),
           "seed_std": spread, "seeds_in_spread": len(siblings) + 1, "new_record": str(
               res.record_path(new["config"], work / "results"))}
    return out


def rerun_text(out: dict) -> str:
    """What ``rerun`` prints: the stored and the new accuracy, and how far apart they are."""
    if out["difference"] is None:
        return f"{out['record']}: no test accuracy to compare (stored {out['stored_test_acc']}, new {out['new_test_acc']})"
    lines = [f"record:  {out['record']}",
             f"stored test accuracy {100 * out['stored_test_acc']:.2f} %, rerun {100 * out['new_test_acc']:.2f} %, "
             f"difference {100 * out['difference']:+.2f} points"]
    if out["identical"]:
        lines.append("the rerun is identical: same training losses at every epoch, same test accuracy")
    elif out["seed_std"]:
        k = abs(out["difference"]) / out["seed_std"]
        lines.append(f"seed std of this configuration ({out['seeds_in_spread']} seeds): "
                     f"{100 * out['seed_std']:.2f} points; the difference is {k:.2f} of it "
                     + ("(within the seed spread)" if k <= 2 else "(OUTSIDE twice the seed spread)"))
    else:
        lines.append("no other seed of this configuration is stored, so there is no seed spread to judge by")
    lines.append(f"new record: {out['new_record']}")
    return "\n".join(lines)


