"""Instructors' exercises: class sets are made, solutions pass, wrong answers fail, bad sheets stop early."""
import csv
from pathlib import Path

import nbformat
import pytest

from course_lib.instructor import exercises, nbparams

ROOT = Path(__file__).resolve().parents[1]
EX1 = ROOT / "exercises" / "01_grouped_conv_cost.ipynb"
SHEET = "student,n_i,n_o,g\nada,64,64,2\nbob,128,64,4\ncyd,256,128,8\ndan,32,32,16\neve,64,128,32\n"
# The grading tests check correctness, never speed: their limit only catches a notebook that hangs,
# so a busy machine (a load of 8 made 03_sk_select miss its own 60 s limit) cannot fail them.
# The time limit itself has its own test, with a notebook that sleeps.
GENEROUS = 900


def _answer(nb, source):
    """Replace the first answer cell of a student notebook by ``source``."""
    cell = next(c for c in nb.cells if "answer" in c.metadata.get("tags", []))
    cell.source = source
    return nb


@pytest.fixture(scope="module")
def class_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("class")
    sheet = out / "sheet.csv"
    sheet.write_text(SHEET)
    written = exercises.make(EX1, sheet, out)
    return out, written


def test_a_class_set_of_five_variants(class_set):
    out, written = class_set
    assert [p.name.split("__")[1] for p in written] == [f"{s}.ipynb" for s in ("ada", "bob", "cyd", "dan", "eve")]
    student = nbformat.read(str(written[1]), as_version=4)
    text = "\n".join(c.source for c in student.cells)
    assert "BEGIN SOLUTION" not in text and "return g *" not in text      # solutions stripped
    assert not any("check" in c.metadata.get("tags", []) for c in student.cells)  # checks hidden
    assert "n_i = 128" in text and "g = 4" in text                      # bob's parameters injected
    solution = nbformat.read(str(out / "solutions" / written[1].name), as_version=4)
    assert "return g *" in "\n".join(c.source for c in solution.cells)


def test_every_variant_solution_passes_and_blank_answers_fail(class_set):
    out, _ = class_set
    rows = exercises.check_folder(EX1, out / "solutions", out / "solutions.csv", timeout=GENEROUS,
                                  sheet=out / "sheet.csv")
    assert [r["score"] for r in rows] == ["3/3"] * 5
    with open(out / "solutions.csv") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["ok"] * 5
    blank = exercises.grade_one(sorted((out / "students").glob("*.ipynb"))[0], EX1, GENEROUS, out / "sheet.csv")
    assert blank["score"] == "0/3" and "NotImplementedError" in blank["error"]


def test_a_wrong_answer_fails_and_a_right_one_passes(class_set, tmp_path):
    out, written = class_set
    wrong = _answer(nbformat.read(str(written[0]), as_version=4), "\n".join([
        "def grouped_params(n_i, n_o, g, k): return n_i * n_o * k * k  # forgot the groups",
        "def grouped_macs(n_i, n_o, g, k, H, W): return grouped_params(n_i, n_o, g, k) * H * W",
        "saving = 1.0"]))
    nbformat.write(wrong, str(tmp_path / written[0].name))      # graded under the name it was handed out
    good = nbformat.read(str(out / "solutions" / written[2].name), as_version=4)
    nbformat.write(good, str(tmp_path / written[2].name))
    rows = {r["student"]: r for r in exercises.check_folder(EX1, tmp_path, tmp_path / "g.csv", timeout=GENEROUS,
                                                             sheet=out / "sheet.csv")}
    assert rows["ada"]["params"] == "FAIL" and rows["ada"]["saving"] == "FAIL"
    assert rows["ada"]["status"] == "ok"           # it ran; it was wrong
    assert rows["cyd"]["score"] == "3/3"


def test_a_notebook_past_the_time_limit_is_cut_off_and_grading_goes_on(class_set, tmp_path):
    """The time limit, on a notebook that sleeps (no CPU burnt): it times out however fast the machine is."""
    out, written = class_set
    sleeper = _answer(nbformat.read(str(written[1]), as_version=4), "import time\ntime.sleep(3600)")
    nbformat.write(sleeper, str(tmp_path / written[1].name))
    (tmp_path / written[3].name).write_text("{ not a notebook")   # dan, graded after it
    rows = {r["student"]: r for r in exercises.check_folder(EX1, tmp_path, tmp_path / "g.csv", timeout=5,
                                                             sheet=out / "sheet.csv")}
    assert rows["bob"]["status"] == "timeout" and rows["bob"]["score"] == "0/3"
    assert "time limit of 5 s" in rows["bob"]["error"]
    assert rows["dan"]["status"] == "unreadable"   # the next notebook was still graded
    with open(tmp_path / "g.csv") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["timeout", "unreadable"]


