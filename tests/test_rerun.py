"""`python -m course_lib.experiments rerun <record>`: a stored run trained again and compared with its record."""
import json

import pytest

from course_lib.study import queue, specs


@pytest.fixture
def smoke_record(tmp_path, monkeypatch, real_data_root):
    monkeypatch.setenv("COURSE_DATA", str(real_data_root))
    monkeypatch.setenv("COURSE_RUNS", str(tmp_path / "runs"))
    spec = next(s for s in specs.protocol("06", "smoke") if s.group == "probe")
    rec = queue.train_one(spec, "smoke", tmp_path / "results")
    assert rec["status"] == "finished"
    return specs.find(spec, tmp_path / "results"), tmp_path


def test_rerun_of_a_smoke_record_is_identical(smoke_record, capsys):
    rec, tmp = smoke_record
    path = next((tmp / "results").glob(f"*_{rec['key']}.json"))
    out = queue.rerun(path, workdir=tmp / "again")
    assert out["identical"] and out["difference"] == 0
    assert "identical" in queue.rerun_text(out)


def test_rerun_refuses_a_damaged_or_edited_record(smoke_record):
    rec, tmp = smoke_record
    path = next((tmp / "results").glob(f"*_{rec['key']}.json"))
    edited = tmp / "edited.json"
    cfg = json.loads(path.read_text())
    cfg["config"]["seed"] = 7                      # the key no longer matches the configuration
    edited.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="does not match its configuration"):
        queue.rerun(edited)
    broken = tmp / "broken.json"
    broken.write_text(path.read_text()[:100])
    with pytest.raises(ValueError, match="not a valid JSON record"):
        queue.rerun(broken)
    with pytest.raises(ValueError, match="no such record"):
        queue.rerun(tmp / "missing.json")


def test_a_source_whose_checkpoint_is_gone_is_retrained_beside_its_record(smoke_record, capsys):
    """A new machine has no checkpoints: the fine-tune's source is trained again, its stored record untouched."""
    rec, tmp = smoke_record
    spec = next(s for s in specs.protocol("06", "smoke") if s.group == "probe")
    path = next((tmp / "results").glob(f"*_{rec['key']}.json"))
    stored = path.read_bytes()
    (specs.checkpoints_dir("smoke") / f"{path.stem}.pt").unlink()
    model = queue.pretrained_model(spec, "smoke", tmp / "results")
    assert path.read_bytes() == stored                                   # the committed record is as it was
    again = specs.find(spec, tmp / "results" / queue.RETRAINED)
    assert again["status"] == "finished" and again["test_acc"] == rec["test_acc"]   # deterministic on the CPU
    assert "its checkpoint was gone" in capsys.readouterr().out
    assert (specs.checkpoints_dir("smoke") / f"{path.stem}.pt").is_file() and model.training is False
