"""course_lib.engine.download against a real HTTP server on loopback (started here, stopped here).

The server serves archives that the tests build, in the official layouts; one route
announces more bytes than it sends and closes the connection, as a dropped link does.
"""
import hashlib
import multiprocessing
import queue
import zipfile
from pathlib import Path

import pytest
from helpers_http import hotdog_zip, server  # noqa: F401 (fixture)
from helpers_wait import Watch

from course_lib.engine.download import DownloadError, fetch, unpack_zip


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def test_fetch_checks_the_sha1_and_reuses_a_good_copy(server, tmp_path):
    base, routes = server
    body = b"x" * 3_000_000
    routes["/files/a.bin"] = body
    sha1 = hashlib.sha1(body).hexdigest()
    path = fetch(f"{base}/files/a.bin", tmp_path, sha1=sha1)
    assert path.read_bytes() == body and _leftovers(tmp_path) == ["a.bin"]
    routes["/files/a.bin"] = b"changed"          # a good copy on disk is not fetched again
    assert fetch(f"{base}/files/a.bin", tmp_path, sha1=sha1).read_bytes() == body


def test_wrong_checksum_is_refused_and_nothing_is_left(server, tmp_path):
    base, routes = server
    routes["/files/b.zip"] = b"not the file you want"
    with pytest.raises(DownloadError, match=r"b\.zip: the file arrived with sha1 .* should be 0{40}"):
        fetch(f"{base}/files/b.zip", tmp_path, sha1="0" * 40)
    assert _leftovers(tmp_path) == []


def test_dropped_connection_is_named_and_nothing_is_left(server, tmp_path):
    base, routes = server
    routes["/drop/c.zip"] = b"y" * 2_000_000
    with pytest.raises(DownloadError, match=r"(dropped after 1,000,000 of 2,000,000 bytes|connection broke)"):
        fetch(f"{base}/drop/c.zip", tmp_path)
    assert _leftovers(tmp_path) == []


def test_missing_file_and_unreachable_server_say_what_happened(server, tmp_path):
    base, _ = server
    with pytest.raises(DownloadError, match="404"):
        fetch(f"{base}/nothing/here.zip", tmp_path)
    with pytest.raises(DownloadError, match="could not connect"):
        fetch("http://127.0.0.1:9/x.zip", tmp_path, timeout=5)   # port 9 (discard): nobody listens
    assert _leftovers(tmp_path) == []


def test_unpack_is_atomic_and_checks_the_layout(tmp_path):
    archive = tmp_path / "hotdog.zip"
    archive.write_bytes(hotdog_zip())
    target = unpack_zip(archive, tmp_path / "out" / "hotdog", inner="hotdog")
    assert sorted(p.name for p in (target / "train").iterdir()) == ["hotdog", "not-hotdog"]

    def refuse(folder):
        raise ValueError("wrong layout")
    with pytest.raises(ValueError, match="wrong layout"):
        unpack_zip(archive, tmp_path / "other" / "hotdog", inner="hotdog", check=refuse)
    assert _leftovers(tmp_path / "other") == []                # no half-unpacked folder
    with pytest.raises(ValueError, match="no folder 'hotdog/nothing'"):
        unpack_zip(archive, tmp_path / "third" / "x", inner="hotdog/nothing")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="not a readable zip"):
        unpack_zip(bad, tmp_path / "fourth" / "x")
    assert _leftovers(tmp_path / "fourth") == []


def test_entries_outside_the_folder_are_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("../escaped.txt", "boo")
    with pytest.raises(ValueError, match="outside its folder"):
        unpack_zip(archive, tmp_path / "out" / "x")
    assert not (tmp_path / "escaped.txt").exists()


def _fetch_and_unpack(url, folder, sha1, out):
    try:
        archive = fetch(url, folder, sha1=sha1)
        target = unpack_zip(archive, Path(folder) / "hotdog", inner="hotdog")
        out.put(("ok", len(list(target.rglob("*.png")))))
    except Exception as err:  # noqa: BLE001 - report to the parent
        out.put(("error", repr(err)))


def test_three_processes_fetching_and_unpacking_at_once_all_succeed(server, tmp_path):
    base, routes = server
    body = hotdog_zip(n_per_class=5)
    routes["/files/hotdog.zip"] = body
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_fetch_and_unpack,
                         args=(f"{base}/files/hotdog.zip", str(tmp_path), hashlib.sha1(body).hexdigest(), out))
             for _ in range(3)]
    for p in procs:
        p.start()
    watch, results = Watch([p.pid for p in procs]), []
    while len(results) < len(procs):            # no time limit: only a hang or a silent death fails
        try:
            results.append(out.get(timeout=1))
        except queue.Empty:
            assert any(p.is_alive() for p in procs) or not out.empty(), [p.exitcode for p in procs]
            assert watch.moved(), watch.hang("three processes fetching one archive")
    for p in procs:
        p.join()
    assert results == [("ok", 20)] * 3
    assert _leftovers(tmp_path) == ["hotdog", "hotdog.zip"]