@pytest.mark.parametrize("sheet, message", [
    ("student,n_i,groups\nada,64,2\n", "has no parameter 'groups'"),
    ("student,n_i,g\nada,64,3\n", "g=3 is not allowed"),
    ("student,n_i,g\nada,sixty,2\n", "is not a int"),
    ("student,n_i,g\nada,,2\n", "has no value"),
    ("n_i,g\n64,2\n", "has no 'student' value"),
    ("student,g\nada,2\nada,4\n", "appears twice"),
])
def test_a_bad_sheet_stops_with_the_allowed_parameters(tmp_path, sheet, message):
    path = tmp_path / "sheet.csv"
    path.write_text(sheet)
    with pytest.raises(ValueError, match=message) as err:
        exercises.make(EX1, path, tmp_path / "out")
    assert "n_o (default 128" in str(err.value) or "appears twice" in message
    assert not (tmp_path / "out").exists()           # nothing half-written


def test_yaml_sheets_and_the_command_line(tmp_path, capsys):
    sheet = tmp_path / "sheet.yaml"
    sheet.write_text("students:\n  - {student: ada, g: 2}\n  - {student: bob, g: 8, k: 1}\n")
    assert exercises.main(["make", "01_grouped_conv_cost", str(sheet), "--out", str(tmp_path / "o")]) == 0
    assert len(list((tmp_path / "o" / "students").glob("*.ipynb"))) == 2
    assert exercises.main(["make", "no_such_exercise", str(sheet), "--out", str(tmp_path / "p")]) == 2
    assert "No single exercise matches" in capsys.readouterr().err


def test_unknown_parameter_in_nbparams_lists_allowed():
    with pytest.raises(ValueError, match=r"Allowed parameters:\n  n_i"):
        nbparams.validate(EX1, {"N_I": 4})


# One wrong answer per exercise (the source of its answer cell), and a small sheet row.
WRONG = {
    "01_grouped_conv_cost": ("", "def grouped_params(n_i, n_o, g, k): return n_i * n_o * k * k\n"
                                 "def grouped_macs(n_i, n_o, g, k, H, W): return 0\nsaving = 1.0"),
    "02_se_from_scratch": ("", "def squeeze_excite(U, W1, b1, W2, b2):\n"
                               "    a = torch.sigmoid(U.mean((2, 3)))  # no excitation MLP\n"
                               "    return U * a[:, :, None, None], a\nV, a = squeeze_excite(U, W1, b1, W2, b2)"),
    "03_sk_select": ("", "d = C // reduction\n"
                         "def select(U, attn):\n    a = torch.full(U.shape[:3], 1.0 / U.shape[1])\n"
                         "    return a, (U * a[..., None, None]).sum(1)\na, V = select(U, attn)"),
    "04_split_attention_layouts": ("", "def input_order(width, K, R): return torch.arange(width)\n"
                                       "p = input_order(width, K, R)"),
    "05_predict_block_params": (",name\nt,ResNeSt-14-2s2x40d",
                                "def predict_block_params(R, K, W, inplanes=64, planes=64): return 0\nprediction = 0"),
    "06_ablation_new_radix": (",images,seeds\nt,100,2",
                              "new_name = f'ResNeSt-14-{radix}s1x64d'\n"
                              "def compare(new, base): return 0.0, 0.0, 'within the seed spread'"),
    "07_frozen_backbone": (",images\nt,40", "def freeze_backbone(model): return []\ntrainable = []"),
}


def test_every_exercise_is_covered():
    assert sorted(WRONG) == sorted(p.stem for p in (ROOT / "exercises").glob("*.ipynb"))
    assert len(WRONG) >= 6


@pytest.mark.parametrize("name", sorted(WRONG))
def test_solution_passes_and_a_wrong_answer_fails(name, tmp_path, real_data_root):
    columns, wrong = WRONG[name]
    header, _, row = columns.partition("\n")
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(f"student{header}\n{row or 't'}\n")
    exercise = ROOT / "exercises" / f"{name}.ipynb"
    [student] = exercises.make(exercise, sheet, tmp_path / "set")
    limit = max(GENEROUS, exercises.info(exercise)["time_limit"])   # correctness, not speed
    solved = exercises.grade_one(tmp_path / "set" / "solutions" / student.name, exercise, limit, sheet)
    total = len(exercises.info(exercise)["checks"])
    assert solved["score"] == f"{total}/{total}", solved
    bad = tmp_path / "bad" / student.name
    bad.parent.mkdir()
    nbformat.write(_answer(nbformat.read(str(student), as_version=4), wrong), str(bad))
    graded = exercises.grade_one(bad, exercise, limit, sheet)
    assert "FAIL" in [graded[c] for c in exercises.info(exercise)["checks"]], graded
