"""course_lib.study and the experiments command line: the studies as data, parameter checks, and one chapter end to end.

The end-to-end test executes chapter 6 through papermill with the smoke profile
(its runs of 100 real CIFAR-10 images, 1 epoch: 8, and 20 once STUDY_LR opens the
study protocol) into temporary folders: a few minutes on a busy 2-core machine.
"""
import contextlib
import dataclasses
import json

import nbformat
import pytest
import torch

from course_lib.engine import records as res
from course_lib.instructor import experiments as cli
from course_lib.models.names import parse_name
from course_lib.study import queue, report, specs, stats, tables


# --------------------------------------------------------------------------- profiles
@pytest.mark.parametrize("profile", specs.PROFILES)
def test_profiles_are_well_formed(profile):
    for chapter in specs.CHAPTERS:
        runs = specs.study(chapter, profile)
        assert runs, (chapter, profile)
        keys = [specs.run_key(s) for s in runs]
        dups = {s.label for s in runs if keys.count(specs.run_key(s)) > 1}
        # only the full-scale rows may be a Table I or recipe row itself (smoke, full)
        assert dups <= {"ResNeSt-14-2s1x64d", "ResNeSt-14-2s1x64d (report recipe)",
                        "ResNeSt-14-2s1x64d (book recipe)", specs.RECIPE_ROW}, dups
        for s in runs:
            parse_name(s.model)                                  # every model has a name create_model knows
            assert s.recipe in ("report", "book", "finetune")
            assert s.epochs >= 1
            if profile == "smoke":
                assert s.epochs == 1 and s.seed == 0 and s.images is not None and s.images <= 300
    table1 = [s for s in specs.study("06", profile) if s.group == "table"]
    assert sorted({s.label for s in table1}) == sorted(report.TABLE1)
    assert all(s.recipe == "report" for s in table1)
    assert {s.label for s in specs.study("07", profile)} == set(report.TABLE2)
    # the priority order of the brief: Table I seed 0 first, then the report-recipe full-scale run;
    # the book's recipe (full scale, then at Table I's scale) last
    order = [s for s in specs.all_specs(profile) if s.group not in specs.PROTOCOL_GROUPS]
    assert order[0].chapter == "06" and order[0].group == "table" and order[0].seed == 0
    assert [s.recipe for s in order if s.group in ("fullscale", "recipe")][-1] == "book"
    kinds = [(s.group, s.recipe) for s in order]
    last = [k for k in kinds if k in (("fullscale", "book"), ("recipe", "book"))]
    assert last and kinds[-len(last):] == last
    recipe = [s for s in specs.study("06", profile) if s.group == "recipe"]
    assert [(s.seed, s.images, s.epochs) for s in recipe] == [(s.seed, s.images, s.epochs) for s in table1
                                                              if s.label == "ResNeSt-14-2s1x64d"]


