"""Values are checked for type and range where they enter (issue 15, section 1): a record never names a
value that was read otherwise (images=1e9 that trained on fewer), and `run --profile` cannot be contradicted."""
import pytest

from course_lib.engine.data import DataConfig, load_data
from course_lib.engine.runner import run
from course_lib.instructor import experiments


@pytest.mark.parametrize("fields, match", [
    (dict(images=1e9), r"images must be a whole number >= 2, got 1000000000.0 \(float\)"),
    (dict(images=10.7), "images must be a whole number"),
    (dict(images="100"), r"images must be a whole number .*\(write 100\)"),
    (dict(images=1), "images must be >= 2"),
    (dict(dataset="hotdog", image_size=0), r"image_size must be >= 1, got 0 \(or None: the images' own size\)"),
    (dict(dataset="hotdog", image_size=True), "image_size must be a whole number"),
    (dict(image_size=32.0), "image_size must be a whole number"),
    (dict(test_images=-5), "test_images must be >= 1"),
    (dict(val_size=0.5), "val_size must be a whole number"),
    (dict(split_seed=1.5), "split_seed must be a whole number"),
])
def test_data_values_are_checked_where_they_enter(fields, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        DataConfig(**fields)
    with pytest.raises(ValueError, match=match):     # run() refuses before it writes anything
        run("ResNeSt-14-2s1x64d", "book", epochs=1, results_dir=tmp_path, runs_dir=tmp_path, **fields)
    assert list(tmp_path.iterdir()) == []


def test_more_images_than_the_split_holds_is_refused_not_recorded(real_data_root):
    with pytest.raises(ValueError, match=r"images=1,000,000,000 but this split has 1,598 images"):
        DataConfig(dataset="hotdog", images=10**9).load()
    with pytest.raises(ValueError, match=r"test_images=401 but this split has 400 images"):
        load_data("hotdog", test_images=401)
    with pytest.raises(ValueError, match=r"images=2,000 but this split has 1,\d{3} images"):
        load_data("hotdog", images=2000, val_size=0, folds=5, fold=0)
    assert len(load_data("hotdog", images=1598)["train"]) == 1598      # exactly all is fine


@pytest.mark.parametrize("param, message", [
    (("PROFILE", "cpu"), r"-p PROFILE cpu contradicts `run --profile smoke`.*Use --profile"),
    (("TRAIN", "false"), r"-p TRAIN false contradicts `run --profile smoke`.*TRAIN=True"),
    (("TRAIN", "maybe"), r"TRAIN='maybe' is not a bool"),
])
def test_run_cannot_be_told_another_profile_or_not_to_train(param, message, capsys):
    with pytest.raises(ValueError, match=message):
        experiments.notebook_params("06", "smoke", dict([param]))
    assert experiments.main(["run", "--profile", "smoke", "--chapter", "06", "-p", *param]) == 2
    assert "papermill" not in capsys.readouterr().out                 # nothing was executed
    assert experiments.notebook_params("06", "smoke", {"PROFILE": "smoke", "TRAIN": "True"})["PROFILE"] == "smoke"


def test_a_non_integer_block_width_is_refused():
    from course_lib import create_model
    with pytest.raises(ValueError, match=r"width must be a whole number >= 1, got 64.5"):
        create_model("ResNeSt-14-2s1x64d", num_classes=10, width=64.5)


def test_open_chapter_refuses_a_train_flag_that_is_not_a_bool(tmp_path):
    from course_lib.study import tables
    for bad in ("false", "False", 0, None):
        with pytest.raises(ValueError, match="TRAIN must be True or False"):
            tables.open_chapter("06", "smoke", bad, str(tmp_path))
