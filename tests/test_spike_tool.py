"""tools/spike.py's digest: the facts of a replay, read from its step log (synthetic steps here)."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("spike", ROOT / "tools" / "spike.py")
spike = importlib.util.module_from_spec(spec)
spec.loader.exec_module(spike)


def _steps(norms, losses):
    return [{"step": i + 1, "loss": l, "lr": 0.1, "grad_norm": n} for i, (n, l) in enumerate(zip(norms, losses))]


def test_digest_finds_the_largest_step_its_epoch_median_and_where_a_clip_would_bind(tmp_path):
    n = 4                                                     # steps per epoch
    norms = [9.0, 6.0, 3.0, 2.0,   1.0, 0.8, 0.9, 1.1,   0.7, 30.0, 0.9, 0.8]
    losses = [2.3, 2.2, 2.1, 2.0,   1.8, 1.7, 1.7, 1.6,   1.5, 1.5, 2.6, 2.2]
    branch = _steps([0.7, 5.0, 0.9, 0.8], [1.5, 1.5, 1.4, 1.4])          # clipped at 5 from epoch 2's end
    ep = lambda *v: [{"epoch": k + 1, "train_loss": 1.0, "val_acc": a} for k, a in enumerate(v)]  # noqa: E731
    (tmp_path / "steps.json").write_text(json.dumps({
        "label": "ResNeSt-14-1s1x40d", "seed": 1, "branch": 2, "steps_per_epoch": n, "identical": True,
        "variants": {"bf16 (as run)": _steps(norms, losses), "clip5": branch},
        "epochs": {"bf16 (as run)": ep(0.3, 0.5, 0.1), "clip5": ep(0.6)}}))
    (tmp_path / "probe-step2.json").write_text(json.dumps({"fp32": {"grad_norm": 29.0}}))
    d = spike.digest(tmp_path)
    top = d["largest_step"]
    assert (top["step"], top["epoch"], top["grad_norm"], top["next_loss"]) == (10, 3, 30.0, 2.6)
    assert top["epoch_median_grad_norm"] == pytest.approx(0.85)         # median of 0.7, 30, 0.9, 0.8
    assert d["recomputed"] == {"fp32": {"grad_norm": 29.0}}             # step 10 = step 2 of the branch
    assert d["clip_binds_as_run"]["5.0"] == [2, 0, 1] and d["clip_binds_as_run"]["1.0"] == [4, 1, 1]
    assert d["epochs"]["clip5"] == [{"epoch": 1, "train_loss": 1.0, "val_acc": 0.6, "max_grad_norm": 5.0,
                                     "median_grad_norm": pytest.approx(0.85)}]
    assert d["replay_identical"] and d["command"].startswith("python tools/spike.py ResNeSt-14-1s1x40d 1 ")


def test_digest_of_a_spike_on_the_last_step_has_no_next_loss(tmp_path):
    (tmp_path / "steps.json").write_text(json.dumps({
        "label": "X", "seed": 0, "branch": 0, "steps_per_epoch": 2, "identical": None,
        "variants": {"bf16 (as run)": _steps([1.0, 9.0], [2.0, 2.1])},
        "epochs": {"bf16 (as run)": [{"epoch": 1, "train_loss": 2.05, "val_acc": 0.2}]}}))
    top = spike.digest(tmp_path)["largest_step"]
    assert top["step"] == 2 and top["next_loss"] is None and top["epoch_median_grad_norm"] == 5.0
