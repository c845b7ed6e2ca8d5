"""Parameterised exercises for instructors: make a class set, then grade it.

An exercise is a *master* notebook in ``exercises/`` with

- a cell tagged ``parameters`` (papermill), with allowed values in the metadata;
- cells tagged ``solution``: the lines between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION`` are the answer, replaced for students by a stub;
- a cell tagged ``answers``: ``answers = collect(name=lambda: ..., ...)``, what grading takes
  from the student's kernel, as data;
- cells tagged ``check``: hidden checks that call ``course_lib.check.check`` on ``answers``,
  the parameters and the names set by cells tagged ``context``. Students never see them;
  grading runs them in a process of their own (``grading.py``), never in the student's kernel.

Command line (``python -m course_lib.instructor.exercises --help``)::

    make  EXERCISE SHEET --out DIR   # DIR/students/*.ipynb and DIR/solutions/*.ipynb
    check EXERCISE FOLDER --sheet SHEET --gradebook grades.csv [--timeout SECONDS]
    params EXERCISE                  # the parameters and their allowed values
"""
from __future__ import annotations

import argparse
import copy
import csv
import io
import re
import sys
import tempfile
from pathlib import Path

import nbformat

from . import nbparams

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = '# YOUR CODE HERE\nraise NotImplementedError("write your answer here")'
STUDENT_KEY = "student"
EXERCISE_DIR = Path(__file__).resolve().parents[2] / "exercises"


# --------------------------------------------------------------------------- master notebooks
def resolve(exercise) -> Path:
    """An exercise by path or by name (``se_from_scratch`` finds ``exercises/*se_from_scratch.ipynb``)."""
    names = ", ".join(p.stem for p in sorted(EXERCISE_DIR.glob("*.ipynb"))) or "none"
    if not str(exercise).strip():
        raise ValueError(f"Name an exercise (a part of its name is enough, e.g. se_from_scratch). Exercises: {names}")
    path = Path(exercise)
    if path.suffix == ".ipynb" and path.exists():
        return path
    found = [p for p in sorted(EXERCISE_DIR.glob("*.ipynb")) if path.stem in p.stem]  # text, not a glob pattern
    if len(found) != 1:
        raise ValueError(f"No single exercise matches {str(exercise)!r}. Exercises: {names}")
    return found[0]


def info(path) -> dict:
    """The exercise's metadata: title, checks, time limit."""
    meta = nbformat.read(str(path), as_version=4).metadata.get("course", {}).get("exercise")
    if not meta or not meta.get("checks"):
        raise ValueError(f"{path} is not an exercise: its metadata has no course.exercise.checks list.")
    return meta


def _tags(cell) -> list:
    return cell.metadata.get("tags", [])


def strip_solution(source: str) -> str:
    """Replace each BEGIN/END SOLUTION block by the stub, keeping its indentation."""
    out, inside = [], False
    for line in source.splitlines():
        if line.strip() == BEGIN:
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out += [indent + s for s in STUB.splitlines()]
        elif line.strip() == END:
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"a solution cell has {BEGIN!r} without {END!r}")
    return "\n".join(out)


def student_version(nb):
    """The notebook a student gets: no solutions, no checks, no outputs."""
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        if {"check", "answers"} & set(_tags(cell)):
            continue
        if cell.cell_type == "code":
            if "solution" in _tags(cell):
                cell.source = strip_solution(cell.source)
                cell.metadata["tags"] = [t for t in _tags(cell) if t not in ("hide-input", "solution")] + ["answer"]
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
    nb.cells = cells
    return nb


