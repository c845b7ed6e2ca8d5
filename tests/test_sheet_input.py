"""Instructors' sheets as people write them (issue 15): ids that would share a file, YAML's octal ids,
ids too long for a file name, broken YAML, Excel's CSV (BOM, Latin-1, semicolons), ragged rows."""
from pathlib import Path

import pytest

from course_lib.instructor import exercises

ROOT = Path(__file__).resolve().parents[1]
EX1 = ROOT / "exercises" / "01_grouped_conv_cost.ipynb"


def _students(tmp_path, name, data) -> list[str]:
    path = tmp_path / name
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return [s for s, _ in exercises._student_params(EX1, exercises.read_sheet(path))]


@pytest.mark.parametrize("a, b", [("anna b", "anna_b"), ("Zoë", "Zoé"), ("Ada", "ada"), ("x/y", "x y")])
def test_ids_that_would_share_a_notebook_file_are_refused(tmp_path, a, b):
    sheet = f"student,g\n{a},2\n{b},4\n"
    with pytest.raises(ValueError, match=r"rows 1 .* and 2 .* would get the same notebook file"):
        _students(tmp_path, "s.csv", sheet)
    with pytest.raises(ValueError, match="same notebook file"):        # make() writes nothing first
        exercises.make(EX1, tmp_path / "s.csv", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_yaml_id_keeps_its_leading_zero(tmp_path):
    assert _students(tmp_path, "s.yaml", "- {student: 0123, g: 2}\n- {student: 1e3, g: 4}\n"
                                         "- {student: yes, g: 8}\n") == ["0123", "1e3", "yes"]
    assert exercises.handout_name(EX1, "0123").endswith("__0123.ipynb")


def test_a_too_long_id_is_named_not_an_oserror(tmp_path):
    with pytest.raises(ValueError, match=r"row 2 .*300 characters long.*at most \d+"):
        _students(tmp_path, "s.csv", f"student,g\nada,2\n{'x' * 300},4\n")


def test_broken_yaml_names_the_file_and_line(tmp_path):
    with pytest.raises(ValueError, match=r"s\.yaml, line 3, column \d+: not valid YAML"):
        _students(tmp_path, "s.yaml", "- student: ada\n  g: 2\n - student: bob\n")
    with pytest.raises(ValueError, match=r"s\.yaml, line 4, .*not valid YAML .*starts at line 3"):
        _students(tmp_path, "s.yaml", "- {student: ada, g: 2}\n- {student: bob, g: 4}\n- {student: 'cy, g: 8}\n")


def test_excel_csv_with_a_bom_and_semicolons_is_read(tmp_path):
    assert _students(tmp_path, "s.csv", "\ufeffstudent;g\r\nZoë;2\r\nbob;4\r\n".encode()) == ["Zoë", "bob"]
    assert _students(tmp_path, "t.csv", "student\tg\nada\t2\n\n") == ["ada"]


def test_a_latin1_csv_is_refused_with_the_line_and_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"s\.csv, line 3: not UTF-8 .*CSV UTF-8"):
        _students(tmp_path, "s.csv", "student,g\nada,2\nZoë,4\n".encode("latin-1"))


@pytest.mark.parametrize("row", ["bob,4,8", "bob"])
def test_ragged_rows_are_refused_with_their_line(tmp_path, row):
    with pytest.raises(ValueError, match=r"line 3: \d values, but the header names 2 columns"):
        _students(tmp_path, "s.csv", f"student,g\nada,2\n{row}\n")


def test_a_sheet_without_a_student_column(tmp_path):
    with pytest.raises(ValueError, match=r"row 1 of the sheet has no 'student' value"):
        _students(tmp_path, "s.csv", "\ufeffname;g\nada;2\n")


@pytest.mark.parametrize("name", ["", " ", "[", "**"])
def test_params_of_an_empty_or_odd_exercise_name(name, capsys):
    assert exercises.main(["params", name]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Exercises: 01_grouped_conv_cost" in err and "pattern" not in err
