"""Hostile notebooks (issue 15, section 4): one per attack of the audit, graded in one folder.

Every test checks an outcome, never a duration: a file's bytes, a gradebook cell, a process
that is or is not alive. The limits are generous (a loaded machine only makes grading slower).
The attacks know every path (the strongest student); the masters, solutions and sheet are
copies in a temporary folder, so a defence that fails cannot damage the repository.
"""
import csv
import hashlib
import inspect
import json
import os
import signal
import uuid
from pathlib import Path

import nbformat
import pytest

from course_lib.instructor import exercises

try:
    from course_lib.instructor import sandbox
    WHY = sandbox.unavailable()
except ImportError:          # the grader before isolation: the attacks run, and the tests fail
    WHY = ""

pytestmark = pytest.mark.skipif(bool(WHY), reason=f"isolation unavailable here: {WHY}")

ROOT = Path(__file__).resolve().parents[1]
EX1 = ROOT / "exercises" / "01_grouped_conv_cost.ipynb"
STEM = EX1.stem
TOKEN = f"HOSTILE-{uuid.uuid4().hex}"     # in the command line of every process an attack starts
SAME = "64,64,2"
NAMES = ["a_check", "b_master_read", "c_master_write", "d_other", "e_daemon", "f_fork", "g_claim",
         "h_formula", "z_victim"]
SHEET = "student,n_i,n_o,g\n" + "".join(f"{n},{SAME}\n" for n in NAMES) + "bob,128,128,4\n"
GENEROUS = 900
WRONG = "def grouped_params(n_i, n_o, g, k): return 1\ndef grouped_macs(n_i, n_o, g, k, H, W): return 1\nsaving = 1.0\n"
SPREADSHEET = ("=", "+", "-", "@", "\t", "\r")


def _start(code: str, *args: str) -> str:
    """Source that starts ``code`` as a detached process (its own session), marked with TOKEN."""
    return (f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {code!r}, {TOKEN!r}, *{list(args)!r}], "
            "start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, "
            "stderr=subprocess.DEVNULL)\n")


DAEMON = """
import sys, time
book = sys.argv[2]
end = time.time() + 900
while time.time() < end:
    time.sleep(0.2)
    try:
        text = open(book).read()
    except OSError:
        continue
    if "z_victim" in text:
        time.sleep(1)
        open(book, "w").write("student,score\\nFORGED,3/3\\n")
        break
time.sleep(900)
"""


def _attacks(paths: dict) -> dict[str, str]:
    master, victim, solved, book = (repr(str(paths[k])) for k in ("master", "victim", "solved", "gradebook"))
    return {
        "a_check": "import course_lib.check as _c\nimport torch\n"
                   "def _fake(name, passed, message=''):\n    print(f'CHECK {name}: PASS')\n"
                   "    _c.RESULTS.append((name, 'PASS', ''))\n    return True\n"
                   "_c.check = _fake\ntorch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n" + WRONG,
        "b_master_read": f"import json\nfor c in json.load(open({master}))['cells']:\n"
                         "    if 'solution' in c['metadata'].get('tags', []):\n        exec(''.join(c['source']))\n",
        "c_master_write": f"import json\nnb = json.load(open({master}))\nfor c in nb['cells']:\n"
                          "    if 'check' in c['metadata'].get('tags', []):\n"
                          "        c['source'] = 'from course_lib.check import check\\nfor n in (\"params\", \"macs\", "
                          "\"saving\"): check(n, True)'\n"
                          f"json.dump(nb, open({master}, 'w'))\n" + WRONG,
        "d_other": f"import shutil\nshutil.copy({solved}, {victim})\n" + WRONG,
        "e_daemon": _start(DAEMON, str(paths["gradebook"])) + WRONG,
        "f_fork": _start("import time; time.sleep(900)") + WRONG,
        "g_claim": "n_i, n_o, g = 128, 128, 4   # bob's variant, which the metadata claims too\n"
                   "def grouped_params(n_i, n_o, g, k): return g * (n_i // g) * (n_o // g) * k * k\n"
                   "def grouped_macs(n_i, n_o, g, k, H, W): return grouped_params(n_i, n_o, g, k) * H * W\n"
                   "saving = float(g)\n",
        "h_formula": "raise type('=HYPERLINK(\"http://example.invalid\",\"x\")', (Exception,), {})('+1')\n",
    }