@pytest.mark.parametrize("profile", specs.PROFILES)
def test_study_protocol_waits_for_the_probe_then_lists_every_run(profile, monkeypatch):
    monkeypatch.setattr(specs, "STUDY_LR", None)
    first = [s for s in specs.protocol("06", profile) if s.group != "probe-1epoch"]
    assert [s.group for s in first] == ["probe"] * 3
    assert sorted(s.recipe_fields["lr"] for s in first) == sorted(specs.PROBE_LRS)
    scale = specs.STUDY_SCALES[profile]
    assert all(s.epochs == scale["epochs"] and s.recipe == "study" and s.images == scale["images"]
               and s.model_overrides == {"zero_init_last": False} for s in first)
    monkeypatch.setattr(specs, "STUDY_LR", 0.1)
    specs._KEYS.clear()
    runs = specs.protocol("06", profile)
    study = [s for s in runs if s.group == "study"]
    s = specs.STUDY_SCALES[profile]
    assert len(study) == 7 * len(s["seeds"]) + 3 * len(s["extra_seeds"])
    assert {x.label for x in study if x.seed in s["extra_seeds"]} <= set(specs.MAIN_ARMS)
    assert all(x.recipe_fields["lr"] == 0.1 and x.recipe_fields["grad_clip"] == specs.STUDY_CLIP
               and x.precision == specs.STUDY_NUMERICS[profile]["precision"] for x in study)
    keys = [specs.run_key(x) for x in runs]
    unclipped = [x for x in runs if x.group == "unclipped"]
    chosen = [x for x in runs if x.group == "probe" and x.recipe_fields["lr"] == 0.1]
    if profile == "cpu":
        # the first Table I runs, without clipping; the probe at the chosen rate is their seed 0 of PROBE_MODEL
        assert len(unclipped) == sum(map(len, specs.UNCLIPPED_RUNS.values()))
        assert all("grad_clip" not in x.recipe_fields and x.recipe_fields["lr"] == 0.1 for x in unclipped)
        twin = [x for x in unclipped if x.label == specs.PROBE_MODEL and x.seed == 0]
        assert len(chosen) == len(twin) == 1 and specs.run_key(chosen[0]) == specs.run_key(twin[0])
        assert len(set(keys)) == len(keys) - 1
    else:
        assert not unclipped and len(set(keys)) == len(keys)      # every run is its own configuration
    assert all(x.model_overrides == dict(specs.STUDY_INIT) for x in study)
    legacy = {specs.run_key(x) for ch in specs.CHAPTERS for x in specs.study(ch, profile)}
    assert not legacy & set(keys)                             # and none is a report-recipe run
    prec = [x for x in runs if x.group == "precision"]
    if profile == "cpu":
        assert sorted((x.precision, x.seed) for x in prec) == sorted((p, k) for p in ("bf16", "fp32") for k in range(4))
        assert [x.group for x in specs.all_specs("cpu", groups=["probe", "precision"])] == ["probe"] * 3 + ["precision"] * 8
        assert specs.all_specs("cpu")[0].group == "probe"
    with pytest.raises(ValueError, match="unknown group"):
        specs.all_specs(profile, groups=["tabel"])
    specs._KEYS.clear()


def test_cpu_study_is_all_images_ten_epochs_bf16():
    study = [s for s in specs.protocol("06", "cpu") if s.group in ("probe", "study")]
    assert all(s.images is None and s.precision == "bf16" and s.channels_last for s in study)
    assert all(s.epochs == 10 for s in study if s.group == "study")


def test_profile_scales():
    full = specs.study("06", "full")
    assert {s.seed for s in full if s.group == "table"} == {0, 1, 2}
    assert all(s.images is None and s.epochs == 20 for s in full)          # all 45,000 images, 20 epochs
    cpu = specs.study("06", "cpu")
    assert {(s.images, s.epochs) for s in cpu if s.group == "table"} == {(10_000, 10)}
    assert {s.seed for s in cpu if s.group == "table"} == {0, 1, 2}
    assert [(s.recipe, s.images, s.epochs) for s in cpu if s.group == "fullscale"] == \
        [("report", None, 20), ("book", None, 20)]
    assert {s.init for s in specs.study("08", "full") if s.group == "finetune"} == {"imagenet", "scratch"}
    assert {s.init for s in specs.study("08", "cpu") if s.group == "finetune"} == {"cifar10", "scratch"}
    scratch = [s for s in specs.study("08", "cpu") if s.group == "finetune" and s.init == "scratch"]
    assert all(s.recipe_fields["lr"] == specs.SCRATCH_LR for s in scratch)   # D2L: 10x the rate, from scratch
    with pytest.raises(ValueError, match="smoke"):
        specs.study("06", "gpu")
    with pytest.raises(ValueError, match="'06', '07', '08'"):
        specs.study("09", "cpu")


