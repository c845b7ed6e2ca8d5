"""Data sets and their caches under faults (issue 15, sections 1-2), with real files and processes:
class lists fixed by the data set, caches that carry a fingerprint of their source and a checksum of
themselves, stale `.partial` folders, and three processes using CIFAR-10 and Hotdog for the first time."""
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from course_lib.engine import data
from helpers_wait import communicate_all

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh(tmp_path, monkeypatch):
    """A temporary cache dir, and no data set remembered by this process."""
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    data._LOADED.clear()
    data._HOTDOG.clear()
    yield
    data._LOADED.clear()
    data._HOTDOG.clear()


@pytest.fixture(scope="module")
def small_cifar(real_data_root, tmp_path_factory):
    """A CIFAR-10 class-folder copy with 2 real images per class and split (from the real archive)."""
    root = tmp_path_factory.mktemp("cifar_root")
    taken = {}
    with tarfile.open(real_data_root / "cifar10-jpeg.tar.gz") as tar:
        for m in tar:
            parts = Path(m.name).parts
            if m.isfile() and len(parts) >= 3 and taken.get(parts[-3:-1], 0) < 2:
                taken[parts[-3:-1]] = taken.get(parts[-3:-1], 0) + 1
                dest = root / "cifar10-jpeg" / parts[-3] / parts[-2] / parts[-1]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tar.extractfile(m).read())
            if len(taken) == 20 and all(v == 2 for v in taken.values()):
                break
    return root


