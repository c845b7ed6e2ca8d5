"""Waiting for child processes without a wall-clock limit.

A test that gives a child process N seconds fails on a busy machine though nothing is
wrong (issue #12: a fresh clone under two busy loops). These helpers wait for as long as
the children make progress, that is, use CPU time, and fail only when the children and
all their descendants have used none for ``STALL`` seconds: a hang, however slow the machine.
A child that waits for another (a lock) is fine while the other works.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

STALL = 300.0   # seconds without one tick of CPU time in the whole tree: a hang
POLL = 1.0
_TICK = os.sysconf("SC_CLK_TCK")


def _stats() -> dict[int, tuple[int, float]]:
    """{pid: (parent pid, CPU seconds)} of every living process (not zombies), from /proc."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            rest = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue                                   # it ended while we looked
        if rest[0] in ("Z", "X"):
            continue                                   # ended, not yet reaped
        # after the name: state, ppid, ..., utime (12th), stime, cutime, cstime
        out[int(entry.name)] = (int(rest[1]), sum(int(v) for v in rest[11:15]) / _TICK)
    return out


def tree(pids) -> set[int]:
    """The processes ``pids`` and all their living descendants."""
    stats, found = _stats(), set(pids)
    grew = True
    while grew:
        new = {pid for pid, (ppid, _) in stats.items() if ppid in found} - found
        found |= new
        grew = bool(new)
    return found


def cpu_seconds(pids) -> dict[int, float]:
    """CPU time (user + system, with reaped children) of each process of ``tree(pids)`` alive now."""
    stats = _stats()
    return {pid: stats[pid][1] for pid in tree(pids) if pid in stats}


class Watch:
    """Progress of a set of processes: ``moved()`` is False once none has used CPU for ``stall`` s."""

    def __init__(self, pids, stall: float = STALL):
        self.pids, self.stall = list(pids), stall
        self.seen: dict[int, float] = {}
        self.last = time.monotonic()

    def moved(self) -> bool:
        now = cpu_seconds(self.pids)
        if any(now.get(pid, 0.0) > self.seen.get(pid, -1.0) for pid in now) or set(now) != set(self.seen):
            self.seen, self.last = now, time.monotonic()
        return time.monotonic() - self.last < self.stall

    def hang(self, what: str) -> str:
        return (f"{what}: no CPU time used by processes {sorted(self.seen)} for {self.stall:.0f} s; they hang "
                "(slowness alone never fails this wait)")


def kill_tree(pids) -> None:
    for pid in tree(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def communicate_all(procs: list[subprocess.Popen], stall: float = STALL) -> list[tuple]:
    """``[p.communicate() for p in procs]``, failing only on a hang of all of them together."""
    watch = Watch([p.pid for p in procs], stall)
    outs: dict[int, tuple] = {}
    while len(outs) < len(procs):
        for i, p in enumerate(procs):
            if i in outs:
                continue
            try:
                outs[i] = p.communicate(timeout=POLL / len(procs))
            except subprocess.TimeoutExpired:
                pass
        if len(outs) < len(procs) and not watch.moved():
            kill_tree([p.pid for p in procs])
            tails = [str((p.communicate()[0] or ""))[-1500:] for i, p in enumerate(procs) if i not in outs]
            raise AssertionError(watch.hang(f"{len(procs) - len(outs)} child process(es)") + f"\n{tails}")
    return [outs[i] for i in range(len(procs))]


def communicate(proc: subprocess.Popen, stall: float = STALL) -> tuple:
    return communicate_all([proc], stall)[0]


def wait_until(done, pids, what: str, stall: float = STALL, poll: float = 0.1) -> None:
    """Return when ``done()`` is true or no process of ``pids`` is alive; fail on a hang."""
    watch = Watch(pids, stall)
    while not done():
        if not cpu_seconds(pids):
            return                                   # every process ended: the caller checks why
        if not watch.moved():
            raise AssertionError(watch.hang(what))
        time.sleep(poll)