def _answer(nb, source):
    next(c for c in nb.cells if "answer" in c.metadata.get("tags", [])).source = source
    return nb


def _snapshot(folder: Path, skip: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p != skip}


def _alive(token: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if token.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(int(pid))
            except OSError:
                pass
    return found


def _grade(master, folder, gradebook, sheet, timeout):
    """The grader's check_folder, with the sheet where it takes one (the grader before isolation did not)."""
    takes_sheet = "sheet" in inspect.signature(exercises.check_folder).parameters
    return exercises.check_folder(master, folder, gradebook, timeout, **({"sheet": sheet} if takes_sheet else {}))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A class set, one hostile submission per attack, an honest one and a blank victim, graded once."""
    tmp = tmp_path_factory.mktemp("hostile")
    masters, subs = tmp / "masters", tmp / "submissions"
    masters.mkdir()
    subs.mkdir()
    master = masters / EX1.name
    master.write_bytes(EX1.read_bytes())
    sheet = tmp / "sheet.csv"
    sheet.write_text(SHEET)
    exercises.make(master, sheet, tmp / "class")
    handed = lambda n: tmp / "class" / "students" / f"{STEM}__{n}.ipynb"
    paths = {"master": master, "victim": subs / f"{STEM}__z_victim.ipynb", "gradebook": tmp / "book" / "grades.csv",
             "solved": tmp / "class" / "solutions" / f"{STEM}__z_victim.ipynb"}
    for name, source in _attacks(paths).items():
        nb = _answer(nbformat.read(str(handed(name)), as_version=4), source)
        if name == "g_claim":
            nb.metadata["course"]["student"] = "bob"
            nb.metadata.setdefault("papermill", {})["parameters"] = {"n_i": 128, "n_o": 128, "g": 4}
        if name == "h_formula":
            nb.metadata["course"]["student"] = '=HYPERLINK("http://example.invalid","x")'
        nbformat.write(nb, str(subs / handed(name).name))
    (subs / f"{STEM}__bob.ipynb").write_bytes((tmp / "class" / "solutions" / f"{STEM}__bob.ipynb").read_bytes())
    paths["victim"].write_bytes(handed("z_victim").read_bytes())
    (subs / f"{STEM}__mallory.ipynb").write_bytes(handed("a_check").read_bytes())   # not on the sheet
    before = _snapshot(tmp, paths["gradebook"])
    try:
        rows = _grade(master, subs, paths["gradebook"], sheet, GENEROUS)
        alive = _alive(TOKEN)
        with open(paths["gradebook"], newline="") as f:
            book = list(csv.reader(f))
        after = _snapshot(tmp, paths["gradebook"])
        yield {"rows": {r["notebook"].split("__")[1][:-6]: r for r in rows}, "alive": alive, "book": book,
               "changed": {k for k in set(before) | set(after) if before.get(k) != after.get(k)}}
    finally:
        for pid in _alive(TOKEN):    # only processes this test's notebooks started (old grader)
            os.kill(pid, signal.SIGKILL)


def test_no_file_outside_the_students_folder_changes(graded):
    assert graded["changed"] == set()


def test_patching_check_or_torch_does_not_pass_wrong_answers(graded):
    row = graded["rows"]["a_check"]
    assert row["score"] == "0/3" and row["params"] == row["macs"] == row["saving"] == "FAIL", row


def test_the_master_solution_cannot_be_read(graded):
    row = graded["rows"]["b_master_read"]
    assert row["score"] == "0/3", row
    assert "No such file" in row["error"] or "FileNotFoundError" in row["error"]


def test_the_masters_cannot_be_rewritten_for_later_students(graded):
    assert "masters/01_grouped_conv_cost.ipynb" not in graded["changed"]
    assert graded["rows"]["c_master_write"]["score"] == "0/3"
    assert graded["rows"]["z_victim"]["score"] == "0/3"       # graded after: the checks are intact


def test_another_submission_cannot_be_overwritten(graded):
    assert f"submissions/{STEM}__z_victim.ipynb" not in graded["changed"]
    assert graded["rows"]["z_victim"]["score"] == "0/3" and "NotImplementedError" in graded["rows"]["z_victim"]["error"]


def test_a_daemon_cannot_rewrite_the_gradebook_or_outlive_its_kernel(graded):
    assert graded["alive"] == []
    flat = [cell for row in graded["book"] for cell in row]
    assert "FORGED" not in flat
    assert [row[0] for row in graded["book"][1:]] == ["a_check", "b_master_read", "bob", "c_master_write", "d_other",
                                                      "e_daemon", "f_fork", "g_claim", "h_formula", "", "z_victim"]


def test_nothing_a_notebook_starts_outlives_it(graded):
    assert graded["alive"] == []           # f_fork's detached child died with its namespace
    assert graded["rows"]["f_fork"]["status"] == "ok"


def test_name_and_variant_come_from_the_handed_out_file_and_the_sheet(graded):
    rows = graded["rows"]
    assert rows["g_claim"]["student"] == "g_claim"          # not "bob", as its metadata claims
    assert rows["g_claim"]["score"] == "0/3"              # its answers are bob's variant, not its own
    assert rows["bob"]["student"] == "bob" and rows["bob"]["score"] == "3/3"   # the honest student is intact
    assert rows["h_formula"]["student"] == "h_formula"
    assert rows["mallory"]["status"] == "not on the sheet" and rows["mallory"]["score"] == "0/3"


def test_no_gradebook_cell_is_a_formula(graded):
    cells = [cell for row in graded["book"] for cell in row]
    assert not [c for c in cells if c.startswith(SPREADSHEET)]
    assert any(c.startswith("'=HYPERLINK") for c in cells)   # h_formula's error, quoted


def test_the_time_limit_kills_a_forked_child_too(tmp_path):
    """A notebook that detaches a child and sleeps: cut off at the limit, and nothing it started lives on."""
    token = f"HOSTILE-{uuid.uuid4().hex}"
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("student,n_i,n_o,g\nsleeper,64,64,2\n")
    exercises.make(EX1, sheet, tmp_path / "class")
    nb = nbformat.read(str(tmp_path / "class" / "students" / f"{STEM}__sleeper.ipynb"), as_version=4)
    _answer(nb, _start("import time; time.sleep(900)").replace(TOKEN, token) + "import time\ntime.sleep(3600)\n")
    (tmp_path / "subs").mkdir()
    nbformat.write(nb, str(tmp_path / "subs" / f"{STEM}__sleeper.ipynb"))
    try:
        [row] = _grade(EX1, tmp_path / "subs", tmp_path / "g.csv", sheet, 40)
        assert row["status"] == "timeout" and row["score"] == "0/3"
        assert _alive(token) == []
    finally:
        for pid in _alive(token):
            os.kill(pid, signal.SIGKILL)


def test_spreadsheet_cells_are_quoted():
    from course_lib.instructor.grading import spreadsheet_safe
    assert [spreadsheet_safe(v) for v in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "ada", 3.5)] == \
        ["'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\tx", "'\rx", "ada", 3.5]


def test_answers_are_read_as_data_only(tmp_path):
    """A pickle in an answer file is refused; links are never followed."""
    import numpy as np
    from course_lib.check import Answers
    from course_lib.instructor import answers
    answers.export(Answers({"p": np.arange(3), "t": (1, "x"), "f": len}), tmp_path / "a")
    loaded = answers.load(tmp_path / "a")
    assert loaded["t"] == (1, "x") and loaded["p"].tolist() == [0, 1, 2]
    with pytest.raises(Exception, match="not data"):
        loaded["f"]
    np.save(tmp_path / "a" / "0.npy", np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(Exception, match="unreadable"):
        answers.load(tmp_path / "a")["p"]
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "answers.json").symlink_to(tmp_path / "a" / "answers.json")
    with pytest.raises(ValueError):
        answers.copy_files(tmp_path / "b", tmp_path / "c")
