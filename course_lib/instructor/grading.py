"""Grading that a student's notebook cannot subvert.

Each submission is graded in two runs, both in a sandbox (:mod:`.sandbox`):

1. **The student's run**: a fresh folder holding only the notebook, with the parameters of
   the student's row of the sheet (the student is known by the file name the instructor
   handed out, never by the notebook's metadata), the master's ``answers`` cell appended,
   and a last cell that exports those answers as data (:mod:`.answers`). The notebook sees
   no master, no other submission and no gradebook, and dies with all its processes at the
   time limit.
2. **The checks' run**: a fresh process that has never run student code. It sets the same
   parameters, runs the master's ``context`` cells (the task's own set-up, from the master,
   not the submission) and its ``check`` cells, with ``answers`` read from the student's files.
   Its verdicts come back as JSON. Patching ``check()`` or ``torch`` in the student's kernel
   changes nothing here.

Only the grader writes the gradebook, and every cell that a spreadsheet would read as a
formula is quoted.
"""
from __future__ import annotations

import csv
import json
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

from . import answers as answers_io
from . import exercises as ex
from . import sandbox

STUDENT_KEY = "student"
CONTEXT, ANSWERS, CHECK = "context", "answers", "check"
EXPORT = ("from course_lib.instructor.answers import export as _export_answers\n"
          "_export_answers(answers, 'answers')")
MAX_NOTEBOOK = 64 * 2**20
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def _tags(cell) -> list:
    return cell.metadata.get("tags", [])


# --------------------------------------------------------------------------- who is who: the sheet
def roster(exercise: Path, sheet) -> dict[str, tuple[str, dict]]:
    """Handed-out file name -> (student, parameters), from the sheet alone."""
    rows = ex.read_sheet(sheet) if not isinstance(sheet, list) else sheet
    return {ex.handout_name(exercise, student): (student, params)
            for student, params in ex._student_params(exercise, rows)}


def spreadsheet_safe(value):
    """A CSV cell that Excel, LibreOffice and Google Sheets show as text, never run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


# --------------------------------------------------------------------------- the two runs
def student_notebook(submission, exercise: Path):
    """The submission's cells (its errors do not stop the run), then the master's answers and the export."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": submission.metadata.get("kernelspec", {}) or
                                            {"name": "python3", "display_name": "Python 3", "language": "python"}})
    for cell in submission.cells:
        if cell.cell_type != "code" or set(_tags(cell)) & {CHECK, ANSWERS}:
            if cell.cell_type != "code":
                nb.cells.append(nbformat.v4.new_markdown_cell(str(cell.source)))
            continue
        tags = [t for t in _tags(cell) if t == "parameters"] or ["raises-exception"]
        nb.cells.append(nbformat.v4.new_code_cell(str(cell.source), metadata={"tags": tags}))
    master = nbformat.read(str(exercise), as_version=4)
    nb.cells += [nbformat.v4.new_code_cell(c.source, metadata={"tags": ["raises-exception"]})
                 for c in master.cells if ANSWERS in _tags(c)]
    nb.cells.append(nbformat.v4.new_code_cell(EXPORT))
    return nb


def trusted_spec(exercise: Path, params: dict) -> dict:
    """What the checks' run needs, taken from the master by the grader: the checks never read a file."""
    master = nbformat.read(str(exercise), as_version=4)
    if not any(ANSWERS in _tags(c) for c in master.cells):
        raise ValueError(f"{exercise.name} has no cell tagged '{ANSWERS}': its checks cannot run apart from "
                         "the student's kernel. Add one (see book/instructors.md, 'How an exercise is built').")
    pick = lambda tag: [c.source for c in master.cells if c.cell_type == "code" and tag in _tags(c)]
    return {"parameters": pick("parameters"), "params": params, "context": pick(CONTEXT), "checks": pick(CHECK)}


def run_checks(spec_path) -> None:
    """The checks' run (``python -m course_lib.instructor.grading SPEC``): no student code, answers as data."""
    from .. import check as check_module
    spec = json.loads(Path(spec_path).read_text())
    ns: dict = {"__name__": "__grading__"}
    for source in spec["parameters"]:
        exec(compile(source, "<parameters>", "exec"), ns)
    ns.update(spec["params"])
    try:
        ns["answers"] = answers_io.load("answers")
    except Exception as err:  # no answers at all: every check fails with the reason
        ns["answers"] = check_module.Answers({}, {"*": f"no answers ({type(err).__name__}: {err})"})
    problems = []
    for kind in ("context", "checks"):
        for i, source in enumerate(spec[kind]):
            try:
                exec(compile(source, f"<{kind} {i}>", "exec"), ns)
            except Exception as err:
                problems.append(f"{kind} cell {i}: {type(err).__name__}: {err}"[:300])
    Path("verdicts.json").write_text(json.dumps({"checks": check_module.RESULTS, "problems": problems}))


