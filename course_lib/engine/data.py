"""The one place that finds the book's data sets: CIFAR-10 and Hotdog.

Where data is looked up (the *data root*), first match wins:

1. the ``root`` argument of a loader;
2. the environment variable ``COURSE_DATA``;
3. the repository's ``data/`` folder (``./data`` when installed from a wheel).

The data root may be read-only. Anything the loaders write (unpacked archives,
the decoded CIFAR-10 tensor file, downloads) goes to the *cache dir*:
``COURSE_CACHE`` if set, else ``data/cache``.

When a data set is nowhere, ``download=True`` (the default) fetches the official copy:
CIFAR-10 through torchvision (md5-checked), D2L's Hotdog from D2L's address with its
SHA-1 checked (:mod:`course_lib.engine.download`, no d2l package needed). Both unpack
into a temporary folder that is renamed into place, so a failed download leaves nothing
half-done behind, and both fail with a message that names the address and what to do.

For training, ``DATASETS`` holds each data set's normalisation, classes and default
validation size; :func:`load_data` returns the splits as uint8 tensors, and a
:class:`DataConfig` names the data part of a run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import torch

ENV_ROOT = "COURSE_DATA"
ENV_CACHE = "COURSE_CACHE"

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
HOTDOG_URL = "http://d2l-data.s3-accelerate.amazonaws.com/hotdog.zip"
HOTDOG_SHA1 = "fba480ffa8aa7e0febbb511d181409f899b9baa5"

# Archives with a class-per-folder layout that the book accepts as they are,
# with the sha256 that their README gives (``../shared/datasets`` here).
ARCHIVES = {
    "cifar10-jpeg.tar.gz": "8d425d830249859a729686327ad715494bbc8e2a9bd0e7743e7c37c3e9f22cf2",
    "hotdog64.tar.gz": "172d9fdb69249c764204e80016f4867083664c76ccba15626499d443a8bc38c6",
}

_REPO_DATA = Path(__file__).resolve().parents[2] / "data"


class DatasetNotFoundError(FileNotFoundError):
    """A data set is neither under the data root nor downloadable."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder where data sets are looked up (argument > $COURSE_DATA > data/)."""
    if root is None:
        root = os.environ.get(ENV_ROOT) or _default_root()
    return Path(root).expanduser().resolve()


def cache_dir() -> Path:
    """The writable folder for unpacked archives, decoded tensors and downloads.

    ``$COURSE_CACHE`` if set, else ``data/cache``. Never inside ``$COURSE_DATA``,
    which may be a shared, read-only copy.
    """
    path = Path(os.environ.get(ENV_CACHE) or _default_root() / "cache").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def _default_root() -> Path:
    return _REPO_DATA if _REPO_DATA.is_dir() else Path("data")


BY_HAND = {"CIFAR-10": "unpack it into {root} (it holds cifar-10-batches-py/)",
           "Hotdog": "put it in {root} as hotdog.zip"}


def _not_found(name: str, root: Path, looked_for: list[str], url: str, why: str = "") -> DatasetNotFoundError:
    lines = [f"{name} was not found under the data root {root}.",
             f"Looked for: {', '.join(looked_for)}."]
    if why:
        lines.append(f"The download from {url} did not work either: {why}")
        lines.append(f"Fix: try again (a download that fails leaves nothing behind), or download {url} "
                     f"by hand and {BY_HAND[name].format(root=root)}, or point the environment variable "
                     f"{ENV_ROOT} at a folder that has a copy.")
    else:
        lines.append(f"Fix: put a copy there, point the environment variable {ENV_ROOT} at a folder "
                     f"that has one, or call the loader with download=True while online "
                     f"(it downloads {url}).")
    return DatasetNotFoundError("\n".join(lines))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_archive(path: Path) -> None:
    want = ARCHIVES.get(path.name)
    if want and sha256(path) != want:
        raise ValueError(f"{path} does not have the sha256 {want}: the file is damaged or another "
                         "version. Replace it with a fresh copy.")


# --------------------------------------------------------------------------- CIFAR-10
@dataclass
class TensorImages:
    """Images as one uint8 tensor (N, 3, H, W) with int64 labels (N,)."""
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def subset(self, idx: torch.Tensor) -> "TensorImages":
        return TensorImages(self.images[idx], self.labels[idx], self.classes)


