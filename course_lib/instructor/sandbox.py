"""Run a command in isolation: its own folder, user, file system view, processes and network.

Linux only, as root (the grader drops to a fresh unprivileged user id for the command), with
util-linux's ``unshare``, ``setpriv`` and ``prlimit`` and coreutils' ``chroot`` (all in a
plain Debian or Ubuntu). The command runs

- as user and group ``uid`` (no other groups, no capabilities, ``no_new_privs``);
- in new mount, PID, network, IPC and UTS namespaces: it sees a root made of read-only
  copies of the system folders, Python, ``course_lib`` and the data, a private ``/tmp``,
  and one writable folder, ``/graded``, which is ``workdir`` on the grader's side;
  no loopback-only network reaches outside;
- under limits on address space, processes, file size, open files and CPU time;
- killed with its whole process tree at ``timeout``, and when it exits: it is PID 1 of
  its namespace, and the kernel kills every process of a namespace whose PID 1 ends.
"""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

WORK = "/graded"     # the command's writable folder, inside the sandbox (no host path lies under it)
TOOLS = ("unshare", "setpriv", "prlimit", "chroot", "mount")
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
DEVICES = ("null", "zero", "full", "random", "urandom")


@dataclass
class Limits:
    memory_gb: float = 8.0        # address space of each process
    processes: int = 256          # processes and threads of the sandbox's user
    file_mb: int = 1024           # largest file it may write
    cpu_seconds: int = 3600       # CPU time of each process (the wall-clock limit is ``timeout``)
    open_files: int = 1024


