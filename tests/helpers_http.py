"""Helpers of the download tests: a real HTTP server on loopback, and archives in the official formats.

The server is started and stopped by the test module that uses the ``server`` fixture; it
listens on 127.0.0.1 only, on a port the system picks. A route under ``/drop/`` announces
the whole body in Content-Length, sends half of it and closes the connection, as a dropped
link does.
"""
import hashlib
import io
import pickle
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest


class _Handler(BaseHTTPRequestHandler):
    routes: dict = {}

    def do_GET(self):  # noqa: N802 - http.server's name
        body = self.routes.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        drop = self.path.startswith("/drop/")
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if drop else body)
        if drop:
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    """(base address, routes): put bytes at ``routes['/path']`` and fetch ``base + '/path'``."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler.routes
    finally:
        httpd.shutdown()
        httpd.server_close()
        _Handler.routes.clear()


def leftovers(folder: Path) -> list[str]:
    """What a folder holds, lock files aside (recursively, as relative paths)."""
    folder = Path(folder)
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.name.endswith(".lock"))


def hotdog_zip(n_per_class: int = 2) -> bytes:
    """A zip in the layout of D2L's hotdog.zip: hotdog/{train,test}/{hotdog,not-hotdog}/N.png."""
    from PIL import Image
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for split in ("train", "test"):
            for k, cls in enumerate(("hotdog", "not-hotdog")):
                for i in range(n_per_class):
                    img = io.BytesIO()
                    Image.new("RGB", (20 + i, 24), (200 * k, 40 * i, 90)).save(img, format="PNG")
                    z.writestr(f"hotdog/{split}/{cls}/{i}.png", img.getvalue())
    return buf.getvalue()


CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_images(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """``n`` random 32x32 RGB images in CIFAR's row layout (n, 3072: the red plane, green, blue) and labels."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, n)]


def cifar10_tar_gz(per_batch: int = 2) -> tuple[bytes, dict]:
    """``cifar-10-python.tar.gz`` as the official one is laid out, with ``per_batch`` images per batch.

    ``cifar-10-batches-py/`` holds ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and
    ``batches.meta``: pickled dicts (protocol 2, as the original Python 2 pickles) with
    ``batch_label``, ``labels``, ``data`` (uint8, one row of 3072 per image) and ``filenames``.
    Returns the archive and {'files': {name: md5}, 'train': (data, labels), 'test': (data, labels)}.
    """
    files, md5s, out = {}, {}, {"train": ([], [])}
    for b in range(1, 6):
        x, y = cifar_images(per_batch, seed=b)
        files[f"data_batch_{b}"] = {"batch_label": f"training batch {b} of 5", "labels": y, "data": x,
                                    "filenames": [f"img_{b}_{i}.png" for i in range(per_batch)]}
        out["train"][0].append(x)
        out["train"][1].extend(y)
    x, y = cifar_images(per_batch, seed=99)
    files["test_batch"] = {"batch_label": "testing batch 1 of 1", "labels": y, "data": x,
                           "filenames": [f"test_{i}.png" for i in range(per_batch)]}
    out["test"] = (x, y)
    out["train"] = (np.concatenate(out["train"][0]), out["train"][1])
    files["batches.meta"] = {"num_cases_per_batch": per_batch, "label_names": CIFAR10_NAMES, "num_vis": 3072}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, obj in files.items():
            blob = pickle.dumps(obj, protocol=2)
            md5s[name] = hashlib.md5(blob).hexdigest()
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    out["files"] = md5s
    return buf.getvalue(), out
