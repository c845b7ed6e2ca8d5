"""A Colab rehearsal: the chapters as a student runs them, from an installed course_lib, far from this repository.

    .venv/bin/python tests_colab/rehearse.py            # `make test-colab`; CI runs it right after `make test`
    .venv/bin/python tests_colab/rehearse.py --keep     # keep the temporary folder (venv, executed notebooks)

1. builds course_lib's wheel from the repository's tracked files (what `pip install git+<repo>@<tag>`
   builds on Colab): the package, and the committed run records as package data;
2. creates a fresh virtual environment in a temporary folder outside the repository and installs the
   wheel with its dependencies and the `notebooks` and `instructor` extras (a kernel, widgets,
   papermill), held to the versions of this repository's .venv (pip's cache and the local wheels make
   that about a minute);
3. from an empty temporary working folder, executes chapters 0 and 6-8 with papermill, TRAIN = False,
   COURSE_DATA pointing at the offline copies of the data sets, no PYTHONPATH and no checkout in reach;
4. passes only if no cell raised, course_lib was imported from the virtual environment, and the
   chapters' tables show the committed runs (known values of the records, every run finished).

The decoded CIFAR-10 tensor file is kept between rehearsals in ~/.cache/resnest-book/rehearsal-data
(``--data-cache``), so chapter 0 decodes the 60,000 JPEGs once per machine, not once per run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = {"00": "00_setup_and_data", "06": "06_ablation", "07": "07_accuracy_latency",
            "08": "08_transfer_learning"}
# What each chapter must print from the committed records (results/cpu), beyond "no error".
EXPECTED = {
    "00": ["train 45,000  val 5,000  test 10,000"],
    "06": ["All 21 runs of this chapter's 'cpu' profile are finished.",
           "ResNeSt-14-2s1x64d (report recipe): test accuracy 67.05%",     # full scale, report recipe
           "ResNeSt-14-2s1x64d (book recipe): test accuracy 85.12%",
           "38.24 ± 5.15"],                                                # Table I, ResNeSt-14-2s1x64d, 3 seeds
    "07": ["All 10 runs of the first attempt are finished.", "31.60",    # ResNeSt-50
           "Table II, this protocol (14 runs)         3.5"],   # the study's cost, from the shipped latency grid
    "08": ["All 6 runs of the first attempt ('cpu' profile) are finished.", "25.75", "0.535",
           "ResNeSt-50 against ResNet-50, fine-tuned"],          # the study's declared questions
}
# the experiment chapters say where new runs go and where the records they show come from
RECORDS_LINE = "records that came with course_lib"
PROBE = "import course_lib, sys\nprint('REHEARSAL', course_lib.__file__, course_lib.__version__, sys.executable)"


def sh(cmd) -> None:
    """Run a command; its output is shown only when it fails (pip's notes about local indexes are noise here)."""
    print("+", " ".join(str(c) for c in cmd), flush=True)
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"failed with exit code {done.returncode}: {cmd[0]} ...")


def tracked_source(dest: Path) -> Path:
    """The files a clone of the repository would have, for the package and its records (working-tree content)."""
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--", "course_lib", "results", "pyproject.toml",
                            "README.md", "CHANGELOG.md"], check=True, capture_output=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def build_wheel(tmp: Path) -> Path:
    src = tracked_source(tmp / "source")
    sh([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", tmp / "dist", src])
    [wheel] = (tmp / "dist").glob("course_lib-*.whl")
    return wheel


def constraints(tmp: Path) -> Path:
    """This repository's .venv, frozen: the rehearsal installs the same releases (no course_lib, no editables)."""
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], check=True,
                            capture_output=True, text=True).stdout.splitlines()
    keep = [line for line in frozen if "==" in line and not line.lower().startswith(("course_lib", "course-lib"))]
    path = tmp / "constraints.txt"
    path.write_text("\n".join(keep) + "\n")
    return path


def make_venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    sh([base, "-m", "venv", venv])
    py = venv / "bin" / "python"
    sh([py, "-m", "pip", "install", "--quiet", "-c", constraints(tmp), f"{wheel}[notebooks,instructor]"])
    return py