def test_results_folders_keep_smoke_out_of_results(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_RESULTS", raising=False)
    monkeypatch.setenv("COURSE_RUNS", str(tmp_path / "runs"))
    assert specs.results_dir("smoke") == tmp_path / "runs" / "results" / "smoke"   # git-ignored runs/
    assert specs.results_dir("cpu").parts[-2:] == ("results", "cpu")
    assert specs.results_dir("cpu", tmp_path) == tmp_path


# --------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("chapter", list(specs.CHAPTERS))
def test_chapter_parameters_validate(chapter):
    for profile in specs.PROFILES:
        params = cli.notebook_params(chapter, profile)
        assert params["PROFILE"] == profile and params["TRAIN"] is True
    nb = nbformat.read(str(cli.REPO / specs.CHAPTERS[chapter]), as_version=4)
    defaults = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(defaults) == 1 and 'PROFILE = "cpu"' in defaults[0].source and "TRAIN = False" in defaults[0].source


def test_wrong_parameter_name_or_value_stops_with_the_allowed_list(capsys):
    with pytest.raises(ValueError, match="no parameter 'EPOCHS'") as err:
        cli.notebook_params("06", "smoke", {"EPOCHS": 3})
    assert "PROFILE" in str(err.value) and "TRAIN" in str(err.value)       # the allowed names
    with pytest.raises(ValueError, match=r"(?s)PROFILE='gpu' is not allowed.*one of \['smoke', 'cpu', 'full'\]"):
        cli.notebook_params("07", "gpu")
    with pytest.raises(ValueError, match="TRAIN='maybe' is not a bool"):
        cli.notebook_params("08", "smoke", {"TRAIN": "maybe"})
    # the command line stops before papermill starts, with the same message
    assert cli.main(["run", "--profile", "smoke", "--chapter", "06", "-p", "EPOCHS", "3"]) == 2
    out = capsys.readouterr().err
    assert "no parameter 'EPOCHS'" in out and "PROFILE (default 'cpu', one of ['smoke', 'cpu', 'full'])" in out
    assert cli.main(["run", "--profile", "gpu"]) == 2
    assert "is not allowed" in capsys.readouterr().err
    assert cli.main(["train", "--profile", "gpu"]) == 2
    assert "unknown profile 'gpu'" in capsys.readouterr().err


# --------------------------------------------------------------------------- reading records
def test_collect_counts_running_records_as_missing(tmp_path):
    spec = specs.study("06", "smoke")[0]
    config = specs.run_config(spec)
    record = {"key": res.config_key(config), "config": config, "status": "running", "test_acc": 0.5,
              "history": [{"epoch": 1}], "params": 1}
    res.write_record(record, tmp_path)
    rows = tables.collect("06", "smoke", tmp_path)
    assert (rows.status == "missing").all()
    res.write_record({**record, "status": "finished"}, tmp_path)
    rows = tables.collect("06", "smoke", tmp_path)
    assert rows.status.tolist().count("finished") == 1
    assert f"{len(rows) - 1} of {len(rows)} runs" in tables.missing_text(rows, "smoke", "06")
    assert "seeds 0, 0" not in tables.missing_text(rows, "smoke", "06")     # one label per row of the chapter
    assert specs.command("smoke", "06") in tables.missing_text(rows, "smoke", "06")
    assert specs.command("cpu", "06", "unclipped", "study").endswith("--chapter 06 --group unclipped --group study")
    with pytest.raises(ValueError, match="no group \\['tabel'\\]"):
        specs.command("cpu", "06", "tabel")
    assert specs.command("smoke", "06", "unclipped").endswith("--chapter 06")     # a cpu-only group: left out


def test_collect_flags_finished_runs_whose_loss_exploded(tmp_path):
    # records written before the engine stored such runs as 'diverged' still say 'finished'
    spec = specs.study("07", "smoke")[0]
    config = specs.run_config(spec)
    base = {"key": res.config_key(config), "config": config, "status": "finished", "test_acc": 0.1,
            "test_loss": 2.4, "params": 1}
    res.write_record({**base, "history": [{"epoch": 1, "train_loss": 4.6}, {"epoch": 2, "train_loss": 3.1}]},
                     tmp_path)
    rows = tables.collect("07", "smoke", tmp_path)
    row = rows[rows.label == spec.label].iloc[0]
    assert "above ln(10)" in row.exploded
    assert tables.summary(rows).loc[spec.label, "loss exploded"] == "1 of 1"
    res.write_record({**base, "history": [{"epoch": 1, "train_loss": 4.6}, {"epoch": 2, "train_loss": 2.1}]},
                     tmp_path)
    rows = tables.collect("07", "smoke", tmp_path)
    assert rows[rows.label == spec.label].exploded.isna().all()
    assert tables.summary(rows).loc[spec.label, "loss exploded"] == "0 of 1"


def test_welch_and_compare():
    from scipy.stats import ttest_ind
    a, b = [60.0, 61.0, 62.0], [58.0, 58.5, 59.5]
    w = stats.welch(a, b)
    assert w["diff"] == pytest.approx(61 - 58.6667, abs=1e-3)
    assert w["p"] == pytest.approx(ttest_ind(a, b, equal_var=False).pvalue)
    assert stats.pooled_std(a, b) == pytest.approx(((1.0 + 0.5833333) / 2) ** 0.5, abs=1e-6)
    import pandas as pd
    rows = pd.DataFrame({"group": "table", "status": "finished", "label": ["A"] * 3 + ["B"] * 3 + ["C"],
                         "test_acc": [x / 100 for x in a + b + [0.5]]})
    table = tables.compare(rows, [("A", "B"), ("A", "C")])
    assert table.loc["A - B", "verdict"] == "larger than the seed spread (p < 0.05)"
    assert table.loc["A - C", "verdict"] == "needs >= 2 seeds of each"


# --------------------------------------------------------------------------- end to end
def test_smoke_chapter_runs_through_papermill(tmp_path, monkeypatch, real_data_root):
    monkeypatch.setenv("COURSE_DATA", str(real_data_root))
    monkeypatch.setenv("COURSE_RUNS", str(tmp_path / "runs"))       # checkpoints + executed notebooks
    monkeypatch.setenv("COURSE_PROGRESS", "0")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    results = tmp_path / "results"
    [outcome] = cli.run_notebooks("smoke", "06", directory=results)
    assert outcome["status"] == "ok", outcome["error"]
    records = [json.loads(p.read_text()) for p in results.glob("*.json") if p.name != queue.LATENCY_FILE]
    runs = specs.all_specs("smoke", "06")     # Table I, full-scale, recipe; the study protocol once STUDY_LR is set
    assert len(records) == len(runs) and all(r["status"] == "finished" for r in records)
    assert {r["config"]["images"] for r in records} == {100}
    assert set(json.loads((results / queue.LATENCY_FILE).read_text())) == set(report.TABLE1)
    assert "finished" in (results / "LOG.md").read_text()
    executed = nbformat.read(outcome["notebook"], as_version=4)
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "7 of 7 runs finished" in text
    # a second pass reuses every record and the latencies: nothing is trained or measured again
    log = (results / "LOG.md").read_text()
    again = queue.train("smoke", "06", results)
    assert len(again) == len(runs) and (results / "LOG.md").read_text() == log
    assert (tables.collect("06", "smoke", results).status == "finished").all()
    assert tables.missing("06", "smoke", results) == []


def test_a_run_being_trained_elsewhere_is_skipped(tmp_path, monkeypatch, capsys):
    import fcntl
    monkeypatch.setenv("COURSE_RUNS", str(tmp_path / "runs"))
    spec = specs.all_specs("smoke", "06")[0]
    with queue._run_lock(spec, "smoke") as mine:
        assert mine
        with open(specs.checkpoints_dir("smoke") / f"{specs.run_key(spec)}.lock", "w") as other:
            with pytest.raises(BlockingIOError):  # a second process could not take it
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with queue._run_lock(spec, "smoke") as mine:   # released
        assert mine


def test_table2_study_runs_every_network_and_a_second_seed_for_four():
    runs = [s for s in specs.all_specs("cpu", "07") if s.group == "study"]
    assert [s.label for s in runs if s.seed == 0] == list(report.TABLE2)
    assert sorted(s.label for s in runs if s.seed == 1) == sorted(specs.TABLE2_SECOND_SEED)
    assert all(s.images == 20_000 and s.epochs == 8 and s.precision == "bf16" for s in runs)
    assert all(s.recipe_fields["lr"] == specs.STUDY_LR for s in runs)
    # after Table I's first three seeds, before Table I's extra seeds
    order = [(s.chapter, s.group, s.seed) for s in specs.all_specs("cpu") if s.group == "study"]
    assert order.index(("07", "study", 0)) > order.index(("06", "study", 2))
    assert order.index(("07", "study", 1)) < order.index(("06", "study", 3))


@pytest.mark.parametrize("has_bf16, emulated, profile, trained", [
    (False, False, "cpu", ["fp32", "fp32 study"]), (False, True, "cpu", ["bf16", "fp32", "bf16 study"]),
    (True, False, "cpu", ["bf16", "fp32", "bf16 study"]), (False, False, "smoke", ["bf16", "fp32", "bf16 study"])])
def test_bf16_runs_wait_for_a_cpu_with_native_bf16(tmp_path, monkeypatch, capsys, has_bf16, emulated, profile,
                                                   trained):
    """A bf16 run waits for a machine with native bf16, except a study run from scratch: its fp32 version trains."""
    monkeypatch.setenv("COURSE_RUNS", str(tmp_path / "runs"))
    base = specs.all_specs("smoke", "06")[0]
    assert base.group != "study"
    runs = [dataclasses.replace(base, precision="bf16", channels_last=True),
            dataclasses.replace(base, precision="fp32", channels_last=False, seed=7),
            dataclasses.replace(base, group="study", precision="bf16", channels_last=True, seed=8)]
    called = []
    monkeypatch.setattr(queue, "all_specs", lambda *a, **k: runs)
    monkeypatch.setattr(queue, "cpu_supports_bf16", lambda: has_bf16)
    monkeypatch.setattr(queue, "pick_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(queue, "train_one", lambda s, *a, **k: called.append(
        s.precision + (" study" if s.group == "study" else "")) or {"status": "finished"})
    monkeypatch.setattr(queue, "measure_latencies", lambda *a, **k: None)
    queue.train(profile, None, tmp_path / "results", emulated_bf16=emulated)
    assert called == trained
    out = capsys.readouterr().out
    assert ("left for a machine with native bfloat16" in out) == (trained[0] == "fp32")
    assert ("in float32 (no native bfloat16 here)" in out) == (trained[0] == "fp32")


