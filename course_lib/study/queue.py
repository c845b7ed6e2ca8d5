"""The training queue: train the missing runs of a profile, measure latencies, rerun a record.

``train`` goes through the runs in priority order (``specs.all_specs``), writes each
record as it finishes (``course_lib.engine.runner.run`` checkpoints every epoch and
resumes), skips a run another process holds the lock of, and appends a line per run to
``<results>/LOG.md``. ``measure_latencies`` stores the chapters' parameters, multiply-adds
and latency in ``<results>/latency.json``; ``rerun`` trains the run of one record again
and compares the two.

Several queue workers (``experiments train --workers N`` or ``--gpus 0,1``) share one list:
each claims a run by its lock (``flock``, released when its process dies), skips the runs
others hold and, with ``wait=True``, goes back for them at the end, so that a run whose
worker was killed is resumed from its checkpoint by another. Under torchrun the processes
of a job train each run together: rank 0 takes the locks, writes the records and the log,
and tells the others what to do.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from ..blocks.cost import count_macs, count_params
from ..engine import distributed
from ..engine import records as res
from ..engine.data import DataConfig
from ..engine.device import RunSettings, cpu_supports_bf16, cuda_supports_bf16, hardware, pick_device
from ..engine.runner import Numerics, load_model, run
from ..engine.timing import compare, measure_latency
from ..models.factory import create_model
from .report import TABLE1, TABLE2
from .specs import (CHAPTERS, PROFILES, Spec, all_specs, check_chapter, checkpoints_dir, find, fp32_fallback,
                    model_factory, protocol, record_dirs, results_dir, run_key, study)


# ------------------------------------------------------------------------------- weights
def _factory(spec: Spec, profile: str, directory=None):
    """``model_factory`` with the weights: a pretraining run's are trained first if missing.

    Under torchrun only rank 0 loads weights; the other ranks build the bare network, and
    DistributedDataParallel copies rank 0's weights to them before the first step.
    """
    if not distributed.is_main():
        return model_factory(spec)
    return model_factory(spec, lambda pre: pretrained_model(pre, profile, directory))


RETRAINED = "retrained"   # records of finished runs trained again for their weights, beside the originals


def pretrained_model(pre: Spec, profile: str | None, directory=None):
    """The model of a finished pretraining run, with its weights.

    A run not trained yet is trained. A finished run whose checkpoint is gone (a new machine) is trained
    again into ``<records>/retrained/``, so that its stored record stays as it was, and the two test
    accuracies are printed. Waits while another queue worker holds the pretraining run's lock.
    """
    directory = results_dir(profile, directory) if profile else directory
    ckpts = checkpoints_dir(profile) if profile else None
    with _flock(_lock_path(pre, profile) if profile else None, wait=True):
        record = find(pre, directory)
        try:
            if record is None or record.get("status") != "finished":
                raise ValueError("not trained yet")
            return load_model(record, runs_dir=ckpts)
        except ValueError:
            if (distributed.torchrun_env() or (0, 1, 0))[1] > 1:
                raise ValueError(f"under torchrun the pretraining run comes first, and it is not finished: "
                                 f"{pre.describe()}") from None
            if record is None or record.get("status") != "finished":
                return load_model(train_one(pre, profile, directory, force=record is not None), runs_dir=ckpts)
            alt = fp32_fallback(pre)    # the stored record may be the run's float32 version
            src = alt if alt is not None and record.get("key") == run_key(alt) else pre
            side = Path(directory) / RETRAINED
            before = find(src, side)    # an interrupted retrain resumes; a finished one lost its checkpoint
            again = train_one(src, profile, side, force=bool(before) and before.get("status") == "finished")
            print(f"    {pre.label} seed {pre.seed}: its checkpoint was gone, so it was trained again for its "
                  f"weights: test acc {again.get('test_acc')} (stored record: {record.get('test_acc')})", flush=True)
            return load_model(again, runs_dir=ckpts)


# ------------------------------------------------------------------------------- training
LOG_HEADER = ("# Training log\n\nOne line per run started or finished by "
              "`python -m course_lib.experiments`: time, run, outcome, wall time.\n\n")


def log(directory: Path, text: str) -> None:
    """Append one line to <results>/LOG.md (created with a header); several workers take turns, rank 0 only."""
    if not distributed.is_main():
        return
    path = Path(directory) / "LOG.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)          # released when the file closes
        if fh.seek(0, 2) == 0:
            fh.write(LOG_HEADER)
        fh.write(f"- {res.log_time()}  {text}\n")


def train_one(spec: Spec, profile: str, directory=None, *, force: bool = False, progress: bool = False,
              sync_bn: bool = False) -> dict:
    """Train one run (or reuse its finished record); the record is written every epoch.

    Under torchrun every rank calls it; ``sync_bn`` turns batch norm into SyncBatchNorm there.
    """
    directory = results_dir(profile, directory)
    ctx = distributed.context(pick_device())
    found = ctx.broadcast(find(spec, directory) if ctx.is_main else None)
    if found and found.get("status") == "finished" and not force:
        return found
    model, name = _factory(spec, profile, directory)
    log(directory, f"start  {spec.describe()}")
    t0 = time.perf_counter()

    def on_epoch(epoch, entry, history):
        val = "-" if entry["val_acc"] is None else f"{entry['val_acc']:.4f}"
        clip = (f", clipped {entry['clipped_steps']} steps (largest norm {entry['grad_norm_max']:.1f})"
                if "clipped_steps" in entry else "")
        print(f"    epoch {epoch}/{spec.epochs}: train loss {entry['train_loss']:.4f}, train acc "
              f"{entry['train_acc']:.4f}, val acc {val}, {entry['seconds']:.0f} s{clip}", flush=True)
    try:
        record = run(model, spec.recipe, data=spec.data(), seed=spec.seed, name=name, results_dir=directory,
                     runs_dir=checkpoints_dir(profile), force=force, progress=progress, callback=on_epoch,
                     raise_on_divergence=False, sync_bn=sync_bn, model_overrides=spec.model_overrides or None,
                     **spec.numerics(), **spec.recipe_fields)
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


# ------------------------------------------------------------------------------- claiming runs
def _lock_path(spec: Spec, profile: str) -> Path:
    return checkpoints_dir(profile) / f"{run_key(spec)}.lock"


@contextlib.contextmanager
def _flock(path: Path | None, wait: bool = False):
    """True while this process holds ``path``'s lock (flock: released when the file closes or the
    process dies); False at once if another holds it and not ``wait``. ``path=None``: no lock."""
    if path is None:
        yield True
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


def _run_lock(spec: Spec, profile: str, wait: bool = False):
    """True while this process holds the run's lock file (see :func:`_flock`)."""
    return _flock(_lock_path(spec, profile), wait)


