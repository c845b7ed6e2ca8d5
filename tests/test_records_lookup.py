"""Where the experiment chapters find their records, in a checkout and in an installed package.

In a checkout the records are the repository's results/<profile>/. Installed with pip, the
same files travel as package data (course_lib/_records/<profile>/), new runs go to
./course-results/<profile>/ (or $COURSE_RESULTS/<profile>/), and reading looks at that folder
first, then at the packaged records. Untrustworthy files are reported by name.
"""
import json
import shutil
import warnings
from pathlib import Path

import pytest

from course_lib import study as ex
from course_lib.engine import records as res
from course_lib.study import specs

ROOT = Path(__file__).resolve().parents[1]
# chapter 6's full-scale row, report recipe: 67.05 % (results/cpu, committed)
FULLSCALE = next(s for s in specs.study("06", "cpu") if s.group == "fullscale" and s.recipe == "report")


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """course_lib as pip installs it: no checkout, the records in course_lib/_records/, an empty working folder."""
    package = tmp_path / "site-packages" / "course_lib"
    shutil.copytree(ROOT / "results", package / "_records", ignore=shutil.ignore_patterns(".*"))
    monkeypatch.setattr(res, "_PACKAGE", package)
    monkeypatch.setattr(res, "in_checkout", lambda: False)
    monkeypatch.delenv("COURSE_RESULTS", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work, package / "_records"


def test_in_a_checkout_the_records_are_the_repositorys(monkeypatch):
    monkeypatch.delenv("COURSE_RESULTS", raising=False)
    assert res.in_checkout() and res.packaged_dir() == ROOT / "results"
    assert specs.record_dirs("cpu") == [ROOT / "results" / "cpu"]          # one folder: written and read
    assert ex.find(FULLSCALE, ex.results_dir("cpu"))["test_acc"] == pytest.approx(0.6705, abs=5e-5)


def test_installed_package_reads_its_packaged_records_from_any_folder(installed):
    work, shipped = installed
    assert res.packaged_dir() == shipped
    assert ex.results_dir("cpu") == work / "course-results" / "cpu"
    assert specs.record_dirs("cpu") == [work / "course-results" / "cpu", shipped / "cpu"]
    rec = ex.find(FULLSCALE, ex.results_dir("cpu"))
    assert rec["status"] == "finished" and round(100 * rec["test_acc"], 2) == 67.05
    assert ex.load_latency("cpu")["ResNeSt-50"]["params"] > 0
    assert not (work / "course-results").exists()                      # reading writes nothing


def test_open_chapter_finds_every_committed_run_and_names_the_folder_for_new_ones(installed, capsys):
    work, shipped = installed
    directory, runs, latency = ex.open_chapter("07", "cpu")
    assert directory == work / "course-results" / "cpu"
    committed = sum(1 for s in specs.study("07", "cpu") if (ex.find(s, shipped / "cpu") or {}).get("status")
                    == "finished")
    assert committed and (runs.status == "finished").sum() == committed and latency
    out = capsys.readouterr().out
    assert f"new runs are written to {work / 'course-results' / 'cpu'}" in out
    assert f"then from the {len(list((shipped / 'cpu').glob('*_*.json')))} records that came with" in out


def test_course_results_names_the_users_folder(installed, tmp_path, monkeypatch):
    work, shipped = installed
    monkeypatch.setenv("COURSE_RESULTS", str(tmp_path / "drive"))
    assert specs.record_dirs("cpu") == [tmp_path / "drive" / "cpu", shipped / "cpu"]
    assert ex.find(FULLSCALE, ex.results_dir("cpu"))["test_acc"] == pytest.approx(0.6705, abs=5e-5)


def test_the_users_finished_record_comes_first_and_an_explicit_folder_is_read_alone(installed, tmp_path):
    work, shipped = installed
    packaged = ex.find(FULLSCALE, ex.results_dir("cpu"))
    mine = {**packaged, "test_acc": 0.5}
    res.write_record(mine, ex.results_dir("cpu"))
    assert ex.find(FULLSCALE, ex.results_dir("cpu"))["test_acc"] == 0.5
    res.write_record({**packaged, "status": "running"}, ex.results_dir("cpu"))   # a run of mine, stopped
    assert ex.find(FULLSCALE, ex.results_dir("cpu"))["test_acc"] == packaged["test_acc"]   # finished wins
    assert ex.find(FULLSCALE, tmp_path / "elsewhere") is None
    assert ex.record_dirs("cpu", tmp_path / "elsewhere") == [tmp_path / "elsewhere"]


def _user_copy(installed) -> Path:
    work, shipped = installed
    [src] = [p for p in (shipped / "cpu").glob("*.json") if p.name.endswith(f"_{specs.run_key(FULLSCALE)}.json")]
    dest = ex.results_dir("cpu") / src.name
    dest.parent.mkdir(parents=True)
    return shutil.copy(src, dest)


def test_a_record_that_is_not_json_is_reported_by_name_and_not_used(installed):
    path = _user_copy(installed)
    path.write_text(path.read_text()[:200])                                  # cut off mid-file
    with pytest.warns(res.RecordWarning, match=rf"{path.name}: not valid JSON .* not used"):
        rec = ex.find(FULLSCALE, ex.results_dir("cpu"))
    assert rec["test_acc"] == pytest.approx(0.6705, abs=5e-5)                # the packaged one
    with pytest.warns(res.RecordWarning, match=path.name):
        assert len(res.load_results(ex.record_dirs("cpu"))) > 40


def test_a_record_whose_key_does_not_match_its_configuration_is_reported_by_name(installed):
    path = _user_copy(installed)
    rec = json.loads(path.read_text())
    rec["config"]["seed"] = 7                                                # edited by hand
    rec["test_acc"] = 0.99
    path.write_text(json.dumps(rec))
    with pytest.warns(res.RecordWarning, match=rf"{path.name}: its key .* does not match"):
        assert ex.find(FULLSCALE, ex.results_dir("cpu"))["test_acc"] != 0.99
    path.unlink()
    renamed = path.with_name(path.name.replace(specs.run_key(FULLSCALE), "0" * 12))
    rec = json.loads(shutil.copy(_packaged(installed), renamed).read_text())
    with pytest.warns(res.RecordWarning, match=renamed.name):               # a file name that lies
        assert [r for r in res.iter_records(renamed.parent) if r["key"] == rec["key"]] == []


def _packaged(installed) -> Path:
    return next(p for p in (installed[1] / "cpu").glob(f"*_{specs.run_key(FULLSCALE)}.json"))


def test_every_committed_record_is_trusted():
    with warnings.catch_warnings():
        warnings.simplefilter("error", res.RecordWarning)
        records = list(res.iter_records(ROOT / "results" / "cpu"))
    assert len(records) >= 40