def test_a_bf16_study_run_is_found_in_its_fp32_version_when_it_has_no_record_of_its_own(tmp_path):
    study = next(s for s in specs.all_specs("cpu", "06") if s.group == "study" and s.seed == 1)
    alt = specs.fp32_fallback(study)
    assert alt.precision == "fp32" and alt.channels_last and specs.run_key(alt) != specs.run_key(study)
    assert specs.fp32_fallback(alt) is None
    seed0 = [s for s in specs.all_specs("cpu", "06") if s.group == "study" and s.seed == 0]
    assert seed0 and all(specs.fp32_fallback(s) is None for s in seed0)         # Table I's seed 0 stays in bf16
    assert all(specs.fp32_fallback(s) for s in specs.all_specs("cpu", "07") if s.group == "study")
    assert all(specs.fp32_fallback(s) is None for s in specs.all_specs("cpu", "06") if s.group != "study")
    cfg = specs.run_config(alt)
    rec = {"schema": 1, "key": specs.run_key(alt), "config": cfg, "status": "running", "test_acc": None}
    res.write_record(rec, tmp_path)
    assert specs.find(study, tmp_path) is None                     # an unfinished fp32 version does not count
    res.write_record({**rec, "status": "finished", "test_acc": 0.8}, tmp_path)
    assert specs.find(study, tmp_path)["test_acc"] == 0.8
    res.write_record({"schema": 1, "key": specs.run_key(study), "config": specs.run_config(study),
                      "status": "finished", "test_acc": 0.81}, tmp_path)
    assert specs.find(study, tmp_path)["test_acc"] == 0.81                            # its own record wins