DONE, BUSY, TRAIN = "done", "busy", "train"


@contextlib.contextmanager
def _claim(spec: Spec, profile: str, directory: Path, ctx: distributed.Context, revisit: bool = False):
    """(what, record): DONE (finished, or tried by another worker meanwhile), BUSY (another process
    holds its lock) or TRAIN (this process holds the lock until the block ends). Rank 0 decides."""
    if not ctx.is_main:
        yield ctx.broadcast(None)
        return
    before = find(spec, directory)
    if before and before.get("status") == "finished":
        yield ctx.broadcast((DONE, before))
        return
    with _run_lock(spec, profile) as mine:
        if not mine:
            yield ctx.broadcast((BUSY, before))
            return
        rec = find(spec, directory)   # another worker may have finished it or given up on it meanwhile
        status = rec and rec.get("status")
        tried = status == "diverged" and (revisit or before is None or before.get("updated") != rec.get("updated"))
        yield ctx.broadcast((DONE, rec) if status == "finished" or tried else (TRAIN, rec))


POLL_SECONDS = 2.0   # how often a waiting worker looks at the runs others hold


def native(spec: Spec, device: torch.device) -> bool:
    """Whether this machine runs the spec's precision in hardware: bfloat16 needs AVX512-BF16 or AMX on a CPU
    (on an AMD EPYC with AVX2 only a training step was 10 to 13x slower than in float32, notes/bench.txt),
    compute capability 8.0 on an NVIDIA GPU (a T4 emulates it)."""
    if spec.precision != "bf16":
        return True
    return {"cpu": cpu_supports_bf16, "cuda": cuda_supports_bf16}.get(device.type, lambda: True)()