def unavailable() -> str:
    """Why isolation cannot work here ('' when it can)."""
    if not sys.platform.startswith("linux"):
        return "grading in isolation needs Linux namespaces"
    if os.geteuid() != 0:
        return ("grading in isolation needs root, to run each notebook as a fresh unprivileged user in its "
                "own namespaces: run the command with sudo")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"grading in isolation needs {', '.join(missing)} (apt-get install util-linux coreutils mount)"
    probe = subprocess.run(["unshare", "--mount", "--pid", "--fork", "--net", "--ipc", "--uts", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"this machine refuses new namespaces ({probe.stderr.strip()[:200]})"
    return ""


def fresh_uid() -> int:
    """A user id that owns nothing on this machine and no running process."""
    used = {os.stat(f"/proc/{p}").st_uid for p in os.listdir("/proc") if p.isdigit() and _exists(f"/proc/{p}")}
    base = 1_900_000_000 + (os.getpid() % 50_000) * 1000
    for uid in range(base, base + 1000):
        if uid not in used:
            return uid
    raise RuntimeError("no free user id for the sandbox")


def _exists(path) -> bool:
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def readable_paths() -> list[str]:
    """What the command may read: Python, its packages, course_lib, the data and its cache."""
    package = Path(__file__).resolve().parents[1]          # course_lib itself, and not the folder around it
    paths = [sys.base_prefix, sys.prefix, str(package)]
    paths += [p for p in sys.path if p and Path(p).is_dir() and "site-packages" in p]
    data = os.environ.get("COURSE_DATA")
    if data and Path(data).is_dir():
        paths.append(str(Path(data).resolve()))
    try:
        from ..engine.data import cache_dir
        if cache_dir().is_dir():
            paths.append(str(cache_dir().resolve()))   # read-only: no student can poison another's cache
    except Exception:
        pass
    return sorted({str(Path(p).resolve()) for p in paths if Path(p).exists()})


def environment(extra: dict | None = None) -> dict:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "HOME": WORK,
           "TMPDIR": "/tmp", "LANG": "C.UTF-8", "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0",
           "XDG_CACHE_HOME": f"{WORK}/.cache", "MPLCONFIGDIR": f"{WORK}/.cache/matplotlib",
           "COURSE_RUNS": f"{WORK}/runs", "PYTHONDONTWRITEBYTECODE": "1"}
    for key in ("COURSE_DATA", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VIRTUAL_ENV"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    try:
        from ..engine.data import cache_dir
        env["COURSE_CACHE"] = str(cache_dir().resolve())
    except Exception:
        pass
    env.update(extra or {})
    return env


def _script(root: str, workdir: str, uid: int, limits: Limits, command: list[str], env: dict) -> str:
    """The shell script PID 1 runs as root inside the new namespaces, before it becomes ``command``."""
    q = shlex.quote
    lines = ["set -eu", f"R={q(root)}", 'mount -t tmpfs -o size=16m,mode=755 sandbox-root "$R"']
    for path in SYSTEM:
        if os.path.islink(path):
            lines.append(f'ln -s {q(os.readlink(path))} "$R"{q(path)}')
        elif os.path.isdir(path):
            lines.append(_bind_ro(path))
    for path in readable_paths():
        if not any(path == s or path.startswith(s + "/") for s in SYSTEM):
            lines.append(_bind_ro(path))
    lines += [f'mkdir -p "$R/dev" "$R/proc" "$R/tmp" "$R{WORK}"',
              *[f'touch "$R/dev/{d}"; mount --bind /dev/{d} "$R/dev/{d}"' for d in DEVICES],
              'mkdir "$R/dev/shm"; mount -t tmpfs -o size=1g,mode=1777,nosuid,nodev shm "$R/dev/shm"',
              'mount -t tmpfs -o size=1g,mode=1777,nosuid,nodev tmp "$R/tmp"',
              'mount -t proc -o nosuid,nodev,noexec proc "$R/proc"',
              f'mount --bind {q(workdir)} "$R{WORK}"',
              'ip link set lo up 2>/dev/null || true',        # the Jupyter kernel talks over 127.0.0.1
              "cd /"]
    prlimit = [f"--as={int(limits.memory_gb * 2**30)}", f"--nproc={limits.processes}",
               f"--fsize={limits.file_mb * 2**20}", f"--nofile={limits.open_files}",
               f"--cpu={limits.cpu_seconds}", "--core=0"]
    setpriv = [f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
               "--bounding-set=-all", "--no-new-privs"]
    final = ["chroot", root, "setpriv", *setpriv, "prlimit", *prlimit, "--", "env", "-i",
             *[f"{k}={v}" for k, v in env.items()], "sh", "-c", f"cd {WORK} && exec \"$@\"", "sandbox", *command]
    lines.append("exec " + " ".join(q(a) for a in final))
    return "\n".join(lines)


def _bind_ro(path: str) -> str:
    q = shlex.quote
    return (f'mkdir -p "$R"{q(path)}; mount --rbind {q(path)} "$R"{q(path)}; '
            f'mount -o remount,bind,ro,nosuid,nodev "$R"{q(path)}')


def run(command: list[str], workdir, *, timeout: float, limits: Limits | None = None,
        env: dict | None = None) -> dict:
    """Run ``command`` isolated, with ``workdir`` as its only writable folder (``/graded`` inside).

    Returns ``{"status": "ok" | "error" | "timeout", "returncode", "seconds", "stderr", "uid"}``.
    Raises RuntimeError when this machine cannot isolate (see :func:`unavailable`)."""
    why = unavailable()
    if why:
        raise RuntimeError(why)
    limits = limits or Limits()
    workdir = Path(workdir).resolve()
    uid = fresh_uid()
    root = workdir.parent / f".root-{workdir.name}"
    root.mkdir(mode=0o700)
    os.chown(workdir, uid, uid)
    os.chmod(workdir, 0o700)
    script = _script(str(root), str(workdir), uid, limits, command, environment(env))
    cmd = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child=SIGKILL",
           "--net", "--ipc", "--uts", "--", "sh", "-c", script]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, errors="replace", start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        status = "ok" if proc.returncode == 0 else "error"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)     # unshare dies, so PID 1 of the namespace, so everything in it
        out, err = proc.communicate()
        status = "timeout"
    seconds = round(time.monotonic() - start, 1)
    _wait_gone(uid)
    try:
        root.rmdir()
    except OSError:
        pass
    return {"status": status, "returncode": proc.returncode, "seconds": seconds,
            "stdout": out[-20000:], "stderr": err[-20000:], "uid": uid}


def processes_of(uid: int) -> list[int]:
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.stat(f"/proc/{p}").st_uid == uid:
                    found.append(int(p))
            except OSError:
                pass
    return found


def _wait_gone(uid: int, seconds: float = 30) -> None:
    """The kernel kills a dead namespace's processes at once; wait for them to be reaped, then make sure."""
    end = time.monotonic() + seconds
    while processes_of(uid) and time.monotonic() < end:
        time.sleep(0.1)
    for pid in processes_of(uid):      # cannot happen with a PID namespace; say so loudly if it does
        print(f"sandbox: process {pid} of user {uid} outlived its namespace; killing it", file=sys.stderr)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