def clean_env(venv_py: Path, tmp: Path, data: Path, data_cache: Path) -> dict:
    """A student's environment: the venv first on PATH, no PYTHONPATH, no course_lib settings but the data."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COURSE_", "PYTHON", "JUPYTER", "VIRTUAL_ENV", "MPLBACKEND", "IPYTHON"))}
    env.update(PATH=f"{venv_py.parent}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv_py.parent.parent),
               COURSE_DATA=str(data), COURSE_CACHE=str(data_cache), COURSE_PROGRESS="0",
               JUPYTER_DATA_DIR=str(tmp / "jupyter"), JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"),
               IPYTHONDIR=str(tmp / "ipython"), PYTHONHASHSEED="0")
    return env


def with_probe(src: Path, dest: Path) -> Path:
    """The chapter with one code cell at the end that says which course_lib and which Python ran it."""
    nb = json.loads(src.read_text())
    nb["cells"].append({"cell_type": "code", "execution_count": None, "id": "rehearsal-probe", "metadata": {},
                        "outputs": [], "source": PROBE})
    dest.write_text(json.dumps(nb))
    return dest


def texts(nb: dict) -> tuple[str, list[str]]:
    """All text output of a notebook, and its error outputs."""
    out, errors = [], []
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            if o["output_type"] == "stream":
                out.append("".join(o["text"]))
            elif o["output_type"] == "error":
                errors.append(f"{o['ename']}: {o['evalue']}")
            else:
                out.append("".join(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out), errors


def check(chapter: str, executed: Path, venv: Path, work: Path) -> list[str]:
    text, errors = texts(json.loads(executed.read_text()))
    problems = [f"chapter {chapter}: a cell raised {e}" for e in errors]
    probe = [line.split() for line in text.splitlines() if line.startswith("REHEARSAL ")]
    if not probe:
        problems.append(f"chapter {chapter}: the probe cell printed nothing")
    else:
        _, where, version, python = probe[-1]
        if not Path(where).resolve().is_relative_to(venv.resolve()):
            problems.append(f"chapter {chapter}: course_lib came from {where}, not from the venv {venv}")
        if not Path(python).resolve().is_relative_to(venv.resolve()) and not python.startswith(str(venv)):
            problems.append(f"chapter {chapter}: the kernel ran {python}, not the venv's Python")
        print(f"chapter {chapter}: course_lib {version} from {where}")
    for want in EXPECTED[chapter] + ([RECORDS_LINE, str(work / "course-results" / "cpu")] if chapter != "00" else []):
        if want not in text:
            problems.append(f"chapter {chapter}: the output does not show {want!r}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--chapters", nargs="+", default=list(CHAPTERS), choices=list(CHAPTERS))
    parser.add_argument("--data", default=os.environ.get("COURSE_DATA") or ROOT.parent / "shared" / "datasets",
                        help="the offline copies of the data sets (default: $COURSE_DATA, else ../shared/datasets)")
    parser.add_argument("--data-cache", default=Path.home() / ".cache" / "resnest-book" / "rehearsal-data",
                        help="COURSE_CACHE of the rehearsal, kept between runs")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per chapter")
    args = parser.parse_args(argv)
    data = Path(args.data).resolve()
    if not data.is_dir():
        print(f"no offline data sets at {data}: pass --data or set COURSE_DATA", file=sys.stderr)
        return 2
    start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="colab-rehearsal-"))
    problems = []
    try:
        wheel = build_wheel(tmp)
        print(f"built {wheel.name} ({wheel.stat().st_size / 1e3:,.0f} kB)")
        venv_py = make_venv(tmp, wheel)
        installed = time.monotonic()
        work = tmp / "work"          # the student's empty working folder (Colab's /content)
        work.mkdir()
        env = clean_env(venv_py, tmp, data, Path(args.data_cache))
        for ch in args.chapters:
            src = with_probe(ROOT / "chapters" / f"{CHAPTERS[ch]}.ipynb", tmp / f"in-{ch}.ipynb")
            out = tmp / f"out-{ch}.ipynb"
            params = [] if ch == "00" else ["-p", "TRAIN", "False", "-p", "PROFILE", "cpu"]
            t0 = time.monotonic()
            run = subprocess.run([venv_py, "-m", "papermill", src, out, *params, "--cwd", work, "-k", "python3",
                                  "--no-progress-bar", "--execution-timeout", str(args.timeout)],
                                 cwd=work, env=env, capture_output=True, text=True)
            print(f"chapter {ch}: papermill exit {run.returncode} in {time.monotonic() - t0:.0f} s", flush=True)
            if run.returncode != 0:
                problems.append(f"chapter {ch}: papermill failed: {run.stderr.strip().splitlines()[-1:]}")
            if out.exists():
                problems += check(ch, out, venv_py.parent.parent, work)
        leftovers = sorted(p.name for p in work.iterdir())
        print(f"the working folder holds {leftovers or 'nothing'} after the chapters")
        print(f"rehearsal: {installed - start:.0f} s to build and install, {time.monotonic() - installed:.0f} s "
              f"for the chapters, {time.monotonic() - start:.0f} s in all")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if problems:
        print("COLAB REHEARSAL FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"Colab rehearsal passed: chapters {', '.join(args.chapters)} ran from the installed wheel")
    return 0


if __name__ == "__main__":
    sys.exit(main())