# --------------------------------------------------------------------------- one submission
def grade_one(path, exercise, timeout: float, sheet, *, limits: sandbox.Limits | None = None) -> dict:
    """Grade one handed-out notebook in isolation; the row of the gradebook."""
    path, exercise = Path(path), ex.resolve(exercise)
    names = ex.info(exercise)["checks"]
    people = sheet if isinstance(sheet, dict) else roster(exercise, sheet)
    prepare_data(exercise)
    row = {STUDENT_KEY: "", "notebook": path.name, "status": "", "score": f"0/{len(names)}",
           "seconds": 0.0, "error": "", **{n: "NOT RUN" for n in names}}
    if path.name not in people:
        return {**row, "status": "not on the sheet",
                "error": f"no row of the sheet hands out {path.name}; graded files keep the name they were given"}
    student, params = people[path.name]
    row[STUDENT_KEY] = student
    try:
        submission = nbformat.reads(answers_io._read_plain(path, MAX_NOTEBOOK).decode("utf-8"), as_version=4)
    except Exception as err:
        return {**row, "status": "unreadable", "error": f"{type(err).__name__}: {err}"[:500]}
    spec = trusted_spec(exercise, params)
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        tmp = Path(tmp)
        student_dir, check_dir = tmp / "student", tmp / "checks"
        student_dir.mkdir()
        check_dir.mkdir()
        nbformat.write(student_notebook(submission, exercise), str(student_dir / "notebook.ipynb"))
        python = sys.executable
        run = sandbox.run([python, "-m", "papermill", "notebook.ipynb", "graded.ipynb", "--no-progress-bar",
                           "-y", json.dumps(params), "--cwd", sandbox.WORK], student_dir,
                          timeout=timeout, limits=limits)
        errors = _cell_errors(student_dir / "graded.ipynb")
        try:
            answers_io.copy_files(student_dir / "answers", check_dir / "answers")
            no_answers = ""
        except ValueError as err:
            no_answers = f"no answers exported ({err})"
        (check_dir / "spec.json").write_text(json.dumps(spec))
        checked = sandbox.run([python, "-m", "course_lib.instructor.grading", "spec.json"], check_dir,
                              timeout=max(timeout, 60), limits=limits)
        verdicts, problems = _read_verdicts(check_dir / "verdicts.json", names)
        if checked["status"] != "ok" and not problems:
            problems = [f"the checks' run ended with {checked['status']}: {_last_line(checked['stderr'])}"]
    status = run["status"]
    if status == "error" or (status == "ok" and errors):
        status = "student error" if errors else "error"
    results = {n: verdicts.get(n, ("NOT RUN", ""))[0] for n in names}
    failures = [f"{n}: {verdicts[n][1]}" for n in names if verdicts.get(n, ("", ""))[0] == "FAIL" and verdicts[n][1]]
    notes = ([f"stopped after the time limit of {timeout:g} s"] if status == "timeout" else []) + \
        ([_last_line(run["stderr"])] if status == "error" else []) + errors + \
        ([no_answers] if no_answers and status != "timeout" else []) + failures + problems
    row.update(status=status, seconds=run["seconds"], error="; ".join(n for n in notes if n)[:1000], **results,
               score=f"{sum(v == 'PASS' for v in results.values())}/{len(names)}")
    return row


def _read_verdicts(path: Path, names: list) -> tuple[dict, list]:
    try:
        data = json.loads(answers_io._read_plain(path, 2**20))
        found = {}
        for name, verdict, message in data["checks"]:
            if name in names and name not in found and verdict in ("PASS", "FAIL"):
                found[name] = (verdict, str(message)[:300])
        return found, [str(p) for p in data.get("problems", [])]
    except Exception as err:
        return {}, [f"the checks gave no verdicts ({type(err).__name__}: {err})"[:300]]


def _cell_errors(path: Path) -> list[str]:
    """The errors the student's own cells raised, from the run's output notebook (if it is one)."""
    try:
        nb = nbformat.reads(answers_io._read_plain(path, MAX_NOTEBOOK).decode("utf-8"), as_version=4)
    except Exception:
        return []
    return [f"{o.get('ename', '')}: {o.get('evalue', '')}"[:300] for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"][:5]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "Exception" in line:
            return line[:300]
    return (lines[-1] if lines else "")[:300]


# --------------------------------------------------------------------------- a folder
def prepare_data(exercise) -> None:
    """Fill the data cache the sandbox mounts read-only (decoded CIFAR-10, unpacked Hotdog), as the grader.

    Inside the sandbox nobody may write the cache (one student could poison another's data), so a
    cold cache is built here, before any student code runs, for the data sets the exercise uses.
    """
    if str(exercise) in _PREPARED:         # once per exercise and process, not once per student
        return
    from ..engine import data
    text = Path(exercise).read_text(errors="replace").lower() if Path(exercise).is_file() else ""
    if "hotdog" in text:
        data.hotdog_dir()
    if any(word in text for word in ("cifar", "course_lib.run(", "load_data(")):
        data.load_cifar10("test")        # decodes and caches every split once
    _PREPARED.add(str(exercise))


_PREPARED: set = set()


def check_folder(exercise, folder, gradebook, timeout: float = 300, *, sheet,
                 limits: sandbox.Limits | None = None) -> list[dict]:
    """Grade every notebook in ``folder`` into the gradebook CSV; one bad notebook spoils nothing."""
    exercise = ex.resolve(exercise)
    names = ex.info(exercise)["checks"]
    people = roster(exercise, sheet)
    why = sandbox.unavailable()
    if why:
        raise ValueError(f"{why}. Student notebooks are never run outside the sandbox.")
    notebooks = sorted(Path(folder).glob("*.ipynb"))   # a link is read as unreadable, never followed
    if not notebooks:
        raise ValueError(f"{folder} has no .ipynb files to grade.")
    gradebook = Path(gradebook)
    gradebook.parent.mkdir(parents=True, exist_ok=True)
    fields = [STUDENT_KEY, "notebook", "status", "score", *names, "seconds", "error"]
    rows = []
    with open(gradebook, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for path in notebooks:
            row = grade_one(path, exercise, timeout, people, limits=limits)
            writer.writerow({k: spreadsheet_safe(row.get(k, "")) for k in fields})
            f.flush()  # written as it comes: a killed grading run keeps what it graded
            rows.append(row)
            print(f"{row[STUDENT_KEY] or path.name}: {row['status']} {row['score']}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    run_checks(sys.argv[1])