def test_a_transfer_chain_falls_back_to_float32_throughout():
    """Pretraining and fine-tunes have float32 versions; a fine-tune's starts from its source's float32 version."""
    chain = [s for s in specs.all_specs("cpu", "08") if s.precision == "bf16"]
    assert {s.group for s in chain} == {"transfer-pretrain", "transfer", "transfer-table1"}
    for s in chain:
        alt = specs.fp32_fallback(s)
        assert alt.precision == "fp32" and dataclasses.replace(alt, precision="bf16", source=s.source) == s
        assert (alt.source is None) == (s.source is None) and (alt.source is None or alt.source.precision == "fp32")
        assert specs.run_key(alt) != specs.run_key(s)         # the weights it starts from are named in its key
    twins = {s.model: specs.run_key(s) for s in specs.all_specs("cpu", "06") if s.group == "precision-study"}
    seed0 = [s for s in chain if s.group == "transfer-table1" and s.seed == 0]
    assert seed0 and all(specs.run_key(specs.fp32_fallback(s).source) == twins[s.model] for s in seed0)
    seed1 = next(s for s in chain if s.group == "transfer-table1" and s.seed == 1)
    assert specs.fp32_fallback(seed1).source == specs.fp32_fallback(seed1.source)


def test_precision_twins_differ_from_their_study_runs_in_precision_only():
    runs = specs.all_specs("cpu", "06")
    study = {(s.model, s.seed): s for s in runs if s.group == "study"}
    twins = [s for s in runs if s.group == "precision-study"]
    assert sorted(s.model for s in twins) == sorted(report.TABLE1) and {s.seed for s in twins} == {0}
    for t in twins:
        s = study[(t.model, t.seed)]
        assert (t.precision, s.precision) == ("fp32", "bf16") and t.channels_last and s.channels_last
        assert dataclasses.replace(t, group=s.group, priority=s.priority, precision=s.precision) == s
    first_seed1 = min(i for i, s in enumerate(runs) if s.group == "study" and s.seed == 1)
    assert max(i for i, s in enumerate(runs) if s.group == "study" and s.seed == 0) < \
        min(runs.index(t) for t in twins) < max(runs.index(t) for t in twins) < first_seed1