def read_sheet(path) -> list[dict]:
    """Rows of a CSV or YAML parameter sheet, one per student or variant."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"The parameter sheet {path} does not exist.")
    if path.suffix.lower() in (".yml", ".yaml"):
        rows = _read_yaml(path)
    elif path.suffix.lower() == ".csv":
        rows = _read_csv(path)
    else:
        raise ValueError(f"{path}: a parameter sheet is a .csv or .yaml file.")
    if not rows:
        raise ValueError(f"{path} has no rows.")
    return rows


def _sheet_text(path: Path) -> str:
    """The sheet as text: UTF-8, with or without the byte-order mark Excel writes; anything else is refused."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise ValueError(f"{path}, line {line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); an older Excel "
                         "saves CSV as Latin-1/Windows-1252. Save the sheet as 'CSV UTF-8' (Excel) or with "
                         "UTF-8 encoding, so that names with accents stay as written.") from None


def _read_yaml(path: Path) -> list:
    import yaml

    class SheetLoader(yaml.SafeLoader):
        """YAML with every student id kept as written: 0123 stays '0123' (not the octal 83), 1e3 stays '1e3'."""
        def construct_mapping(self, node, deep=False):
            out = super().construct_mapping(node, deep)
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == STUDENT_KEY and isinstance(value, yaml.ScalarNode):
                    out[STUDENT_KEY] = value.value
            return out

    try:
        data = yaml.load(_sheet_text(path), Loader=SheetLoader) or []
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        start = getattr(err, "context_mark", None)
        if start is not None and getattr(err, "context", None) and (mark is None or start.line != mark.line):
            what += f", {err.context} that starts at line {start.line + 1}"
        raise ValueError(f"{path}{where}: not valid YAML ({what}). A YAML sheet is a list of mappings, e.g. "
                         "'- {student: ada, g: 2}' on each line.") from None
    rows = data.get("students", data) if isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{path}: a YAML sheet is a list of mappings, one per student.")
    return rows


