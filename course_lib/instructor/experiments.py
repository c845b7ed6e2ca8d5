"""The command line of the book's three studies: ``python -m course_lib.experiments``.

Commands (from the repository root)::

    python -m course_lib.experiments list  --profile cpu               # which runs exist, which are missing
    python -m course_lib.experiments train --profile cpu [--chapter 06] # train missing runs, no notebooks
    python -m course_lib.experiments run   --profile smoke [--chapter 06] [-p NAME VALUE]
                                                                     # execute the chapters with papermill
    python -m course_lib.experiments latency --profile cpu [--chapter 07]
    python -m course_lib.experiments rerun results/cpu/<record>.json

    python -m course_lib.experiments train --profile full --gpus 0,1,2,3  # one queue worker per GPU
    python -m course_lib.experiments train --profile smoke --workers 2    # two workers on the CPU
    torchrun --nproc_per_node=4 -m course_lib.experiments train --profile full [--sync-bn]
                                                                     # each run on 4 processes (DDP)

The runs are ``course_lib.study.specs``; ``train`` and ``latency`` are
``course_lib.study.queue``'s. ``run`` checks the notebook parameters with
``course_lib.instructor.nbparams.validate`` first, then executes each chapter with
``TRAIN=True``; executed notebooks go to ``runs/notebooks/<profile>/`` (git-ignored).
With ``--workers``/``--gpus``, ``train`` (and ``run``, before its notebooks) starts one
queue worker process per entry and waits for them; the workers share the runs through
the queue's locks.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from ..engine.distributed import torchrun_env
from ..study.queue import measure_latencies, rerun, rerun_text, train
from ..study.specs import CHAPTERS, PROFILES, check_chapter, check_profile, notebooks_dir, results_dir
from .nbparams import run as nb_run
from .nbparams import validate

REPO = Path(__file__).resolve().parents[2]
# papermill time limit per chapter (seconds): smoke must fit in CI, the others train for hours or days
TIMEOUTS = {"smoke": 900, "cpu": 7 * 24 * 3600, "full": 14 * 24 * 3600}


# ------------------------------------------------------------------------------- notebooks through papermill
def notebook_params(chapter: str, profile: str, extra: dict | None = None, directory=None) -> dict:
    """Validated papermill parameters of a chapter (ValueError lists the allowed ones)."""
    path = REPO / CHAPTERS[check_chapter(chapter)]
    fixed = {"PROFILE": profile, "TRAIN": True}   # what `run --profile` means: a -p may not say otherwise
    given = validate(path, {k: v for k, v in (extra or {}).items() if k in fixed})
    for name, value in given.items():
        if value != fixed[name]:
            raise ValueError(f"-p {name} {extra[name]} contradicts `run --profile {profile}`, which executes the "
                             f"chapters with {name}={fixed[name]!r} and writes into that profile's folders. "
                             + ("Use --profile to choose the profile." if name == "PROFILE" else
                                "`run` trains the missing runs; to draw the chapters from the records alone, "
                                "execute them without it (make chapter NB=06)."))
    params = {**fixed, **(extra or {})}
    if directory is not None:
        params["RESULTS"] = str(directory)
    elif profile == "smoke" and "RESULTS" not in params:
        params["RESULTS"] = str(results_dir("smoke"))
    return validate(path, params)


def run_notebooks(profile: str, chapter: str | None = None, extra: dict | None = None, directory=None,
                  timeout: float | None = None) -> list[dict]:
    """Execute the chapters with papermill; every chapter's parameters are validated before any runs."""
    chapters = [check_chapter(chapter)] if chapter else list(CHAPTERS)
    params = {ch: notebook_params(ch, profile, extra, directory) for ch in chapters}
    out_dir = notebooks_dir(profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for ch in chapters:
        src = REPO / CHAPTERS[ch]
        dest = out_dir / src.name
        print(f"chapter {ch}: papermill {src.name} -> {dest} with {params[ch]}", flush=True)
        outcome = nb_run(src, dest, params[ch], timeout=timeout or TIMEOUTS[profile], cwd=src.parent)
        outcome.update(chapter=ch, notebook=str(dest))
        print(f"chapter {ch}: {outcome['status']} in {outcome['seconds']} s {outcome['error']}", flush=True)
        outcomes.append(outcome)
    return outcomes


# ------------------------------------------------------------------------------- queue workers
def worker_devices(workers: int | None, gpus: str | None, gpu_count: int, visible: str | None = None) -> list:
    """One entry per queue worker: the ``CUDA_VISIBLE_DEVICES`` it gets, or None (CPU, or no GPU chosen).

    ``gpus`` are indices as torch numbers this machine's GPUs (``visible``: the caller's own
    ``CUDA_VISIBLE_DEVICES``, which they index into); an index given twice starts two workers on one GPU.
    """
    if workers is not None and gpus is not None:
        raise ValueError("give --workers N or --gpus LIST, not both: --gpus 0,1,2,3 starts one worker per "
                         "listed GPU (list an index twice for two workers on one GPU)")
    if gpus is None:
        if workers is None or workers < 1:
            raise ValueError(f"--workers must be 1 or more, got {workers}")
        return [None] * workers
    items = [g.strip() for g in gpus.split(",")]
    if not all(g.isdigit() for g in items):
        raise ValueError(f"--gpus takes GPU indices separated by commas, e.g. 0,1,2,3; got {gpus!r}")
    if gpu_count == 0:
        raise ValueError("--gpus: torch sees no CUDA GPU on this machine; on the CPU start workers with --workers N")
    wrong = [g for g in items if int(g) >= gpu_count]
    if wrong:
        raise ValueError(f"--gpus {gpus}: there is no GPU {', '.join(wrong)}; torch sees {gpu_count} "
                         f"(indices 0 to {gpu_count - 1})")
    names = [v.strip() for v in visible.split(",")] if visible else None
    return [names[int(g)] if names else g for g in items]


def worker_args(args) -> list[str]:
    """The ``train`` arguments of one worker process: the parent's, minus --workers/--gpus.

    ``run -p RESULTS folder``: the notebooks resolve a relative folder from chapters/, so do the workers.
    """
    out = ["train", "--profile", args.profile]
    if args.chapter:
        out += ["--chapter", args.chapter]
    param = dict(getattr(args, "param", None) or []).get("RESULTS")
    if args.results:
        out += ["--results", str(Path(args.results).expanduser().resolve())]
    elif param:
        out += ["--results", str((REPO / "chapters" / Path(param).expanduser()).resolve())]
    for g in getattr(args, "group", None) or []:
        out += ["--group", g]
    if getattr(args, "emulated_bf16", False):
        out += ["--emulated-bf16"]
    return out


def start_workers(args, devices: list) -> int:
    """Start one ``train`` process per device, wait for all of them; returns how many failed."""
    threads = max(1, (os.cpu_count() or 1) // len(devices))
    procs = []
    for i, dev in enumerate(devices, 1):
        env = dict(os.environ, COURSE_PROGRESS="0")
        env.setdefault("OMP_NUM_THREADS", str(threads))
        label = f"worker {i}" if dev is None else f"worker {i}, GPU {dev}"
        if dev is not None:
            env["CUDA_VISIBLE_DEVICES"] = dev
        cmd = [sys.executable, "-m", "course_lib.experiments", *worker_args(args), "--worker", label]
        print(f"starting {label}: {' '.join(cmd[1:])}", flush=True)
        procs.append((label, subprocess.Popen(cmd, env=env)))
    try:
        codes = [(label, p.wait()) for label, p in procs]
    except KeyboardInterrupt:   # Ctrl-C reached the workers too; each run resumes from its checkpoint
        for _, p in procs:
            p.wait()
        raise
    failed = [(label, code) for label, code in codes if code != 0]
    for label, code in failed:
        print(f"{label} stopped with exit code {code}: rerun the same command, it resumes", file=sys.stderr)
    print(f"{len(procs) - len(failed)} of {len(procs)} workers finished", flush=True)
    return len(failed)


def _check_parallel(args) -> list | None:
    """The workers' devices (None: train in this process); ValueError for options that do not go together."""
    under_torchrun = torchrun_env() is not None
    parallel = getattr(args, "workers", None) is not None or getattr(args, "gpus", None) is not None
    if under_torchrun and (parallel or args.command == "run"):
        raise ValueError("under torchrun every process trains the same run together: use `train` without "
                         "--workers/--gpus (torchrun --nproc_per_node sets the processes)")
    if getattr(args, "sync_bn", False) and not under_torchrun:
        raise ValueError("--sync-bn applies to a run trained by several processes under torchrun")
    if not parallel:
        return None
    import torch
    return worker_devices(args.workers, args.gpus, torch.cuda.device_count(),
                          os.environ.get("CUDA_VISIBLE_DEVICES"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.experiments", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "execute the chapters with papermill (TRAIN=True)"),
                       ("train", "train the missing runs directly, no notebooks (resumable)"),
                       ("list", "show which runs are done and which are missing"),
                       ("latency", "measure the chapters' parameters, multiply-adds and latency only")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--profile", required=True, help=f"one of {', '.join(PROFILES)}")
        p.add_argument("--chapter", default=None, help=f"one of {', '.join(CHAPTERS)} (default: all)")
        p.add_argument("--results", default=None, help="records folder (default results/<profile>/; "
                                                       "smoke: runs/results/smoke/)")
        if name in ("train", "list"):
            p.add_argument("--group", action="append", default=None,
                           help="only the runs of this group (repeatable), e.g. probe, precision, study")
        if name in ("train", "run"):
            p.add_argument("--workers", type=int, default=None,
                           help="start N queue worker processes that share the runs (on the CPU, or one GPU)")
            p.add_argument("--gpus", default=None,
                           help="start one queue worker per listed GPU, e.g. 0,1,2,3 (CUDA_VISIBLE_DEVICES each)")
        if name == "latency":
            p.add_argument("--grid", action="store_true",
                           help="the CPU grid of chapter 7: batch 1 and 64, 1 and 2 threads, wall and CPU clocks, "
                                "30 repeats (pause the queue first)")
            p.add_argument("--busy-ok", action="store_true", help="with --grid: measure even on a busy machine")
        if name == "train":
            p.add_argument("--sync-bn", action="store_true",
                           help="under torchrun: batch norm statistics over the global batch (SyncBatchNorm, GPUs)")
            p.add_argument("--worker", default=None, help=argparse.SUPPRESS)   # set by --workers/--gpus
            p.add_argument("--emulated-bf16", action="store_true",
                           help="train bfloat16 runs even on a CPU without native bfloat16 (AVX512-BF16 or AMX), "
                                "about 10x slower; without it they are left for a machine that has it")
        if name == "run":
            p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                           help="another notebook parameter, checked against the notebook's allowed values")
            p.add_argument("--timeout", type=float, default=None, help="seconds per chapter")
    p = sub.add_parser("cost", help="what each profile's runs cost: images, multiply-adds, and CPU hours at the "
                                    "rates its finished records measured")
    p.add_argument("--measured", default="cpu", help="the profile whose finished records give the rates (default cpu)")
    p.add_argument("--results", default=None, help="its records folder (default results/<profile>/)")
    p = sub.add_parser("rerun", help="train the run of one record again and compare the result with it")
    p.add_argument("record", help="a record file, e.g. results/cpu/<model>_cifar10_seed0_<key>.json")
    p.add_argument("--workdir", default=None, help="where the new record and checkpoint go (default: a temp folder)")
    args = parser.parse_args(argv)
    if getattr(args, "results", None):   # one folder for this process, its workers and the notebooks (cwd chapters/)
        args.results = str(Path(args.results).expanduser().resolve())
    try:
        if args.command == "rerun":
            print(rerun_text(rerun(args.record, workdir=args.workdir, progress=True)))
            return 0
        if args.command == "cost":
            from ..study.cost import report
            check_profile(args.measured)
            print(report(measured=args.measured, directory=args.results))
            return 0
        devices = _check_parallel(args)
        if args.command == "run":
            if devices:   # the notebooks' parameters checked, the workers train, then the notebooks run
                for ch in [check_chapter(args.chapter)] if args.chapter else list(CHAPTERS):
                    notebook_params(ch, args.profile, dict(args.param), args.results)
                if start_workers(args, devices):
                    return 1
            outcomes = run_notebooks(args.profile, args.chapter, dict(args.param), args.results, args.timeout)
            return 0 if all(o["status"] == "ok" for o in outcomes) else 1
        check_profile(args.profile)
        if args.command == "latency" and args.grid:
            from ..study.latency import measure_and_store
            print(f"wrote {measure_and_store(args.profile, results_dir(args.profile, args.results), allow_busy=args.busy_ok)}")
            return 0
        if args.command == "latency":
            for ch in ([check_chapter(args.chapter)] if args.chapter else list(CHAPTERS)):
                measure_latencies(ch, args.profile, args.results)
            return 0
        if devices:
            return 1 if start_workers(args, devices) else 0
        worker = getattr(args, "worker", None)
        train(args.profile, args.chapter, args.results, dry_run=args.command == "list", groups=args.group,
              wait=worker is not None, worker=worker, sync_bn=getattr(args, "sync_bn", False),
              emulated_bf16=getattr(args, "emulated_bf16", False))
        return 0
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