def train(profile: str, chapter: str | None = None, directory=None, *, dry_run: bool = False,
          groups=None, wait: bool = False, worker: str | None = None, sync_bn: bool = False,
          emulated_bf16: bool = False) -> list[dict]:
    """Train every missing run of a profile in priority order (latencies last); returns the records.

    A run another process holds is skipped; with ``wait`` (queue workers) this process comes
    back for it when its list is done, until it is finished there or here: a run whose worker
    died is resumed from its checkpoint. ``worker`` labels the printed lines. Where bfloat16 is
    not native (:func:`native`), a bfloat16 run trains in float32 if it has a float32 version
    (``specs.fp32_fallback``) and is left for another machine if not, unless ``emulated_bf16``
    or the profile is 'smoke' (runs of seconds, there to exercise the same code).
    """
    directory = results_dir(profile, directory)
    specs = all_specs(profile, chapter, groups)
    device = pick_device()
    ctx = distributed.context(device)
    say = print if ctx.is_main else (lambda *a, **k: None)

    def here(s: Spec) -> Spec | None:
        """What this machine trains for ``s``: itself, its float32 version, or nothing (left for another)."""
        return s if emulated_bf16 or profile == "smoke" or native(s, device) else fp32_fallback(s)

    if dry_run:
        for s in specs:
            rec = find(s, directory) if ctx.is_main else None
            if rec and rec.get("status") == "finished":
                ran = res.precision_of(rec)
                say("done    " + s.describe() + (f" [ran in {ran}]" if ran and ran != s.precision else ""))
            else:
                todo = here(s)
                say("missing " + s.describe() + ("" if todo is s else " [in float32 here]" if todo else
                                                  " [waits for a machine with native bfloat16]"))
        return []
    tag = f"{worker}: " if worker else ""

    def attempt(i: int, s: Spec, taken_over: bool = False, note: str = "") -> tuple[str, dict | None]:
        """Try one run: ('done' | 'busy' | 'trained' | 'left', record)."""
        with _claim(s, profile, directory, ctx, revisit=taken_over) as (what, rec):
            if what == DONE or what == BUSY:
                return ("done" if what == DONE else "busy"), rec
            target = here(s)
            if target is None:
                say(f"[{tag}{i}/{len(specs)}] left for a machine with native bfloat16: {s.describe()}", flush=True)
                return "left", None
            if target is s:
                say(f"[{tag}{i}/{len(specs)}] {'taken over, the process that held it stopped: ' if taken_over else ''}"
                    f"{note}{s.describe()}", flush=True)
                return "trained", train_one(s, profile, directory, sync_bn=sync_bn)
        # its float32 version, claimed on its own lock
        return attempt(i, target, taken_over, "in float32 (no native bfloat16 here): ")

    out, held = [], []
    before = trained = elsewhere = left = 0
    for i, s in enumerate(specs, 1):
        what, rec = attempt(i, s)
        if what == "busy":
            say(f"[{tag}{i}/{len(specs)}] skipped, another process is training it: {s.describe()}", flush=True)
            held.append((i, s))
        left += what == "left"
        before += what == "done"
        trained += what == "trained"
        out += [rec] if what in ("done", "trained") else []
    if wait and held:
        say(f"{worker or 'this process'}: waiting for {len(held)} run(s) that other processes hold", flush=True)
    while wait and held:
        time.sleep(POLL_SECONDS)
        still = []
        for i, s in held:
            what, rec = attempt(i, s, taken_over=True)
            if what == "busy":
                still.append((i, s))
            left += what == "left"
            elsewhere += what == "done"
            trained += what == "trained"
            out += [rec] if what in ("done", "trained") else []
        held = still
    say(f"{tag}{len(specs)} run(s) of {profile}{f' chapter {chapter}' if chapter else ''}"
        f"{' group ' + ', '.join(groups) if groups else ''}: {before} done before (finished or diverged), "
        f"{trained} trained here, {elsewhere} done by other workers, {len(held)} still held elsewhere"
        + (f", {left} bfloat16 run(s) left for a machine with native bfloat16 (this machine has none; "
           f"--emulated-bf16 trains them here, about 10x slower)" if left else ""), flush=True)
    # latencies last: training comes first on a busy machine (``latency`` measures them on their own)
    for ch in [] if groups or not ctx.is_main else ([check_chapter(chapter)] if chapter else list(CHAPTERS)):
        with _flock(checkpoints_dir(profile) / f"latency-{ch}.lock", wait=True):   # one worker measures
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
                      cfg["image_size"], folds=cfg.get("folds"), fold=cfg.get("fold"))
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


