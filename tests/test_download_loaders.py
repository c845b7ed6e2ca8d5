"""The public loaders' downloads end to end, against a real HTTP server on loopback (helpers_http).

``load_hotdog`` and ``load_cifar10`` start from an empty data root and an empty
``COURSE_CACHE``; the server serves archives built here in the official formats (D2L's
hotdog.zip layout; CIFAR-10's ``cifar-10-python.tar.gz`` with its pickled batches). Only the
addresses and checksums are pointed at them: the download, checksum, unpack and load are the
code readers run. A wrong checksum and a connection that drops halfway each end in a
DatasetNotFoundError that names the address and what to do, with nothing half-done left behind.
"""
import hashlib

import numpy as np
import pytest
import torch
from helpers_http import cifar10_tar_gz, hotdog_zip, leftovers, server  # noqa: F401 (fixture)

from course_lib.engine import data


@pytest.fixture
def empty(tmp_path, monkeypatch):
    """(empty data root, empty cache dir), with no proxy between the loaders and loopback."""
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COURSE_DATA", raising=False)
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "root").mkdir()
    return tmp_path / "root", tmp_path / "cache"


# --------------------------------------------------------------------------- Hotdog
@pytest.fixture(scope="module")
def hotdog(server):
    body = hotdog_zip(n_per_class=3)
    base, routes = server
    routes["/d2l/hotdog.zip"] = routes["/drop/hotdog.zip"] = body
    return base, hashlib.sha1(body).hexdigest()


def test_hotdog_is_downloaded_checked_unpacked_and_loaded(hotdog, empty, monkeypatch):
    base, sha1 = hotdog
    root, cache = empty
    monkeypatch.setattr(data, "HOTDOG_URL", f"{base}/d2l/hotdog.zip")
    monkeypatch.setattr(data, "HOTDOG_SHA1", sha1)
    train = data.load_hotdog("train", root=root)
    test = data.load_hotdog("test", root=root)
    assert train.classes == ["hotdog", "not-hotdog"] and len(train) == len(test) == 6
    assert sorted(train.targets) == [0, 0, 0, 1, 1, 1]
    assert train[0][0].size == (20, 24)                      # a real image, decoded
    assert leftovers(root) == []                             # the data root is only read
    assert [p for p in leftovers(cache) if "/" not in p] == [".hotdog.manifest.json", "downloads", "hotdog"]  # + the unpacked copy's checksums
    assert leftovers(cache / "downloads") == ["hotdog.zip"]  # no temporary file
    monkeypatch.setattr(data, "HOTDOG_URL", f"{base}/gone/hotdog.zip")   # a 404 now:
    assert len(data.load_hotdog("train", root=root)) == 6    # the unpacked copy is reused


def test_hotdog_with_a_wrong_checksum_is_refused_by_name(hotdog, empty, monkeypatch):
    base, _ = hotdog
    root, cache = empty
    url = f"{base}/d2l/hotdog.zip"
    monkeypatch.setattr(data, "HOTDOG_URL", url)
    monkeypatch.setattr(data, "HOTDOG_SHA1", "0" * 40)
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.load_hotdog("train", root=root)
    msg = str(err.value)
    assert f"The download from {url} did not work" in msg and "should be " + "0" * 40 in msg
    assert "Fix: try again" in msg and "hotdog.zip" in msg and "COURSE_DATA" in msg
    assert leftovers(cache) == ["downloads"]                 # no archive, no half-unpacked folder


def test_hotdog_over_a_dropped_connection_leaves_nothing_and_a_retry_works(hotdog, empty, monkeypatch):
    base, sha1 = hotdog
    root, cache = empty
    url = f"{base}/drop/hotdog.zip"
    monkeypatch.setattr(data, "HOTDOG_URL", url)
    monkeypatch.setattr(data, "HOTDOG_SHA1", sha1)
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.load_hotdog("train", root=root)
    msg = str(err.value)
    assert url in msg and ("dropped after" in msg or "broke" in msg) and "Fix: try again" in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__     # no deep trace
    assert leftovers(cache) == ["downloads"]
    monkeypatch.setattr(data, "HOTDOG_URL", f"{base}/d2l/hotdog.zip")       # the link is back
    assert len(data.load_hotdog("test", root=root)) == 6