def _read_csv(path: Path) -> list[dict]:
    """Rows of a CSV sheet separated by commas, semicolons (Excel in many locales) or tabs."""
    text = _sheet_text(path)
    try:
        dialect = csv.Sniffer().sniff(text.split("\n", 1)[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    header = [h.strip() for h in next(reader, [])]
    rows = []
    for fields in reader:
        if not any(f.strip() for f in fields):
            continue   # a blank line
        if len(fields) != len(header):
            raise ValueError(f"{path}, line {reader.line_num}: {len(fields)} values, but the header names "
                             f"{len(header)} columns ({', '.join(header)}). Give every row one value per column.")
        rows.append(dict(zip(header, fields)))
    return rows


def _student_params(exercise: Path, rows: list[dict]) -> list[tuple[str, dict]]:
    out, seen, files = [], set(), {}
    for i, row in enumerate(rows, start=1):
        row = dict(row)
        student = str(row.pop(STUDENT_KEY, "") or "").strip()
        if not student:
            raise ValueError(f"row {i} of the sheet has no '{STUDENT_KEY}' value. Columns: '{STUDENT_KEY}' "
                             f"and any of these parameters:\n{nbparams.describe(exercise)}")
        if student in seen:
            raise ValueError(f"the student {student!r} appears twice in the sheet.")
        seen.add(student)
        _check_file_name(exercise, student, i, files)
        try:
            params = nbparams.validate(exercise, row)
        except ValueError as err:
            raise ValueError(f"row {i} ({student}): {err}") from None
        out.append((student, params))
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


MAX_FILE_NAME = 255   # bytes in one file name on Linux, macOS and Windows file systems


def _check_file_name(exercise: Path, student: str, row: int, files: dict) -> None:
    """Refuse an id whose handed-out file name is too long, or equal to another's (ignoring case,
    as macOS and Windows do): each student's notebook must be a file of its own."""
    name = handout_name(exercise, student)
    if len(name.encode()) > MAX_FILE_NAME:
        room = MAX_FILE_NAME - len(handout_name(exercise, "").encode())
        raise ValueError(f"row {row} ({student[:40]}...): the id is {len(student)} characters long; its notebook's "
                         f"file name would exceed {MAX_FILE_NAME} bytes. Use an id of at most {room} letters, digits, "
                         "'_', '.' or '-'.")
    other = files.setdefault(name.casefold(), (row, student))
    if other != (row, student):
        raise ValueError(f"rows {other[0]} ({other[1]!r}) and {row} ({student!r}) would get the same notebook "
                         f"file {name}: ids are turned into file names with letters, digits, '_', '.' and '-' "
                         "only (other characters become '_', and case is ignored). Make the ids differ in those "
                         "characters, e.g. add a number.")


def handout_name(exercise: Path, student: str) -> str:
    """The file name a student's notebook is handed out (and graded) under."""
    return f"{Path(exercise).stem}__{_safe(student)}.ipynb"


def make(exercise, sheet, out) -> list[Path]:
    """Write one student notebook per row of the sheet, and the matching solutions apart."""
    import papermill
    exercise = resolve(exercise)
    info(exercise)
    students = _student_params(exercise, read_sheet(sheet))  # everything is checked before anything is written
    out = Path(out)
    (out / "students").mkdir(parents=True, exist_ok=True)
    (out / "solutions").mkdir(parents=True, exist_ok=True)
    written = []
    for student, params in students:
        with tempfile.TemporaryDirectory() as tmp:
            solved = Path(tmp) / "solution.ipynb"
            papermill.execute_notebook(str(exercise), str(solved), parameters=params, prepare_only=True,
                                       progress_bar=False)
            nb = nbformat.read(str(solved), as_version=4)
        nb.metadata.setdefault("course", {})["student"] = student
        nb.metadata["course"]["source_exercise"] = exercise.name
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        name = handout_name(exercise, student)
        nbformat.write(nb, str(out / "solutions" / name))
        nbformat.write(student_version(nb), str(out / "students" / name))
        written.append(out / "students" / name)
    return written


# --------------------------------------------------------------------------- grading (grading.py)
def grade_one(path: Path, exercise: Path, timeout: float, sheet, **kwargs) -> dict:
    """Grade one handed-out notebook in isolation: see :func:`course_lib.instructor.grading.grade_one`."""
    from .grading import grade_one
    return grade_one(path, exercise, timeout, sheet, **kwargs)


def check_folder(exercise, folder, gradebook, timeout: float = 300, *, sheet, **kwargs) -> list[dict]:
    """Grade a folder into a CSV gradebook: see :func:`course_lib.instructor.grading.check_folder`."""
    from .grading import check_folder
    return check_folder(exercise, folder, gradebook, timeout, sheet=sheet, **kwargs)


# --------------------------------------------------------------------------- command line
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.instructor.exercises", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the exercises")
    p = sub.add_parser("params", help="an exercise's parameters and allowed values")
    p.add_argument("exercise")
    m = sub.add_parser("make", help="one student notebook per sheet row, solutions kept apart")
    m.add_argument("exercise")
    m.add_argument("sheet", help="CSV or YAML: a 'student' column plus parameter columns")
    m.add_argument("--out", required=True, help="folder for students/ and solutions/")
    c = sub.add_parser("check", help="grade a folder of completed notebooks into a CSV gradebook")
    c.add_argument("exercise")
    c.add_argument("folder")
    c.add_argument("--sheet", required=True, help="the sheet the class set was made from: who is who, which variant")
    c.add_argument("--gradebook", required=True)
    c.add_argument("--timeout", type=float, default=None, help="seconds per notebook (default: the exercise's)")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            for path in sorted(EXERCISE_DIR.glob("*.ipynb")):
                print(f"{path.stem}: {info(path).get('title', '')}")
        elif args.command == "params":
            print(nbparams.describe(resolve(args.exercise)))
        elif args.command == "make":
            for path in make(args.exercise, args.sheet, args.out):
                print(path)
        else:
            exercise = resolve(args.exercise)
            timeout = args.timeout or info(exercise).get("time_limit", 300)
            rows = check_folder(exercise, args.folder, args.gradebook, timeout, sheet=args.sheet)
            passed = sum(r["score"].split("/")[0] == r["score"].split("/")[1] for r in rows)
            print(f"graded {len(rows)} notebooks, {passed} passed every check; gradebook: {args.gradebook}")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
