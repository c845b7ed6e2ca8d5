"""course_lib.engine.records: stable keys, atomic records, tables of mean ± std over seeds."""
import json
import math

import pytest

from course_lib.engine import records as res


def _config(seed=0, lr=0.1, model="ResNeSt-14-2s1x64d"):
    return {"model": model, "overrides": {}, "dataset": "cifar10", "images": 300, "seed": seed,
            "recipe": {"name": "report", "epochs": 2, "lr": lr}}


def _record(cfg, test_acc, status="finished"):
    return {"schema": res.SCHEMA, "key": res.config_key(cfg), "config": cfg, "status": status,
            "history": [], "val_acc": test_acc, "test_acc": test_acc, "params": 10, "settings": {}}


def test_key_is_stable_and_sensitive_to_every_field():
    a = _config()
    shuffled = dict(reversed(list(a.items())))
    assert res.config_key(a) == res.config_key(shuffled) and len(res.config_key(a)) == 12
    assert res.config_key(a) != res.config_key(_config(seed=1))
    assert res.config_key(a) != res.config_key(_config(lr=0.2))
    assert res.group_key(a) == res.group_key(_config(seed=1)) != res.group_key(_config(lr=0.2))


def test_fields_added_later_keep_old_keys_at_their_legacy_value():
    old = _config()
    assert res.config_key({**old, "precision": "fp32", "channels_last": False, "compile": False}) == res.config_key(old)
    assert res.config_key({**old, "recipe": {**old["recipe"], "warmup_steps": 0}}) == res.config_key(old)
    assert res.config_key({**old, "precision": "bf16"}) != res.config_key(old)
    assert res.config_key({**old, "compile": True}) != res.config_key(old)
    assert res.config_key({**old, "recipe": {**old["recipe"], "warmup_steps": 352}}) != res.config_key(old)


def test_record_round_trip_is_atomic_and_json(tmp_path):
    cfg = _config()
    rec = {**_record(cfg, 0.5), "history": [{"train_loss": float("nan")}]}
    path = res.write_record(rec, tmp_path)
    assert path.name.startswith("ResNeSt-14-2s1x64d_cifar10_seed0_") and path.suffix == ".json"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    back = res.find_record(cfg, tmp_path)
    assert math.isnan(back["history"][0]["train_loss"])  # NaN is stored as "nan" (strict JSON), not null
    assert json.loads(path.read_text())["history"][0]["train_loss"] == "nan"
    assert res.find_record(_config(seed=9), tmp_path) is None
    res.update_record(back, tmp_path, latency={"img_per_s": 5.0})
    assert res.find_record(cfg, tmp_path)["latency"] == {"img_per_s": 5.0}


def test_table_has_mean_and_std_over_seeds(tmp_path):
    for seed, acc in enumerate([0.60, 0.62, 0.64]):
        res.write_record(_record(_config(seed=seed), acc), tmp_path)
    res.write_record(_record(_config(lr=0.2), 0.5), tmp_path)
    res.write_record(_record(_config(seed=7), 0.1, status="running"), tmp_path)
    df = res.load_results(tmp_path)
    assert len(df) == 4 and set(df["status"]) == {"finished"}
    assert len(res.load_results(tmp_path, status=None)) == 5
    table = res.summarize(df, metrics=("test_acc",)).set_index("recipe")
    row = table[table["seeds"] == 3].iloc[0]
    assert row["test_acc_mean"] == pytest.approx(0.62) and row["test_acc_std"] == pytest.approx(0.02)
    assert math.isnan(table[table["seeds"] == 1].iloc[0]["test_acc_std"])
    assert res.mean_std(0.62, 0.02) == "62.00 ± 2.00" and res.mean_std(0.5, float("nan")) == "50.00"


def test_empty_folder_gives_empty_table(tmp_path):
    assert res.load_results(tmp_path).empty and res.summarize(res.load_results(tmp_path)).empty