def test_a_missing_hotdog_names_the_address_to_download(empty, monkeypatch):
    root, _ = empty
    with pytest.raises(data.DatasetNotFoundError, match="hotdog.zip") as err:
        data.load_hotdog("train", root=root, download=False)
    assert data.HOTDOG_URL in str(err.value) and "download=True" in str(err.value)


# --------------------------------------------------------------------------- CIFAR-10
@pytest.fixture(scope="module")
def cifar(server):
    body, content = cifar10_tar_gz(per_batch=2)
    base, routes = server
    routes["/kriz/cifar-10-python.tar.gz"] = routes["/drop/cifar-10-python.tar.gz"] = body
    return base, hashlib.md5(body).hexdigest(), content


def _point_torchvision_at(monkeypatch, url: str, tgz_md5: str, content: dict):
    from torchvision.datasets import CIFAR10
    files = content["files"]
    monkeypatch.setattr(CIFAR10, "url", url)
    monkeypatch.setattr(CIFAR10, "tgz_md5", tgz_md5)
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{b}", files[f"data_batch_{b}"]] for b in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", files["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": files["batches.meta"]})


def _as_tensor(rows: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rows.reshape(-1, 3, 32, 32).copy())


def test_cifar10_is_downloaded_checked_unpacked_and_loaded(cifar, empty, monkeypatch):
    base, md5, content = cifar
    root, cache = empty
    _point_torchvision_at(monkeypatch, f"{base}/kriz/cifar-10-python.tar.gz", md5, content)
    train = data.load_cifar10("train+val", root=root)
    test = data.load_cifar10("test", root=root)
    assert len(train) == 10 and len(test) == 2 and train.classes == data.CIFAR10_CLASSES
    assert torch.equal(train.images, _as_tensor(content["train"][0]))       # the very pixels served
    assert train.labels.tolist() == content["train"][1] and test.labels.tolist() == content["test"][1]
    assert torch.equal(test.images, _as_tensor(content["test"][0]))
    assert leftovers(root) == []
    top = [p for p in leftovers(cache) if "/" not in p]
    assert top == ["cifar-10-batches-py", "cifar10-uint8.pt"]               # no archive, no temporary folder
    assert data.data_source("cifar10", root) == {"where": "official download"}


def test_cifar10_with_a_wrong_checksum_is_refused_by_name(cifar, empty, monkeypatch):
    base, _, content = cifar
    root, cache = empty
    url = f"{base}/kriz/cifar-10-python.tar.gz"
    _point_torchvision_at(monkeypatch, url, "0" * 32, content)
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.load_cifar10("test", root=root)
    msg = str(err.value)
    assert f"The download from {url} did not work" in msg and "md5 check" in msg
    assert "Fix: try again" in msg and "cifar-10-batches-py" in msg
    assert leftovers(cache) == []


def test_cifar10_over_a_dropped_connection_leaves_nothing_and_a_retry_works(cifar, empty, monkeypatch):
    base, md5, content = cifar
    root, cache = empty
    url = f"{base}/drop/cifar-10-python.tar.gz"
    _point_torchvision_at(monkeypatch, url, md5, content)
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.load_cifar10("test", root=root)
    msg = str(err.value)
    assert f"The download from {url} did not work" in msg and "Fix: try again" in msg
    assert "broke off" in msg or "md5 check" in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert leftovers(cache) == []
    _point_torchvision_at(monkeypatch, f"{base}/kriz/cifar-10-python.tar.gz", md5, content)
    assert len(data.load_cifar10("test", root=root)) == 2