def test_a_run_taken_over_from_a_stopped_worker_follows_the_same_bf16_rule(tmp_path, monkeypatch):
    """The take-over loop decides as the first pass does: left, or trained in float32, never emulated bf16."""
    monkeypatch.setenv("COURSE_RUNS", str(tmp_path / "runs"))
    base = specs.all_specs("smoke", "06")[0]
    runs = [dataclasses.replace(base, precision="bf16", channels_last=True, seed=6),
            dataclasses.replace(base, group="study", precision="bf16", channels_last=True, seed=8)]
    busy = set(runs)                                     # another worker holds both on the first pass

    @contextlib.contextmanager
    def claim(s, *a, **k):
        yield (queue.BUSY, None) if s in busy else (queue.TRAIN, None)
    called = []
    monkeypatch.setattr(queue, "_claim", claim)
    monkeypatch.setattr(queue, "all_specs", lambda *a, **k: runs)
    monkeypatch.setattr(queue, "cpu_supports_bf16", lambda: False)
    monkeypatch.setattr(queue, "pick_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(queue, "POLL_SECONDS", 0)
    monkeypatch.setattr(queue, "measure_latencies", lambda *a, **k: None)

    def train_one(s, *a, **k):
        called.append((s.seed, s.precision))
        return {"status": "finished"}
    monkeypatch.setattr(queue, "train_one", train_one)
    monkeypatch.setattr(queue.time, "sleep", lambda s: busy.clear())   # the other worker dies meanwhile
    queue.train("cpu", None, tmp_path / "results", wait=True, worker="w")
    assert called == [(8, "fp32")]
