"""A memory cgroup per sandbox run: one cap on everything the run's processes hold together.

``RLIMIT_AS`` caps each process's address space, but not what the kernel holds for them: tmpfs
inodes and dentries (millions of empty files cost no bytes of the tmpfs's size), page tables,
pipe buffers, or the sum over the run's processes. A memory cgroup charges all of it, kernel
memory included, to the run, and its ``cgroup.procs`` names every process of the run, so the
parent can kill them all however they were started.

Where it works: a cgroup v1 ``memory`` hierarchy, or cgroup v2 with ``memory`` enabled in the
``subtree_control`` of this process's cgroup, writable by this process (root, or a delegated
cgroup). Elsewhere :func:`cgroup_problem` says why and the sandbox runs without it (the OS
boundary holds without it; memory beyond the per-process limits is then bounded by the run's
process count and time limit).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MemoryCgroup", "cgroup_problem"]

_counter = itertools.count()


@dataclass(frozen=True, slots=True)
class _Hierarchy:
    base: Path
    """This process's cgroup in the memory hierarchy; runs get a child of it."""
    v2: bool


def _hierarchy() -> _Hierarchy | str:
    """Where run cgroups go, or why there is no such place."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError as exc:
        return f"cannot read this process's cgroups ({exc})"
    v1_path = v2_path = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            v1_path = path
        elif controllers == "":
            v2_path = path
    v1_mount = v2_mount = None
    for line in mounts:
        fields = line.split()
        after = fields[fields.index("-") + 1 :]
        if after[0] == "cgroup" and "memory" in after[2].split(","):
            v1_mount = fields[4]
        elif after[0] == "cgroup2":
            v2_mount = fields[4]
    if v1_path is not None and v1_mount is not None:
        return _Hierarchy(Path(v1_mount + v1_path.rstrip("/")), v2=False)
    if v2_path is not None and v2_mount is not None:
        base = Path(v2_mount + v2_path.rstrip("/"))
        try:
            enabled = (base / "cgroup.subtree_control").read_text().split()
        except OSError as exc:
            return f"cannot read {base}/cgroup.subtree_control ({exc})"
        if "memory" not in enabled:
            return f"cgroup v2: 'memory' is not enabled in {base}/cgroup.subtree_control (delegate a cgroup)"
        return _Hierarchy(base, v2=True)
    return "no cgroup memory controller is mounted"


class MemoryCgroup:
    """One run's cgroup: a memory cap, its processes, and their removal."""

    def __init__(self, path: Path, *, v2: bool) -> None:
        self.path = path
        self.v2 = v2

    @classmethod
    def create(cls, limit_bytes: int) -> MemoryCgroup:
        """A new cgroup capped at ``limit_bytes`` (kernel memory included).

        Raises:
            OSError: the cgroup could not be made or capped.
        """
        found = _hierarchy()
        if isinstance(found, str):
            raise OSError(found)
        _remove_stale(found.base)  # every run, so a killed caller's leftovers go with the next run
        path = found.base / f"arag-sandbox-{os.getpid()}-{next(_counter)}"
        path.mkdir()
        group = cls(path, v2=found.v2)
        try:
            if found.v2:
                (path / "memory.max").write_text(str(limit_bytes))
                if (path / "memory.swap.max").exists():
                    (path / "memory.swap.max").write_text("0")
            else:
                (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
        except OSError:
            group.remove()
            raise
        return group

    def add(self, pid: int) -> None:
        """Move ``pid`` into the cgroup (its later children are born there)."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def oom_killed(self) -> bool:
        """True when the kernel killed a process of the run for going over the cap."""
        name = "memory.events" if self.v2 else "memory.oom_control"
        with contextlib.suppress(OSError, ValueError):
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        return False

    def kill(self, *, wait_s: float) -> bool:
        """SIGKILL every process of the run until none is left (at most ``wait_s``); True if empty."""
        deadline = time.monotonic() + wait_s
        while pids := self.pids():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def remove(self) -> None:
        """Delete the cgroup; on v1, hand back the page cache it holds first, or the kernel keeps a
        dying cgroup per run until memory runs short."""
        with contextlib.suppress(OSError):
            self._rmdir()

    def destroy(self, *, wait_s: float) -> bool:
        """Kill every process of the cgroup and delete it, again until the deletion takes (at most
        ``wait_s``); True when the cgroup is gone.

        One kill then one ``rmdir`` is not enough for a cgroup that processes may still be joining:
        a move into it that is under way (a write to ``cgroup.procs``, which holds the cgroup lock
        while it waits for an RCU grace period, long on a loaded machine) is not in the list the
        kill reads, and lands before the ``rmdir``, which then fails (``EBUSY``). Once the ``rmdir``
        has taken, nothing can join: a later write to its ``cgroup.procs`` fails."""
        deadline = time.monotonic() + wait_s
        for _ in range(100):  # each EBUSY after an empty kill is a process that joined late
            emptied = self.kill(wait_s=max(0.5, deadline - time.monotonic()))
            try:
                self._rmdir()
            except FileNotFoundError:
                return True  # removed by another process's clean-up
            except OSError as exc:
                # The rmdir waits for a move under way, however long: kill what joined, even past
                # the deadline. Not emptied: processes still exiting, for the next clean-up.
                if exc.errno != errno.EBUSY or not emptied:
                    return False
                time.sleep(0.01)
            else:
                return True
        return False

    def _rmdir(self) -> None:
        if not self.v2:
            with contextlib.suppress(OSError):
                (self.path / "memory.force_empty").write_text("0")
        self.path.rmdir()


@functools.lru_cache(maxsize=1)
def cgroup_problem() -> str | None:
    """Why runs cannot get a memory cgroup here, or ``None`` when they can (checked once)."""
    try:
        group = MemoryCgroup.create(64 * 1024 * 1024)
    except OSError as exc:
        return str(exc)
    group.remove()
    return None


def _remove_stale(base: Path) -> None:
    """Remove the run cgroups a killed process left behind, killing what is still in them.

    A run's processes die with their caller once the child runs, but a caller killed during the
    start-up (between bubblewrap binding its own life to the caller and letting its child go on)
    leaves that child waiting forever for a go-ahead that cannot come. Every such process is in
    the dead caller's run cgroup: bubblewrap is started by a shell that joins the cgroup first and
    execs bubblewrap only if that worked. The shell may still be joining when this runs (its caller
    died a moment ago), so each cgroup is killed and removed until the removal takes
    (:meth:`MemoryCgroup.destroy`): after that the shell cannot join and exits without starting
    bubblewrap. One that cannot be removed within the wait (processes still exiting) stays for the
    next run's clean-up. Called at every run's start: a glob of this process's cgroup folder."""
    for path in base.glob("arag-sandbox-*-*"):
        pid = path.name.split("-")[2]
        if pid.isdigit() and not Path("/proc", pid).exists():
            MemoryCgroup(path, v2=(path / "memory.max").exists()).destroy(wait_s=2)