def _copy(src: Path, tmp_path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(src, root)
    return root


def _hotdog_root(real_data_root, tmp_path) -> Path:
    """A data root holding an unpacked hotdog64/ folder, copied from the real archive."""
    root = tmp_path / "hroot"
    root.mkdir()
    with tarfile.open(real_data_root / "hotdog64.tar.gz") as tar:
        tar.extractall(root, filter="data")
    return root


# --------------------------------------------------------------------------- class lists fixed by the data set
def test_a_test_folder_missing_a_class_is_refused_not_relabelled(real_data_root, tmp_path):
    root = _hotdog_root(real_data_root, tmp_path)
    shutil.rmtree(root / "hotdog64" / "test" / "hotdog")
    (root / "hotdog64" / "test" / "hotdog").mkdir()     # the folder is there, empty
    with pytest.raises(ValueError, match=r"hotdog64/test has no images of the class\(es\) hotdog"):
        data.load_hotdog("test", root=root)
    with pytest.raises(ValueError, match=r"hotdog64/test has no images"):       # nor trained on, half-usable
        data.load_hotdog("train", root=root)


def test_a_train_folder_with_one_class_and_extra_folders(real_data_root, tmp_path):
    root = _hotdog_root(real_data_root, tmp_path)
    train = root / "hotdog64" / "train"
    image = train / "hotdog" / sorted(os.listdir(train / "hotdog"))[0]
    (train / "aaa-extra").mkdir()                        # would have become class 0 before
    shutil.copy(image, train / "aaa-extra" / "x.jpg")
    hidden = train / "hotdog" / ".hotdog.x1.partial"     # a stale unpack folder inside a class folder
    hidden.mkdir()
    shutil.copy(image, hidden / "extra.jpg")
    folder = data.load_hotdog("train", root=root)
    assert folder.class_to_idx == {"hotdog": 0, "not-hotdog": 1} and len(folder) == 1598
    shutil.rmtree(train / "not-hotdog")
    with pytest.raises(ValueError, match=r"train has no images of the class\(es\) not-hotdog"):
        data.load_hotdog("train", root=root)


def test_a_cifar_folder_with_9_classes_is_refused(small_cifar, tmp_path):
    root = _copy(small_cifar, tmp_path)
    shutil.rmtree(root / "cifar10-jpeg" / "train" / "truck")
    with pytest.raises(ValueError, match=r"cifar10-jpeg/train has no images of the class\(es\) truck"):
        data.load_cifar10("test", root=root)


# --------------------------------------------------------------------------- caches: fingerprint + checksum
def test_the_cifar_cache_follows_its_source(small_cifar, tmp_path, capfd):
    root = _copy(small_cifar, tmp_path)
    assert len(data.load_cifar10("test", root=root)) == 20
    extra = root / "cifar10-jpeg" / "test" / "cat" / "zz-extra.jpg"
    shutil.copy(next((root / "cifar10-jpeg" / "test" / "dog").iterdir()), extra)
    data._LOADED.clear()
    assert len(data.load_cifar10("test", root=root)) == 21            # not the old tensors
    assert "tensor cache" in capfd.readouterr().err


@pytest.mark.parametrize("how", ["flip", "truncate", "empty", "labels"])
def test_a_damaged_cifar_cache_is_rebuilt_with_a_notice(small_cifar, tmp_path, capfd, how):
    root = _copy(small_cifar, tmp_path)
    first = data.load_cifar10("train+val", root=root)
    cache = Path(os.environ["COURSE_CACHE"]) / "cifar10-uint8.pt"
    raw = bytearray(cache.read_bytes())
    if how == "flip":      # pixels inside the stored tensors
        raw[len(raw) // 2: len(raw) // 2 + 16] = bytes(b ^ 0xFF for b in raw[len(raw) // 2: len(raw) // 2 + 16])
    elif how == "truncate":
        raw = raw[: len(raw) // 3]
    elif how == "empty":
        raw = b""
    if how == "labels":    # a well-formed file whose labels were changed
        blob = torch.load(cache, weights_only=True)
        blob["splits"]["train"][1][0] = 9 - blob["splits"]["train"][1][0]
        torch.save(blob, cache)
    else:
        cache.write_bytes(bytes(raw))
    capfd.readouterr()
    for _ in range(2):     # the first load repairs, the next one reads the repaired cache silently
        data._LOADED.clear()
        again = data.load_cifar10("train+val", root=root)
        assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    err = capfd.readouterr().err
    assert err.count(f"the CIFAR-10 tensor cache {cache}") == 1 and "decoding the images again" in err
    assert "Traceback" not in err and "weights_only" not in err


def test_a_changed_or_stale_hotdog_unpack_is_unpacked_again(real_data_root, tmp_path, capfd):
    cache = Path(os.environ["COURSE_CACHE"])
    folder = data.hotdog_dir(real_data_root)
    assert folder == cache / "hotdog64"
    image = sorted((folder / "train" / "hotdog").iterdir())[0]
    good = image.read_bytes()
    image.write_bytes(bytes(b ^ 0xFF for b in good[:32]) + good[32:])          # flipped bytes
    partial = folder / "train" / "hotdog" / ".hotdog64.abc.partial"            # a stale folder inside
    partial.mkdir()
    shutil.copy(image, partial / "one-more.jpg")
    leftover = cache / ".hotdog64.xyz.partial"                                 # a killed unpack's folder
    leftover.mkdir()
    (leftover / "half.jpg").write_bytes(b"x")
    capfd.readouterr()
    assert data.hotdog_dir(real_data_root) == folder
    assert "is damaged" in capfd.readouterr().err
    assert image.read_bytes() == good and not partial.exists() and not leftover.exists()
    assert len(data.load_hotdog("train", root=real_data_root)) == 1598
    assert "unpacking" not in capfd.readouterr().err                          # verified, not redone


# --------------------------------------------------------------------------- three processes at once
LOAD = {"cifar": "from course_lib.engine.data import load_cifar10, tensor_sha256\n"
                 "d = load_cifar10('test')\nprint(len(d), tensor_sha256(d.images, d.labels))",
        "hotdog": "from course_lib.engine.data import hotdog_tensors, tensor_sha256\n"
                  "d = hotdog_tensors('train')\nprint(len(d), tensor_sha256(d.images, d.labels))"}


@pytest.mark.parametrize("what", ["cifar", "hotdog"])
def test_three_processes_use_a_data_set_for_the_first_time_at_once(real_data_root, tmp_path, what):
    env = dict(os.environ, COURSE_CACHE=str(tmp_path / "shared-cache"), COURSE_DATA=str(real_data_root),
               OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", LOAD[what]], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = communicate_all(procs)                                           # no time limit, only a hang fails
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-800:] for _, err in outs]
    assert len({out for out, _ in outs}) == 1                               # the same data in all three
    leftovers = [p.name for p in (tmp_path / "shared-cache").iterdir() if p.name.endswith((".tmp", ".partial"))]
    assert leftovers == []


def test_a_read_only_cache_is_read_without_a_lock(tmp_path, monkeypatch):
    """The grading sandbox mounts the cache read-only: taking a lock there must not fail the reader."""
    import builtins
    import errno
    from course_lib.engine.download import file_lock
    real_open = builtins.open

    def read_only(path, mode="r", *args, **kwargs):
        if str(path).endswith(".lock") and any(c in mode for c in "aw+"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, mode, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", read_only)
    entered = False
    with file_lock(tmp_path / ".x.lock"):
        entered = True
    assert entered and not (tmp_path / ".x.lock").exists()
    monkeypatch.setattr(builtins, "open", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError, match="I/O error"):     # other failures still surface
        with file_lock(tmp_path / ".y.lock"):
            pass
