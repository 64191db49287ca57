"""The operating-system boundary around code mode's child process (bubblewrap + seccomp).

Threat model: the code that runs in the child is hostile and owns its whole interpreter (every
object, frame, module and file descriptor the child has). Nothing inside the child is trusted,
so everything here is set up by the parent before the child's first instruction, and enforced by
the kernel:

- namespaces (``bwrap --unshare-all --unshare-user``): user, pid (its own ``/proc``; the parent
  and every other process are invisible), network (no interface but a loopback that is down,
  so no host abstract sockets either), mount, ipc, uts, cgroup. The child is pid 1 of its
  namespace (``--as-pid-1``: no bubblewrap process inside); when it ends, the kernel ends the rest;
- a root file system that holds only what ``python -I -S`` needs, read-only: the interpreter's
  prefix, ``/usr/lib`` (shared libraries) and ``/etc/ld.so.cache``; no ``/usr/bin``, no
  ``/etc``, no home folders, no host ``/tmp``; a ``/dev`` of null, zero, full, random and urandom
  only (no ptys: they are a host-wide budget); host facts in ``/proc`` (kernel command line,
  boot id, disks, interrupts, symbols, memory and load figures, build config) masked; the only
  writable place is a size-capped tmpfs at ``/tmp``; the child's script and its context are
  copied in read-only under ``/sandbox``;
- an unprivileged uid/gid, 65534 (``nobody``) inside, and unprivileged outside too: run as root,
  the parent maps the user namespace itself (``--userns-block-fd``; ns uid 0 is host root for
  bubblewrap's set-up only) to a host uid of the run's own (from 1,900,000,000 up, where no
  account or sub-uid range lives, so per-user kernel budgets are per run), and ``setpriv``
  drops to 65534 before Python starts: the child is never root anywhere, holds no
  capabilities, and ``RLIMIT_NPROC`` applies to it. Run as another user, bubblewrap maps 65534
  to that user;
- ``no_new_privs`` (set by bubblewrap) and a seccomp filter built with libseccomp (through
  ``pyseccomp``) that refuses ``ptrace``, mounts, namespaces (``unshare``, ``setns``, ``clone``
  with namespace flags), keyrings, ``bpf``, kernel modules, ``kexec``, ``perf_event_open``,
  ``userfaultfd``, ``io_uring``, handle-based opens, clock and host settings, memory no limit
  counts (``memfd_create``, SysV shared memory), per-host-user budgets (message queues, AIO,
  inotify), the host's page cache (``fadvise64``, ``mincore``, ``cachestat``), and every socket
  family but ``AF_UNIX``; other architectures' system calls (x32,
  ``int 0x80``) kill the process;
- ``--die-with-parent`` (and, as root, ``setpriv --pdeathsig=KILL``: the kernel clears the
  parent-death signal when the uid changes), a new session, and, where one can be made, a memory
  cgroup per run (``tools/sandbox/_cgroup.py``) that caps all its processes together, kernel
  memory included, and finds every one of them when the run ends.

The resource limits (CPU, address space, file size, open files, processes, pending signals,
message queues, locked memory) are set by the child's own script before it reads the model's
code, so they hold for everything the code does.

Known limits, by design or for want of a kernel knob: the kill after a time limit waits for the
kernel to tear the namespace down, which takes up to about 4 s per GB of ``tree_memory_mb`` the
code filled (millions of files); ``fs.file-max`` is host-wide and open files are not a cgroup
resource, so on hosts with a low ``fs.file-max`` a run can hold many (each mapping of a file
keeps it open past ``RLIMIT_NOFILE``): keep systemd's default (``LONG_MAX``); ``/proc/self/cgroup``
and ``mountinfo`` show the run cgroup's name (this process's pid) and the interpreter's path; a
caller killed during a run's start-up (a few milliseconds before the child runs, while bubblewrap
waits for the user namespace's map) leaves a blocked bubblewrap process that never runs code,
which the next run started from the same cgroup kills where runs get a cgroup, and which stays
otherwise.

Requirements: Linux with user namespaces, Debian's ``bubblewrap`` (``apt-get install
bubblewrap``; ``bwrap`` 0.8 or newer), ``libseccomp`` (``libseccomp2``, in every Debian base
image), and ``setpriv`` (util-linux) when run as root. :func:`isolation_problem` says what is
missing.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tools.sandbox._cgroup import MemoryCgroup, cgroup_problem

__all__ = [
    "SANDBOX_GID",
    "SANDBOX_UID",
    "Jail",
    "Jailed",
    "isolation_problem",
    "release",
    "seccomp_program",
    "wait_for",
]

SANDBOX_UID = 65534
SANDBOX_GID = 65534
CHILD_PATH = "/sandbox/child.py"
CONTEXT_PATH = "/sandbox/context.txt"
SCRATCH = "/tmp"  # noqa: S108 - the sandbox's own tmpfs, not the host's /tmp

# Refused with EPERM. Each is either a way out of the namespaces (mounts, namespaces, ptrace,
# handles), a kernel attack surface the child has no use for, a host-wide setting, or a resource
# that no limit of the child would count.
_DENIED_SYSCALLS = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    "open_by_handle_at",
    "name_to_handle_at",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "add_key",
    "request_key",
    "keyctl",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "fanotify_init",
    "lookup_dcookie",
    "quotactl",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
    "syslog",
    "iopl",
    "ioperm",
    "vhangup",
    "uselib",
    "personality",
    # Memory outside the address-space limit (memfd pages, SysV shared memory), and budgets the
    # kernel keeps per host user or host-wide (message queues, AIO contexts, inotify instances).
    "memfd_create",
    "memfd_secret",
    "shmget",
    "shmat",
    "msgget",
    "semget",
    "mq_open",
    "io_setup",
    "inotify_init",
    "inotify_init1",
    # The host's page cache: evicting it, or watching what host processes read.
    "fadvise64",
    "mincore",
    451,  # cachestat (same number on every architecture; newer than some libseccomp releases)
)
_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)  # CLONE_NEWTIME exists only for unshare and clone3, both refused
_TIOCSTI = 0x5412
# Host facts /proc would show (masked where the host has them): the kernel's command line, boot
# id, disks, interrupts, symbols, build config, memory and load figures, keyring users.
_PROC_MASKED = tuple(
    name
    for name in (
        "cmdline",
        "sys/kernel/random/boot_id",
        "diskstats",
        "partitions",
        "interrupts",
        "kallsyms",
        "config.gz",
        "stat",
        "loadavg",
        "meminfo",
        "vmstat",
        "zoneinfo",
        "buddyinfo",
        "pagetypeinfo",
        "softirqs",
        "key-users",
        "timer_list",
    )
    if Path("/proc", name).exists()
)
# Run as root, each run's uid 65534 is a host uid of its own, far above any account or sub-uid
# range: per-user budgets of the kernel (pipe buffers, fds in flight) are then per run.
_HOST_ID_BASE = 1_900_000_000
_host_slots: set[int] = set()
_host_slots_lock = threading.Lock()


def _take_slot() -> int:
    """A slot of this process's 64 host ids not in use by another run (shared past 64 at once)."""
    with _host_slots_lock:
        slot = next((n for n in range(64) if n not in _host_slots), len(_host_slots) % 64)
        _host_slots.add(slot)
        return slot