def _decode_jpeg_tree(files) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode (class_index, name, bytes) triples, sorted by class then name."""
    from torchvision.io import decode_image
    files = sorted(files, key=lambda t: (t[0], t[1]))
    images = torch.stack([decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=_RGB)
                          for _, _, data in files])
    labels = torch.tensor([c for c, _, _ in files], dtype=torch.int64)
    return images, labels


try:  # torchvision >= 0.18
    from torchvision.io import ImageReadMode as _IRM
    _RGB = _IRM.RGB
except ImportError:  # pragma: no cover
    _RGB = None


def check_classes(found, classes: tuple[str, ...], where) -> None:
    """The class list is the data set's, never what a folder happens to hold: every class must have
    images in ``where`` (a folder or an archive's split), else a ValueError naming it."""
    missing = [c for c in classes if c not in set(found)]
    if missing:
        raise ValueError(f"{where} has no images of the class(es) {', '.join(missing)}: the data set has "
                         f"{len(classes)} classes ({', '.join(classes)}), each a folder of images there. The copy is "
                         "incomplete: unpack it again, or point COURSE_DATA at a complete copy.")


def _cifar_from_tar(archive: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    _check_archive(archive)
    files = {"train": [], "test": []}
    with tarfile.open(archive) as tar:
        for m in tar:
            parts = Path(m.name).parts
            if not m.isfile() or len(parts) < 3 or parts[-2] not in CIFAR10_CLASSES or parts[-1].startswith("."):
                continue
            split = parts[-3]
            if split in files:
                files[split].append((CIFAR10_CLASSES.index(parts[-2]), parts[-1], tar.extractfile(m).read()))
    for split, f in files.items():
        check_classes({CIFAR10_CLASSES[c] for c, _, _ in f}, CIFAR10_CLASSES, f"{archive} ({split}/)")
    return {s: _decode_jpeg_tree(f) for s, f in files.items()}


def _cifar_from_folder(folder: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    out = {}
    for split in ("train", "test"):
        files = [(c, p.name, p.read_bytes())
                 for c, name in enumerate(CIFAR10_CLASSES)
                 for p in (folder / split / name).glob("*") if p.is_file() and not p.name.startswith(".")]
        check_classes({CIFAR10_CLASSES[c] for c, _, _ in files}, CIFAR10_CLASSES, folder / split)
        out[split] = _decode_jpeg_tree(files)
    return out


def _cifar_from_torchvision(root: Path, download: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    from torchvision.datasets import CIFAR10
    out = {}
    for split in ("train", "test"):
        ds = CIFAR10(str(root), train=(split == "train"), download=download)
        out[split] = (torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(),
                      torch.tensor(ds.targets, dtype=torch.int64))
    return out


def _find_cifar(root: Path, download: bool):
    """Return (source description, decoder) for the first CIFAR-10 copy found."""
    cache = cache_dir()
    candidates = [
        ("official batches", root / "cifar-10-batches-py", lambda: _cifar_from_torchvision(root, False)),
        ("class folders", root / "cifar10-jpeg", lambda: _cifar_from_folder(root / "cifar10-jpeg")),
        ("archive", root / "cifar10-jpeg.tar.gz", lambda: _cifar_from_tar(root / "cifar10-jpeg.tar.gz")),
    ]
    for what, path, decode in candidates:
        if path.exists():
            return f"{what}: {path}", decode
    looked = [str(p) for _, p, _ in candidates]
    url = _cifar_url()
    if not download:
        raise _not_found("CIFAR-10", root, looked, url)
    try:
        _download_cifar(cache)
    except Exception as err:  # offline, proxy, damaged file, disk: say what happened, keep it short
        raise _not_found("CIFAR-10", root, looked, url, why=_why(err, url)) from None
    return f"official download: {cache}", lambda: _cifar_from_torchvision(cache, False)


def _cifar_url() -> str:
    from torchvision.datasets import CIFAR10
    return CIFAR10.url


def _download_cifar(cache: Path) -> Path:
    """torchvision's CIFAR-10 download (md5-checked) into a temporary folder, its batches then renamed
    into ``cache/cifar-10-batches-py``; the archive and any partial file go with the temporary folder."""
    import tempfile
    from torchvision.datasets import CIFAR10

    from .download import file_lock
    target = cache / CIFAR10.base_folder
    with file_lock(cache / f".{CIFAR10.base_folder}.lock"):
        if target.is_dir():
            CIFAR10(str(cache), train=False)   # raises if the batches there are damaged
            return target
        tmp = Path(tempfile.mkdtemp(prefix=".cifar10.", suffix=".partial", dir=cache))
        try:
            CIFAR10(str(tmp), train=False, download=True)   # download, md5 of the archive and of every batch
            from .files import usual_mode
            usual_mode(tmp / CIFAR10.base_folder)
            (tmp / CIFAR10.base_folder).rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _why(err: Exception, url: str = "") -> str:
    """What went wrong with a download, in a sentence (without repeating the address)."""
    import http.client

    from .download import DownloadError
    text = str(err)
    if isinstance(err, DownloadError):
        return text.removeprefix(f"{url}: ") if url else text
    if isinstance(err, http.client.IncompleteRead):
        return (f"the connection broke off after {len(err.partial):,} bytes "
                f"({err.expected:,} more were expected).")
    if isinstance(err, RuntimeError) and "corrupted" in text:   # torchvision's md5 checks
        return ("the file that arrived failed its md5 check (a download that broke off or was damaged, "
                "or the address serves another file).")
    return f"{type(err).__name__}: {text}"


_LOADED: dict[str, dict] = {}  # decoded splits, once per process


def data_source(dataset: str, root=None) -> dict:
    """Where a data set is read from (kind and path), with the archive's sha256 when it is a known archive."""
    root = data_root(root)
    if dataset == "cifar10":
        try:
            what = _find_cifar(root, download=False)[0]
        except DatasetNotFoundError:
            what = "official download"
    else:
        found = [root / n for n in ("hotdog", "hotdog64", "hotdog.zip", "hotdog64.tar.gz") if (root / n).exists()]
        what = f"{'archive' if found[0].is_file() else 'class folders'}: {found[0]}" if found else "official download"
    path = Path(what.split(": ", 1)[-1])
    out = {"where": what}
    if path.name in ARCHIVES and path.is_file():
        out["archive_sha256"] = ARCHIVES[path.name]  # checked against the file when it was read
    return out




def fingerprint(path: Path) -> str:
    """A fingerprint of a data source: name, size and modification time of the file, or of every file
    under the folder. Adding, removing or rewriting a file changes it."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(path.parent)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _splits_sha256(splits: dict) -> str:
    return tensor_sha256(*[t for split in sorted(splits) for t in splits[split]])


def _read_cifar_cache(cache_file: Path, source: str, stamp: str):
    """The splits in the tensor cache if it is whole and made from this very source, else (None, why)."""
    from ..models.pretrained import DamagedFileError, load_torch_file
    if not cache_file.exists():
        return None, None
    try:
        blob = load_torch_file(cache_file)
    except (DamagedFileError, ValueError) as err:
        return None, f"is damaged ({str(err).removeprefix(str(cache_file)).strip(' :')})"
    if not isinstance(blob, dict) or blob.get("source") != source or blob.get("fingerprint") != stamp:
        return None, f"is stale: it was made from another copy of the data than {source}"
    splits = blob.get("splits")
    if not isinstance(splits, dict) or set(splits) != {"train", "test"} or _splits_sha256(splits) != blob.get("sha256"):
        return None, "is damaged: its tensors do not match the checksum stored with them"
    return splits, None


def _cifar_tensors(root: Path, download: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Decode CIFAR-10 once, then reuse ``cifar10-uint8.pt`` from the cache dir.

    The cache keeps the source, a :func:`fingerprint` of it and a sha256 of its tensors; all three are
    checked on every load, and a stale or damaged cache is rebuilt with a one-line notice. A lock lets
    one process decode while others that start at the same time wait, then read its cache.
    """
    from .download import file_lock
    from .files import atomic_write, notice
    source, decode = _find_cifar(root, download)
    if source in _LOADED:
        return _LOADED[source]
    cache_file = cache_dir() / "cifar10-uint8.pt"
    stamp = fingerprint(Path(source.split(": ", 1)[-1]))
    with file_lock(cache_file.with_name(f".{cache_file.name}.lock")):
        splits, why = _read_cifar_cache(cache_file, source, stamp)
        if splits is None:
            if why:
                notice(f"the CIFAR-10 tensor cache {cache_file} {why}; decoding the images again.")
            splits = decode()
            blob = {"source": source, "fingerprint": stamp, "sha256": _splits_sha256(splits), "splits": splits}
            atomic_write(cache_file, lambda fh: torch.save(blob, fh), what="CIFAR-10 tensor cache")
    _LOADED[source] = splits
    return splits


def split_indices(n: int, val_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random (train, val) partition of range(n)."""
    if not 0 <= val_size < n:
        raise ValueError(f"val_size must be between 0 and {n - 1}, got {val_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[val_size:].sort().values, perm[:val_size].sort().values


def load_cifar10(split: str = "train", *, root=None, val_size: int = 5000, split_seed: int = 0,
                 limit: int | None = None, download: bool = True) -> TensorImages:
    """CIFAR-10 as uint8 tensors.

    split: ``train`` (50,000 - val_size images), ``val`` (val_size images carved from
    the official training set with ``split_seed``), ``test`` (10,000), or
    ``train+val`` (all 50,000 training images). ``limit`` keeps the first
    ``limit`` images of a class-balanced shuffle, for quick runs.
    """
    allowed = ("train", "val", "test", "train+val")
    if split not in allowed:
        raise ValueError(f"split must be one of {allowed}, got {split!r}")
    splits = _cifar_tensors(data_root(root), download)
    if split == "test":
        data = TensorImages(*splits["test"], CIFAR10_CLASSES)
    else:
        data = TensorImages(*splits["train"], CIFAR10_CLASSES)
        if split != "train+val":
            train_idx, val_idx = split_indices(len(data), val_size, split_seed)
            data = data.subset(train_idx if split == "train" else val_idx)
    if limit is not None:
        data = data.subset(balanced_order(data.labels, seed=split_seed)[:limit])
    return data


def balanced_order(labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A shuffled order of indices that cycles through the classes: any prefix is near-balanced."""
    g = torch.Generator().manual_seed(seed)
    classes = labels.unique()
    rank = torch.empty(len(labels), dtype=torch.int64)
    for k, c in enumerate(classes):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        rank[idx] = torch.arange(len(idx)) * len(classes) + k  # i-th image of class k
    return rank.argsort()


# --------------------------------------------------------------------------- Hotdog
def hotdog_dir(root=None, download: bool = True) -> Path:
    """The folder with ``train|test/hotdog|not-hotdog``: D2L's hotdog, or the hotdog64 stand-in.

    Looked up in the data root (folders, then archives, unpacked into the cache dir), then in
    the cache dir (an earlier download); else downloaded from D2L's address if ``download``.
    """
    root = data_root(root)
    cache = cache_dir()
    for folder in (root / "hotdog", root / "hotdog64"):
        if folder.is_dir():   # a copy there is used or refused, naming what it lacks; never passed over
            for split in ("train", "test"):
                check_classes({c for c in HOTDOG_CLASSES if _images(folder / split / c)}, HOTDOG_CLASSES,
                              folder / split)
            return folder
    for archive in (root / "hotdog.zip", root / "hotdog64.tar.gz"):
        if archive.exists():
            return _unpack(archive, cache)
    if _is_hotdog(cache / "hotdog"):
        return cache / "hotdog"
    looked = [str(root / "hotdog"), str(root / "hotdog64"), str(root / "hotdog.zip"),
              str(root / "hotdog64.tar.gz"), str(cache / "hotdog")]
    url = HOTDOG_URL
    if not download:
        raise _not_found("Hotdog", root, looked, url)
    try:
        return _unpack(_download_hotdog(cache, url), cache)
    except Exception as err:
        raise _not_found("Hotdog", root, looked, url, why=_why(err, url)) from None


def _is_hotdog(folder: Path) -> bool:
    return all((folder / split / cls).is_dir() for split in ("train", "test") for cls in ("hotdog", "not-hotdog"))


def _hotdog_layout(folder: Path) -> None:
    if not _is_hotdog(folder):
        raise ValueError("no train|test/hotdog|not-hotdog folders inside: it is not a Hotdog archive")


def _download_hotdog(cache: Path, url: str) -> Path:
    """D2L's hotdog.zip from ``url`` into ``cache/downloads``, its SHA-1 checked (``HOTDOG_SHA1``)."""
    from .download import fetch
    return fetch(url, cache / "downloads", sha1=HOTDOG_SHA1, name="hotdog.zip")


def tree_sha256(folder: Path) -> str:
    """sha256 of every file's path and bytes under ``folder`` (hidden ones too): the checksum of an unpacked copy."""
    h = hashlib.sha256()
    for p in sorted(q for q in Path(folder).rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(folder)}\0".encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _unpack(archive: Path, cache: Path) -> Path:
    """Unpack a Hotdog archive (D2L's zip or the hotdog64 tarball) into ``cache/<name>``, atomically.

    Beside it, ``.<name>.manifest.json`` keeps the archive's :func:`fingerprint` and the unpacked
    tree's :func:`tree_sha256`; both are checked on every use, and a stale or damaged copy (a file
    changed, added or removed, a leftover ``.partial`` folder inside) is unpacked again with a notice.
    """
    import json

    from .download import file_lock, top_folder, unpack_tar, unpack_zip
    from .files import atomic_write, notice
    name = archive.name.split(".")[0]
    target = cache / name
    manifest = cache / f".{name}.manifest.json"
    _check_archive(archive)
    stamp = fingerprint(archive)
    with file_lock(cache / f".{name}.verify.lock"):
        for stale in cache.glob(f".{name}.*.partial"):   # a killed unpack's: never read, removed
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():
            try:
                kept = json.loads(manifest.read_text())
            except (OSError, ValueError):
                kept = {}
            why = ("has no manifest (unpacked by an older course_lib or by hand)" if not kept else
                   "is stale: it was unpacked from another archive" if kept.get("source") != stamp else
                   "is damaged: its files differ from those unpacked" if kept.get("tree") != tree_sha256(target)
                   else None)
            if why is None:
                return target
            notice(f"the unpacked copy {target} {why}; unpacking {archive.name} again.")
            shutil.rmtree(target)
        unpack = unpack_zip if archive.suffix == ".zip" else unpack_tar
        try:
            unpack(archive, target, inner=top_folder(archive), check=_hotdog_layout)
        except ValueError as err:
            raise ValueError(f"{archive}: {err}") from None
        text = json.dumps({"archive": str(archive), "source": stamp, "tree": tree_sha256(target)})
        atomic_write(manifest, lambda fh: fh.write(text.encode()), what="unpack manifest")
    return target


HOTDOG_CLASSES = ("hotdog", "not-hotdog")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _image_folder(folder: Path, classes: tuple[str, ...], transform=None):
    """torchvision's ImageFolder with the data set's classes (index = position in ``classes``),
    whatever the folder holds: a missing class is an error naming the folder, extra folders are
    ignored, and only the images directly inside each class folder are read (no hidden files, no
    subfolders such as a leftover ``.partial``), in ImageFolder's order."""
    from torchvision.datasets import ImageFolder

    class Fixed(ImageFolder):
        def find_classes(self, directory):
            found = {c for c in classes if (Path(directory) / c).is_dir() and any(_images(Path(directory) / c))}
            check_classes(found, classes, directory)
            return list(classes), {c: i for i, c in enumerate(classes)}

        @staticmethod
        def make_dataset(directory, class_to_idx, extensions=None, is_valid_file=None, allow_empty=False):
            return [(str(p), i) for c, i in class_to_idx.items() for p in _images(Path(directory) / c)]

    return Fixed(str(folder), transform=transform)


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [folder / n for n in sorted(os.listdir(folder)) if not n.startswith(".")
            and n.lower().endswith(IMAGE_SUFFIXES) and (folder / n).is_file()]


def load_hotdog(split: str = "train", *, root=None, transform=None, download: bool = True):
    """Hotdog as a torchvision ImageFolder (classes: hotdog=0, not-hotdog=1, whatever the folder holds)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return _image_folder(hotdog_dir(root, download) / split, HOTDOG_CLASSES, transform)


# --------------------------------------------------------------------------- data sets for training
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DATASETS = {  # name -> normalisation, classes, default validation size, native image size
    "cifar10": dict(mean=CIFAR10_MEAN, std=CIFAR10_STD, num_classes=10, val_size=5000, size=32),
    "hotdog": dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, num_classes=2, val_size=0, size=64),
}


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 (B, 3, H, W), per-channel standardised."""
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1) * 255
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1) * 255
    return (x.float() - m) / s


def as_pair(d) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(images, labels) of a TensorImages or of a pair; None stays None."""
    if d is None:
        return None
    if hasattr(d, "images") and hasattr(d, "labels"):
        return d.images, d.labels
    images, labels = d
    return images, labels


def hotdog_tensors(split: str, size: int = 64, root=None):
    """Hotdog as uint8 tensors (N, 3, size, size) + labels, decoded once per process."""
    from torchvision import transforms
    key = (split, size, str(root))
    if key not in _HOTDOG:
        folder = load_hotdog(split, root=root, transform=transforms.Compose(
            [transforms.Resize((size, size)), transforms.PILToTensor()]))
        images, labels = zip(*[folder[i] for i in range(len(folder))])
        _HOTDOG[key] = TensorImages(torch.stack(images), torch.tensor(labels), tuple(folder.classes))
    return _HOTDOG[key]


_HOTDOG: dict = {}


def fold_of(labels: torch.Tensor, folds: int, seed: int = 0) -> torch.Tensor:
    """The fold (0..folds-1) of every image: each class shuffled by ``seed``, then dealt round-robin."""
    order = balanced_order(labels, seed)              # cycles through the classes
    fold = torch.empty(len(labels), dtype=torch.int64)
    fold[order] = torch.arange(len(labels)) % folds   # consecutive images of a class land in consecutive folds
    return fold


def cross_validation(pool: TensorImages, folds: int, fold: int, seed: int = 0) -> tuple[TensorImages, TensorImages]:
    """(train, test) of ``fold``: the test part is one of ``folds`` class-stratified parts of ``pool``."""
    which = fold_of(pool.labels, folds, seed)
    return pool.subset(torch.nonzero(which != fold).flatten()), pool.subset(torch.nonzero(which == fold).flatten())


def _check_folds(folds, fold, val_size) -> None:
    if folds is None and fold is None:
        return
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2 (or None: the data set's own train/test split), got {folds!r}")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < folds:
        raise ValueError(f"fold must be an integer in 0..{folds - 1} (the part held out for testing), got {fold!r}")
    if val_size:
        raise ValueError(f"cross-validation (folds={folds}) holds out a fold instead of a validation set: "
                         f"pass val_size=0, got {val_size}")


def load_data(dataset: str = "cifar10", *, images: int | None = None, val_size: int | None = None,
              split_seed: int = 0, test_images: int | None = None, image_size: int | None = None,
              root=None, folds: int | None = None, fold: int | None = None) -> dict:
    """{'train', 'val', 'test'} TensorImages of a data set ('val' is None when val_size == 0).

    ``images`` keeps that many (class-balanced) training images, ``test_images`` likewise.
    ``folds``, ``fold``: k-fold cross-validation over the data set's training and test images
    pooled; fold ``fold`` is the test set, the others train (see :func:`cross_validation`).
    """
    check_data_args(dataset, images=images, val_size=val_size, split_seed=split_seed, test_images=test_images,
                    image_size=image_size)
    val_size = DATASETS[dataset]["val_size"] if val_size is None else val_size
    _check_folds(folds, fold, val_size)
    if folds is not None:
        parts = load_data(dataset, val_size=0, image_size=image_size, root=root)
        a, b = parts["train"], parts["test"]
        pool = TensorImages(torch.cat([a.images, b.images]), torch.cat([a.labels, b.labels]), a.classes)
        train, test = cross_validation(pool, folds, fold, split_seed)
        if images is not None:
            train = train.subset(balanced_order(train.labels, seed=split_seed)[:_at_most("images", images, train)])
        if test_images is not None:
            test = test.subset(balanced_order(test.labels, seed=split_seed)[:_at_most("test_images", test_images, test)])
        return {"train": train, "val": None, "test": test}
    if dataset == "cifar10":
        train = load_cifar10("train" if val_size else "train+val", root=root, val_size=val_size,
                             split_seed=split_seed)
        if images is not None:
            train = train.subset(balanced_order(train.labels, seed=split_seed)[:_at_most("images", images, train)])
        val = load_cifar10("val", root=root, val_size=val_size, split_seed=split_seed) if val_size else None
        test = load_cifar10("test", root=root)
    else:
        full = hotdog_tensors("train", image_size or DATASETS[dataset]["size"], root)
        val = None
        train = full
        if val_size:
            tr, va = split_indices(len(full), val_size, split_seed)
            train, val = full.subset(tr), full.subset(va)
        if images is not None:
            train = train.subset(balanced_order(train.labels, seed=split_seed)[:_at_most("images", images, train)])
        test = hotdog_tensors("test", image_size or DATASETS[dataset]["size"], root)
    if test_images is not None:
        test = test.subset(balanced_order(test.labels, seed=split_seed)[:_at_most("test_images", test_images, test)])
    return {"train": train, "val": val, "test": test}


def check_data_args(dataset: str, *, images=None, val_size=None, split_seed=0, test_images=None,
                    image_size=None) -> None:
    """Every data choice checked for type and range where it enters (a run's record names these values,
    so a value that would be read otherwise, such as images=1e9 or image_size=0, is refused)."""
    from ..blocks.grouped import check_int
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}: use one of {list(DATASETS)}")
    for name, value, least, meaning in (("images", images, 2, "all training images"),
                                        ("val_size", val_size, 0, "the data set's default"),
                                        ("test_images", test_images, 1, "all test images"),
                                        ("image_size", image_size, 1, "the images' own size")):
        if value is not None:
            try:
                check_int(name, value, least)
            except ValueError as err:
                raise ValueError(f"{err} (or None: {meaning})") from None
    check_int("split_seed", split_seed, 0)


def _at_most(name: str, wanted: int, part: TensorImages) -> int:
    """``wanted`` if the split has that many images; else a ValueError (the record would name a number never seen)."""
    if wanted > len(part):
        raise ValueError(f"{name}={wanted:,} but this split has {len(part):,} images: pass at most {len(part)}, "
                         f"or {name}=None for all of them")
    return wanted


def tensor_sha256(*tensors: torch.Tensor) -> str:
    """sha256 of the tensors' bytes (shape and dtype included), in order."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().to("cpu").contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.dtype != torch.uint8 else t.numpy().tobytes())
    return h.hexdigest()


def data_identity(dataset: str, data: dict, root=None) -> dict:
    """Which data a run saw: the source found, and a sha256 of every split's images and labels."""
    out = {"dataset": dataset, "source": data_source(dataset, root)}
    for split, part in data.items():
        pair = as_pair(part)
        out[split] = None if pair is None else {"n": len(pair[1]), "sha256": tensor_sha256(*pair)}
    return out


@dataclass(frozen=True)
class DataConfig:
    """Which data a run trains and tests on (``course_lib.engine.runner.run``'s data part).

    ``images``/``test_images``: a class-balanced subset (None: all); ``val_size``: images
    held out of training for validation (None: the data set's default); ``image_size``:
    the side the images are resized to (None: native); ``data_root``: where to look
    (None: see :func:`data_root`).
    """
    dataset: str = "cifar10"
    images: int | None = None
    val_size: int | None = None
    split_seed: int = 0
    test_images: int | None = None
    image_size: int | None = None
    data_root: str | os.PathLike | None = None
    folds: int | None = None     # k-fold cross-validation over train + test pooled (None: the given split)
    fold: int | None = None      # the fold held out for testing, 0..folds-1

    def __post_init__(self):
        check_data_args(self.dataset, images=self.images, val_size=self.val_size, split_seed=self.split_seed,
                        test_images=self.test_images, image_size=self.image_size)

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def resolved(self) -> "DataConfig":
        """The same choice with the data set checked and its default validation size filled in."""
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}: use one of {list(DATASETS)}")
        if self.val_size is not None:
            return self
        return dataclasses.replace(self, val_size=DATASETS[self.dataset]["val_size"])

    @property
    def spec(self) -> dict:
        """The data set's row of ``DATASETS``: mean, std, num_classes, val_size, size."""
        return DATASETS[self.dataset]

    def config(self) -> dict:
        """The entries of a run's configuration (its key) that say which data it saw."""
        return {"dataset": self.dataset, "images": self.images, "val_size": self.val_size,
                "split_seed": self.split_seed, "test_images": self.test_images, "image_size": self.image_size,
                "folds": self.folds, "fold": self.fold}

    def load(self) -> dict:
        """``load_data`` of this choice: {'train', 'val', 'test'}."""
        return load_data(self.dataset, images=self.images, val_size=self.val_size, split_seed=self.split_seed,
                         test_images=self.test_images,
                         image_size=self.image_size if self.dataset == "hotdog" else None, root=self.data_root,
                         folds=self.folds, fold=self.fold)


def prepare(root=None) -> None:
    """Check both data sets' caches (decoded CIFAR-10, unpacked Hotdog) and repair them now.

    ``make book`` runs this (``python -m course_lib.engine.data``) before it executes the chapters, so
    that a repair notice (a data archive replaced since the cache was made) lands in the terminal, not
    in a chapter's output, where the strict build would fail on it.
    """
    load_cifar10("test", root=root)
    hotdog_dir(root)


if __name__ == "__main__":
    prepare()
