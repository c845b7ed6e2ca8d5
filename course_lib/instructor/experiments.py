"""The command line of the book's three studies: ``python -m course_lib.experiments``.

Commands (from the repository root)::

    python -m course_lib.experiments list  --profile cpu               # which runs exist, which are missing
    python -m course_lib.experiments train --profile cpu [--chapter 06] # train missing runs, no notebooks
    python -m course_lib.experiments run   --profile smoke [--chapter 06] [-p NAME VALUE]
                                                                     # execute the chapters with papermill
    python -m course_lib.experiments latency --profile cpu [--chapter 07]
    python -m course_lib.experiments rerun results/cpu/<record>.json

The runs are ``course_lib.study.specs``; ``train`` and ``latency`` are
``course_lib.study.queue``'s. ``run`` checks the notebook parameters with
``course_lib.instructor.nbparams.validate`` first, then executes each chapter with
``TRAIN=True``; executed notebooks go to ``runs/notebooks/<profile>/`` (git-ignored).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    params = {"PROFILE": profile, "TRAIN": True, **(extra or {})}
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
        if name == "run":
            p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                           help="another notebook parameter, checked against the notebook's allowed values")
            p.add_argument("--timeout", type=float, default=None, help="seconds per chapter")
    p = sub.add_parser("rerun", help="train the run of one record again and compare the result with it")
    p.add_argument("record", help="a record file, e.g. results/cpu/<model>_cifar10_seed0_<key>.json")
    p.add_argument("--workdir", default=None, help="where the new record and checkpoint go (default: a temp folder)")
    args = parser.parse_args(argv)
    try:
        if args.command == "rerun":
            print(rerun_text(rerun(args.record, workdir=args.workdir, progress=True)))
            return 0
        if args.command == "run":
            outcomes = run_notebooks(args.profile, args.chapter, dict(args.param), args.results, args.timeout)
            return 0 if all(o["status"] == "ok" for o in outcomes) else 1
        check_profile(args.profile)
        if args.command == "latency":
            for ch in ([check_chapter(args.chapter)] if args.chapter else list(CHAPTERS)):
                measure_latencies(ch, args.profile, args.results)
            return 0
        train(args.profile, args.chapter, args.results, dry_run=args.command == "list", groups=args.group)
        return 0
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