def release(jailed: Jailed) -> None:
    """Give the run's host id back (after its processes are gone)."""
    if jailed.slot is not None:
        with _host_slots_lock:
            _host_slots.discard(jailed.slot)


@functools.lru_cache(maxsize=1)
def seccomp_program() -> bytes:
    """The child's seccomp filter as a BPF program (what ``bwrap --seccomp`` loads).

    Raises:
        RuntimeError: libseccomp (or its ``pyseccomp`` binding) is not available.
    """
    try:
        import pyseccomp as seccomp  # loads libseccomp through ctypes: only code mode needs it
    except (ImportError, RuntimeError, OSError) as exc:
        msg = f"libseccomp is not available ({exc}); install libseccomp2 and the pyseccomp package"
        raise RuntimeError(msg) from exc
    deny = seccomp.ERRNO(errno.EPERM)
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    for call in _DENIED_SYSCALLS:
        rules.add_rule(deny, call)
    for flag in _NAMESPACE_FLAGS:
        rules.add_rule(deny, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory, where a filter cannot read them: ENOSYS makes libc use clone.
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    rules.add_rule(deny, "socket", seccomp.Arg(0, seccomp.NE, socket.AF_UNIX))
    rules.add_rule(deny, "socketpair", seccomp.Arg(0, seccomp.NE, socket.AF_UNIX))
    rules.add_rule(deny, "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, 0xFFFFFFFF, _TIOCSTI))
    read, write = os.pipe()
    try:
        with os.fdopen(write, "wb") as sink:
            rules.export_bpf(sink)
        with os.fdopen(read, "rb") as source:
            return source.read()
    except BaseException:
        for fd in (read, write):
            with contextlib.suppress(OSError):
                os.close(fd)
        raise


@dataclass(frozen=True, slots=True)
class Runtime:
    """Where the interpreter the child runs lives."""

    executable: str
    mounts: tuple[str, ...]
    """Host paths bound read-only at the same place inside."""


def _runtime() -> Runtime:
    base = getattr(sys, "_base_executable", sys.executable) or sys.executable
    executable = os.path.realpath(base)
    prefixes = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.base_exec_prefix)}
    mounts = [p for p in ("/usr/lib", "/usr/lib64", "/usr/lib32", "/etc/ld.so.cache") if Path(p).exists()]
    mounts += [p for p in ("/lib", "/lib64", "/lib32") if Path(p).is_dir() and not Path(p).is_symlink()]
    mounts += sorted(prefixes)
    if not any(executable.startswith(m.rstrip("/") + "/") for m in mounts):
        mounts.append(executable)
    return Runtime(executable, tuple(dict.fromkeys(mounts)))


