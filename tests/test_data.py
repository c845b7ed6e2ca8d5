"""course_lib.engine.data: the real data sets load, splits are fixed, and a missing set says what to do."""
import tarfile
from pathlib import Path

import pytest
import torch

from course_lib.engine import data


def test_cifar10_sizes_and_classes(real_data_root):
    train = data.load_cifar10("train+val", root=real_data_root)
    test = data.load_cifar10("test", root=real_data_root)
    assert (len(train), len(test)) == (50_000, 10_000)
    assert train.images.shape == (50_000, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.bincount().tolist() == [5000] * 10
    assert test.labels.bincount().tolist() == [1000] * 10
    assert train.classes[0] == "airplane" and train.classes[9] == "truck"


def test_validation_split_is_fixed_and_disjoint_from_train(real_data_root):
    a = data.load_cifar10("train", root=real_data_root, val_size=5000, split_seed=0)
    v = data.load_cifar10("val", root=real_data_root, val_size=5000, split_seed=0)
    assert (len(a), len(v)) == (45_000, 5_000)
    tr_idx, val_idx = data.split_indices(50_000, 5000, seed=0)
    assert set(tr_idx.tolist()).isdisjoint(val_idx.tolist())
    again, _ = data.split_indices(50_000, 5000, seed=0)
    assert torch.equal(tr_idx, again)
    other, _ = data.split_indices(50_000, 5000, seed=1)
    assert not torch.equal(tr_idx, other)


def test_limit_is_class_balanced(real_data_root):
    small = data.load_cifar10("train", root=real_data_root, limit=1000)
    assert len(small) == 1000
    assert small.labels.bincount().tolist() == [100] * 10


def test_cached_cifar_is_read_not_decoded_again(real_data_root, monkeypatch):
    """Later loads read the decoded tensor file (what makes them fast), checked without a clock."""
    data.load_cifar10("test", root=real_data_root)  # make sure the cache exists
    data._LOADED.clear()

    def decode(*args, **kwargs):
        raise AssertionError("CIFAR-10 was decoded again instead of read from the cache")
    for name in ("_cifar_from_tar", "_cifar_from_folder", "_cifar_from_torchvision", "_decode_jpeg_tree"):
        monkeypatch.setattr(data, name, decode)
    assert len(data.load_cifar10("train", root=real_data_root)) == 45_000


def test_hotdog_sizes(real_data_root):
    train = data.load_hotdog("train", root=real_data_root)
    test = data.load_hotdog("test", root=real_data_root)
    assert (len(train), len(test)) == (1598, 400)
    assert train.classes == ["hotdog", "not-hotdog"]


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "env"))
    assert data.data_root() == (tmp_path / "env").resolve()
    assert data.data_root(tmp_path / "arg") == (tmp_path / "arg").resolve()


@pytest.mark.parametrize("loader", [
    lambda root: data.load_cifar10("train", root=root, download=False),
    lambda root: data.load_hotdog("train", root=root, download=False),
])
def test_missing_data_set_gives_a_clear_error(tmp_path, loader):
    with pytest.raises(data.DatasetNotFoundError) as err:
        loader(tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and "COURSE_DATA" in msg and "http" in msg


def test_failed_download_is_reported_without_a_deep_trace(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")
    monkeypatch.setattr(data, "_download_cifar", offline)
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(data.DatasetNotFoundError, match="network is unreachable") as err:
        data.load_cifar10("train", root=tmp_path / "empty", download=True)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_damaged_archive_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "hotdog64.tar.gz"
    with tarfile.open(bad, "w:gz"):
        pass
    with pytest.raises(ValueError, match="sha256"):
        data.load_hotdog("train", root=tmp_path)


def test_bad_split_name():
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_cifar10("validation")


def test_prepare_checks_both_caches_before_the_book_is_built(monkeypatch):
    from course_lib.engine import data
    seen = []
    monkeypatch.setattr(data, "load_cifar10", lambda split, root=None: seen.append(("cifar", split, root)))
    monkeypatch.setattr(data, "hotdog_dir", lambda root=None: seen.append(("hotdog", root)))
    data.prepare("/some/root")
    assert seen == [("cifar", "test", "/some/root"), ("hotdog", "/some/root")]
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    book = makefile.split("\nbook:", 1)[1].split("\n\n", 1)[0]
    assert book.index("-m course_lib.engine.data") < book.index("jupyter-book build")
