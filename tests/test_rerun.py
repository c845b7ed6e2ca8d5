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


def test_a_half_written_checkpoint_is_not_taken_for_the_finished_weights(smoke_record):
    """An interrupted retrain leaves an early epoch's checkpoint under the finished record's name."""
    import torch
    from course_lib.engine.runner import load_model
    rec, tmp = smoke_record
    stored = next((tmp / "results").glob(f"*_{rec['key']}.json"))
    path = specs.checkpoints_dir("smoke") / f"{stored.stem}.pt"
    blob = torch.load(path, weights_only=False)
    load_model(rec, runs_dir=specs.checkpoints_dir("smoke"))                # the finished one loads
    torch.save({**blob, "epoch": len(rec["history"]) - 1}, path)
    with pytest.raises(ValueError, match="not the finished weights"):
        load_model(rec, runs_dir=specs.checkpoints_dir("smoke"))
    torch.save({**blob, "key": "0" * 12}, path)
    with pytest.raises(ValueError, match="belongs to another run"):
        load_model(rec, runs_dir=specs.checkpoints_dir("smoke"))


def test_a_float32_stand_in_source_is_retrained_in_float32(tmp_path, monkeypatch):
    """A Table I source stored as its fp32 version (no native bf16 where it ran) is retrained as that version."""
    monkeypatch.setenv("COURSE_RUNS", str(tmp_path / "runs"))
    pre = next(s for s in specs.all_specs("cpu", "06") if s.group == "study" and s.seed == 1)
    alt = specs.fp32_fallback(pre)
    from course_lib.engine import records as res
    res.write_record({"schema": 1, "key": specs.run_key(alt), "config": specs.run_config(alt), "status": "finished",
                      "test_acc": 0.8, "history": [{}] * 10}, tmp_path / "results")
    trained = []

    def train_one(s, profile, directory, force=False, **k):
        trained.append((s.precision, directory.name, force))
        return {"key": specs.run_key(s), "test_acc": 0.79}
    monkeypatch.setattr(queue, "train_one", train_one)
    monkeypatch.setattr(queue, "load_model", lambda rec, runs_dir=None: (_ for _ in ()).throw(ValueError("gone"))
                        if rec.get("status") == "finished" else "model")
    assert queue.pretrained_model(pre, "cpu", tmp_path / "results") == "model"
    assert trained == [("fp32", queue.RETRAINED, False)]


def test_a_seed0_table1_fine_tune_on_a_float32_machine_starts_from_the_seeds_float32_twin(tmp_path, monkeypatch):
    """Its float32 version asks for the twin's weights; a twin whose checkpoint is gone is retrained in float32."""
    monkeypatch.setenv("COURSE_RUNS", str(tmp_path / "runs"))
    ft = next(s for s in specs.all_specs("cpu", "08") if s.group == "transfer-table1" and s.seed == 0)
    twin = next(s for s in specs.all_specs("cpu", "06") if s.group == "precision-study" and s.model == ft.source.model)
    alt = specs.fp32_fallback(ft)
    asked = []
    build, name = specs.model_factory(alt, lambda pre: asked.append(pre) or (_ for _ in ()).throw(RuntimeError))
    assert name.endswith(f"(CIFAR-10 weights {specs.run_key(twin)})")
    with pytest.raises(RuntimeError):
        build()
    assert [specs.run_key(p) for p in asked] == [specs.run_key(twin)] and asked[0].precision == "fp32"
    from course_lib.engine import records as res
    res.write_record({"schema": 1, "key": specs.run_key(twin), "config": specs.run_config(twin), "status": "finished",
                      "test_acc": 0.79, "history": [{}] * 10}, tmp_path / "results")
    trained = []

    def train_one(s, profile, directory, force=False, **k):
        trained.append((specs.run_key(s), s.precision, directory.name))
        return {"key": specs.run_key(s), "test_acc": 0.78}
    monkeypatch.setattr(queue, "train_one", train_one)
    monkeypatch.setattr(queue, "load_model", lambda rec, runs_dir=None: (_ for _ in ()).throw(ValueError("gone"))
                        if rec.get("status") == "finished" else "model")
    assert queue.pretrained_model(asked[0], "cpu", tmp_path / "results") == "model"
    assert trained == [(specs.run_key(twin), "fp32", queue.RETRAINED)]