def _parents(paths: list[str]) -> list[str]:
    """Every ancestor folder of ``paths`` (not ``/``), shallowest first."""
    found: set[str] = set()
    for path in paths:
        parent = Path(path).parent
        while str(parent) != "/":
            found.add(str(parent))
            parent = parent.parent
    return sorted(found, key=lambda p: (p.count("/"), p))


@dataclass
class Jailed:
    """A started child: the bubblewrap process and the pid of the namespace's init."""

    process: subprocess.Popen[bytes]
    init_pid: int | None
    pidfd: int | None
    cgroup: MemoryCgroup | None = None
    """The run's memory cgroup, where one could be made."""
    slot: int | None = None
    """Which of this process's host ids the run has (run as root)."""


class Jail:
    """Starts processes inside the boundary described in the module docstring."""

    def __init__(self, *, disk_mb: int, tree_memory_mb: int | None = None) -> None:
        self.disk_mb = disk_mb
        self.tree_memory_mb = tree_memory_mb
        self.bwrap = shutil.which("bwrap") or ""
        self.root = os.geteuid() == 0
        self.setpriv = (shutil.which("setpriv") or "") if self.root else ""

    def command(
        self,
        *,
        info_fd: int,
        block_fd: int | None,
        seccomp_fd: int,
        child_fd: int,
        context_fd: int,
        empty_fds: list[int],
    ) -> list[str]:
        runtime = _runtime()
        mounts = list(runtime.mounts) + ([self.setpriv] if self.root else [])
        # --as-pid-1: no bubblewrap init inside (it would be the namespace's uid 0, i.e. root on the
        # host when we are root); the child is pid 1, and when it ends the kernel ends the rest.
        args = [self.bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", "--as-pid-1"]
        args += ["--info-fd", str(info_fd), "--seccomp", str(seccomp_fd), "--hostname", "sandbox"]
        if block_fd is not None:
            # Root maps the namespace itself (uid 0 for the set-up, 65534 for the child), and
            # setpriv keeps only what it needs to drop to 65534.
            args += ["--userns-block-fd", str(block_fd), "--cap-drop", "ALL"]
            args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
        else:
            args += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--disable-userns"]
        for folder in _parents([*mounts, CHILD_PATH]):
            args += ["--perms", "0755", "--dir", folder]
        for path in mounts:
            args += ["--ro-bind", path, path]
        for link in ("/lib", "/lib64", "/lib32"):
            if Path(link).is_symlink():
                args += ["--symlink", str(Path(link).readlink()), link]
        args += ["--proc", "/proc"]
        for name, fd in zip(_PROC_MASKED, empty_fds, strict=True):  # host facts: kernel command line, ...
            args += ["--perms", "0444", "--ro-bind-data", str(fd), f"/proc/{name}"]
        # A /dev of five harmless nodes: no ptmx (ptys are a host-wide budget), no shm, no tty.
        args += ["--perms", "0755", "--dir", "/dev"]
        for node in ("null", "zero", "full", "random", "urandom"):
            args += ["--dev-bind", f"/dev/{node}", f"/dev/{node}"]
        args += ["--symlink", "/proc/self/fd", "/dev/fd"]
        args += ["--perms", "1777", "--size", str(self.disk_mb * 1024 * 1024), "--tmpfs", SCRATCH]
        args += ["--perms", "0444", "--ro-bind-data", str(child_fd), CHILD_PATH]
        args += ["--perms", "0444", "--ro-bind-data", str(context_fd), CONTEXT_PATH]
        args += ["--chdir", SCRATCH, "--clearenv", "--setenv", "HOME", SCRATCH, "--setenv", "TMPDIR", SCRATCH]
        args += ["--setenv", "LANG", "C.UTF-8", "--"]
        if self.root:
            ids = [f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_GID}", "--clear-groups"]
            # The kernel clears the parent-death signal bubblewrap set when the uid changes;
            # setpriv sets it again after the switch, or the child outlives a killed caller.
            args += [self.setpriv, *ids, "--inh-caps=-all", "--bounding-set=-all", "--pdeathsig=KILL", "--"]
        return [*args, runtime.executable, "-I", "-S", "-B", CHILD_PATH]

    def start(self, child_source: bytes, context: bytes) -> Jailed:
        """Start the child; it waits for its header on stdin.

        Raises:
            OSError: bubblewrap could not be started or did not set the namespaces up.
        """
        group = None
        if self.tree_memory_mb is not None and cgroup_problem() is None:
            # Made first, and bubblewrap starts in it (a shell joins it, then execs bubblewrap):
            # should this process die during the start-up below, before bubblewrap's processes
            # bind their lives to it, the next run's clean-up finds them (``_remove_stale``; the
            # shell execs bubblewrap only once it is in, and one still joining is killed there too).
            group = MemoryCgroup.create(self.tree_memory_mb * 1024 * 1024)
        program = seccomp_program()
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe() if self.root else (-1, -1)
        seccomp_r = _filled_pipe(program)
        child_r = _filled_pipe(child_source)
        context_fd = os.memfd_create("arag-context", os.MFD_CLOEXEC)
        _write_all(context_fd, context)
        os.lseek(context_fd, 0, os.SEEK_SET)
        empty = [_filled_pipe(b"") for _ in _PROC_MASKED]
        passed = [info_w, seccomp_r, child_r, context_fd, *empty] + ([block_r] if self.root else [])
        command = self.command(
            info_fd=info_w,
            block_fd=block_r if self.root else None,
            seccomp_fd=seccomp_r,
            child_fd=child_r,
            context_fd=context_fd,
            empty_fds=empty,
        )
        if group is not None:
            command = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(group.path / "cgroup.procs"), *command]
        try:
            process = subprocess.Popen(  # noqa: S603 - bwrap with arguments built here
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=passed,
                env={},
                umask=0o022,
                start_new_session=True,
            )
        except BaseException:
            if group is not None:
                group.remove()
            os.close(info_r)
            if self.root:
                os.close(block_w)
            raise
        finally:
            for fd in passed:
                os.close(fd)
        slot = _take_slot() if self.root else None
        try:
            info = _read_info(info_r, timeout=10.0)
            init_pid = int(str(info["child-pid"]))
            pidfd = _pidfd(init_pid)
            for pid in (process.pid, init_pid):  # the kernel's OOM killer takes the run, not the caller
                with contextlib.suppress(OSError):
                    Path(f"/proc/{pid}/oom_score_adj").write_text("1000")
            if slot is not None:  # run as root
                host = _HOST_ID_BASE + (os.getpid() % 4_194_304) * 64 + slot
                for name in ("uid_map", "gid_map"):
                    Path(f"/proc/{init_pid}/{name}").write_text(f"0 0 1\n{SANDBOX_UID} {host} 1\n")
                os.write(block_w, b"1")
        except BaseException:
            _end(process)
            if group is not None:
                group.destroy(wait_s=5)
            if slot is not None:
                with _host_slots_lock:
                    _host_slots.discard(slot)
            raise
        finally:
            os.close(info_r)
            if self.root:
                os.close(block_w)
        return Jailed(process, init_pid, pidfd, group, slot)


