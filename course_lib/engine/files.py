"""Files written whole or not at all, and damaged files set aside instead of trusted or lost.

``atomic_write(path, write)`` writes through a temporary file with a unique name beside
``path`` and renames it into place, so a reader (or another process) sees the old file or
the new one, never half of one. When the write fails (a full disk, an interrupt) the
temporary file is removed and a full disk is named as such (:class:`DiskFullError`).
``set_aside(path, why)`` renames a damaged file to ``<name>.damaged`` (kept for a look, not
read again) and says so in one line on stderr; the caller then rebuilds it.
"""
from __future__ import annotations

import errno
import os
import shutil
import sys
import tempfile
from pathlib import Path

DAMAGED = ".damaged"


class DiskFullError(OSError):
    """A file could not be written because its disk (or quota) is full; nothing half-written is left."""


def notice(text: str) -> None:
    """One line on stderr: something was repaired, and how."""
    print(f"course_lib: {text}", file=sys.stderr, flush=True)


def _disk_full(err: BaseException, folder: Path) -> bool:
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:   # torch.save reports a full disk as a RuntimeError of its stream writer
        return shutil.disk_usage(folder).free < (1 << 20) and isinstance(err, (OSError, RuntimeError))
    except OSError:
        return False


def usual_mode(path) -> None:
    """Give a file or folder made by ``tempfile`` (mode 0600 / 0700) the mode a plain ``open``/``mkdir``
    would have given it (0666 / 0777 less the umask), so that other users (the grading sandbox's
    unprivileged user, a shared cache) can read what is renamed into place."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~umask)


def atomic_write(path, write, *, what: str = "file") -> Path:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then rename it to ``path``.

    On any failure the temporary file is deleted; a full disk raises :class:`DiskFullError`
    naming the folder and what to do. ``path`` keeps its old content until the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        usual_mode(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if _disk_full(err, path.parent):
            free = shutil.disk_usage(path.parent).free
            raise DiskFullError(errno.ENOSPC, f"could not write the {what} {path}: the disk is full "
                                f"({free / 2**20:.1f} MiB free in {path.parent}). Nothing half-written was left "
                                "behind. Free some space (or point COURSE_RUNS / COURSE_RESULTS / COURSE_CACHE at "
                                "another disk) and run again: a run resumes from its last checkpoint.") from None
        raise
    return path


def set_aside(path, why: str, then: str = "it is rebuilt") -> Path:
    """Rename the damaged file ``path`` to ``<name>.damaged`` (or ``.damaged.N``), saying why in one line."""
    path = Path(path)
    target = path.with_name(path.name + DAMAGED)
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}{DAMAGED}.{n}")
        n += 1
    try:
        path.rename(target)
    except FileNotFoundError:   # another process set it aside first
        return target
    except OSError as err:      # a read-only copy (an installed package's records)
        notice(f"{path} {why}; it cannot be moved aside ({err.strerror}), so {then}.")
        return path
    notice(f"{path} {why}; moved it to {target.name} and {then}.")
    return target