def _filled_pipe(data: bytes) -> int:
    """A pipe's read end that yields ``data`` then EOF (``data`` must fit the pipe buffer)."""
    read, write = os.pipe()
    try:
        _write_all(write, data)
    finally:
        os.close(write)
    return read


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_info(fd: int, *, timeout: float) -> dict[str, object]:
    """bubblewrap's ``--info-fd`` JSON (the namespace's init pid), or OSError if it never came."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        ready, _ = wait_for([fd], timeout=deadline - time.monotonic())
        if not ready:
            raise OSError(errno.ETIMEDOUT, "bubblewrap did not start the sandbox in time")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise OSError(errno.EIO, "bubblewrap exited before starting the sandbox")
        data += chunk
        try:
            info = json.loads(data)
        except ValueError:
            continue
        if isinstance(info, dict) and "child-pid" in info:
            return info
        raise OSError(errno.EIO, f"unexpected bubblewrap info: {data[:200]!r}")


def wait_for(reading: Iterable[int], writing: Iterable[int] = (), timeout: float = 0.0) -> tuple[set[int], set[int]]:
    """The descriptors ready to read (or at their end) and to write within ``timeout`` seconds.

    ``poll``, not ``select``: a busy server has descriptors past 1024, which ``select`` refuses.
    """
    poller = select.poll()
    for fd in reading:
        poller.register(fd, select.POLLIN)
    for fd in writing:
        poller.register(fd, select.POLLOUT)
    events = poller.poll(max(0, int(timeout * 1000 + 0.999)))
    hang_up = select.POLLHUP | select.POLLERR | select.POLLNVAL
    readable = {fd for fd, event in events if event & (select.POLLIN | hang_up)}
    writable = {fd for fd, event in events if event & (select.POLLOUT | hang_up)}
    return readable & set(reading), writable & set(writing)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, 9)
        except (ProcessLookupError, PermissionError):
            process.kill()
    process.wait()


@functools.lru_cache(maxsize=1)
def isolation_problem() -> str | None:
    """What keeps the OS boundary from being set up on this machine, or ``None`` when it works.

    Checked once per process by starting a real sandbox that prints a word.
    """
    if not sys.platform.startswith("linux"):
        return f"OS isolation needs Linux (this is {sys.platform})"
    if not shutil.which("bwrap"):
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        return "setpriv (util-linux) is not installed; it drops the child to an unprivileged uid"
    try:
        seccomp_program()
    except RuntimeError as exc:
        return str(exc)
    probe = b"import os, sys\nsys.stdout.write(str(os.getuid()))\n"
    try:
        # In a cgroup where runs get one, like every run (see Jail.start on why).
        jailed = Jail(disk_mb=1, tree_memory_mb=64 if cgroup_problem() is None else None).start(probe, b"")
        out, err = jailed.process.communicate(timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bubblewrap could not start a sandbox: {exc}"
    finally:
        if "jailed" in locals():
            _end(jailed.process)
            if jailed.pidfd is not None:
                os.close(jailed.pidfd)
            if jailed.cgroup is not None:
                jailed.cgroup.destroy(wait_s=5)
            release(jailed)
    if out.strip() != str(SANDBOX_UID).encode():
        detail = err.decode(errors="replace").strip().splitlines()
        why = detail[-1] if detail else f"exit code {jailed.process.returncode}"
        hint = " (are user namespaces disabled?)" if "namespace" in why else ""
        return f"bubblewrap could not start a sandbox: {why}{hint}"
    return None
