"""Escape attempts against code mode's sandbox, each judged by an objective signal.

The attacker owns the child's interpreter. Part 1 uses each known way of switching the in-process
Python guard off and then acts; part 2 switches the guard off first (and proves it is off by
printing a marker that only unguarded code can print) and then tries every OS-level action; part 3
attacks the pipe protocol itself. The signals are outside the child: proof files on the host, a
key planted in this process's environment, connections reaching a listener here, processes alive
after ``run()``, ``run()`` raising or overrunning its limit.

The sandbox must be available: these tests fail, not skip, where the OS boundary cannot be set up.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tools.sandbox import Sandbox, SandboxLimits, SandboxResult
from tools.sandbox._cgroup import MemoryCgroup, _hierarchy, _remove_stale, cgroup_problem

TIMEOUT = 3.0
GRACE = 2.5  # run() returns within its time limit plus this
KEY = "sk-planted-" + secrets.token_hex(8)

# Switches the guard off from inside: a traceback's frame chain reaches the child's main(), whose
# `phase` list makes the audit hook return early; the real builtins come from its globals.
GUARD_OFF = textwrap.dedent(
    """
    def _guard_off():
        try:
            raise RuntimeError
        except RuntimeError as exc:
            frame = exc.__traceback__.tb_frame
        while frame is not None and "phase" not in frame.f_locals:
            frame = frame.f_back
        frame.f_locals["phase"][0] = "setup"
        return frame.f_globals["builtins"]
    B = _guard_off()
    __builtins__["__import__"] = B.__import__
    os = B.__import__("os"); sys = B.__import__("sys"); open = B.open
    print("GUARD-OFF")
    """
)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    sandbox = Sandbox(SandboxLimits(timeout_s=TIMEOUT, cpu_s=3, memory_mb=256, output_chars=20_000))
    assert sandbox.isolated
    return sandbox


@pytest.fixture
def outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A host folder the code must not reach, and a key it must not see."""
    monkeypatch.setenv("ARAG_OPENAI_API_KEY", KEY)
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text(KEY)
    yield folder
    assert not list(folder.glob("proof*")), "a proof file appeared outside the sandbox"


def run(sandbox: Sandbox, code: str, **kwargs: object) -> SandboxResult:
    started = time.monotonic()
    result = sandbox.run(code, **kwargs)  # type: ignore[arg-type]
    elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT + GRACE, f"run() took {elapsed:.1f} s"
    assert sandbox_processes() == [], "a process of the sandbox outlived run()"
    assert KEY not in result.stdout + (result.error or "") + (result.submitted or "")
    return result


def unguarded(sandbox: Sandbox, code: str, **kwargs: object) -> SandboxResult:
    result = run(sandbox, GUARD_OFF + textwrap.dedent(code), **kwargs)
    assert result.stdout.startswith("GUARD-OFF"), (result.stdout, result.error)
    return result


def sandbox_processes() -> list[str]:
    """Host processes of this test's sandboxes, or orphaned ones of any: the child script or a
    marker in their command line. (Another process's sandbox that is still running, e.g. a second
    test run on the machine, has a parent of its own and is not counted.)"""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.name == str(os.getpid()):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if ("/sandbox/child.py" in cmdline or "LEFTOVER-MARK" in cmdline) and _ours_or_orphaned(int(entry.name)):
            found.append(f"{entry.name}: {cmdline}")
    return found


def _ours_or_orphaned(pid: int) -> bool:
    parent = _parent(pid)
    if parent in (None, 0, 1):
        return not _another_trees_leftover(pid)
    while parent not in (None, 0, 1):
        if parent == os.getpid():
            return True
        parent = _parent(parent)
    return False


def _another_trees_leftover(pid: int) -> bool:
    """An orphan in a run cgroup made outside this process's own cgroup: a leftover of another
    process tree on the machine (another test session), which this session's runs never clean."""
    try:
        groups = Path(f"/proc/{pid}/cgroup").read_text()
        ours = Path("/proc/self/cgroup").read_text()
    except OSError:
        return False
    theirs = [line.split(":", 2)[2] for line in groups.splitlines() if "arag-sandbox-" in line]
    mine = {line.split(":", 2)[2].rstrip("/") for line in ours.splitlines()}
    return bool(theirs) and all(path.rsplit("/", 1)[0] not in mine for path in theirs)


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


# -- part 1: the ways of switching the Python guard off, each followed by an OS action -------------


def test_traceback_frames_reach_the_guard_state(sandbox: Sandbox, outside: Path) -> None:
    result = unguarded(sandbox, f"print(os.system('echo x > {outside}/proof'))\nopen('{outside}/proof2', 'w')")
    assert "FileNotFoundError" in (result.error or "")  # the host folder does not exist inside


def test_generator_frames_reach_the_guard_state(sandbox: Sandbox, outside: Path) -> None:
    code = f"""
    def gen():
        yield g.gi_frame.f_back
    g = gen()
    frame = next(g)
    while "phase" not in frame.f_locals:
        frame = frame.f_back
    frame.f_locals["phase"][0] = "setup"
    real = frame.f_globals["builtins"]
    real.open("/tmp/inside.txt", "w").write("guard off")
    print(real.open("/tmp/inside.txt").read())
    real.open("{outside}/proof", "w")
    """
    result = run(sandbox, textwrap.dedent(code))
    assert result.stdout == "guard off\n"
    assert "FileNotFoundError" in (result.error or "")


def test_function_globals_turn_the_audit_hook_off(sandbox: Sandbox, outside: Path) -> None:
    code = f"""
    g = llm_query.__globals__
    g["_BLOCKED_EVENTS"] = ()
    print("system:", g["os"].system("touch {outside}/proof"))
    g["os"].mkdir("{outside}")
    """
    result = run(sandbox, textwrap.dedent(code))
    assert result.stdout.startswith("system: ")
    assert result.stdout != "system: 0\n"  # no shell inside the sandbox
    assert "FileNotFoundError" in (result.error or "") or "PermissionError" in (result.error or "")


def test_sys_modules_main_reaches_the_guard(sandbox: Sandbox) -> None:
    code = """
    main = submit.__globals__["sys"].modules["__main__"]
    main._BLOCKED_EVENTS = ()
    print("system", main.os.system("kill -9 PARENT"))
    try:
        main.os.kill(PARENT, 9)
    except OSError as exc:
        print("kill", exc.errno)
    """
    result = run(sandbox, textwrap.dedent(code).replace("PARENT", str(os.getpid())))
    assert result.stdout == "system 32512\nkill 3\n", (result.stdout, result.error)  # no shell; no such pid


def test_import_closure_opens_the_allowlist(sandbox: Sandbox) -> None:
    code = """
    hook = __builtins__["__import__"]
    cells = dict(zip(hook.__code__.co_freevars, hook.__closure__))
    cells["allowed"].cell_contents = frozenset(cells["allowed"].cell_contents | {"os", "_posixsubprocess"})
    import os
    import _posixsubprocess  # spawns processes without an audit event
    print("imported os")
    print(os.path.exists("/proc/PARENT/environ"), os.path.exists("/proc/1"), os.path.exists("/proc/2"), os.getuid())
    """
    result = run(sandbox, textwrap.dedent(code).replace("PARENT", str(os.getpid())))
    assert result.stdout.startswith("imported os"), result.error
    assert result.stdout.splitlines()[-1] == "False True False 65534"  # only the sandbox's own pid 1


def test_str_subclass_with_a_lying_str(sandbox: Sandbox, outside: Path) -> None:
    code = f"""
    class Liar(str):
        def __str__(self):
            return "/tmp/ok.txt"
        def __fspath__(self):
            return "/tmp/ok.txt"
    b = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__
    b["__builtins__"]["open"](Liar("{outside}/proof"), "w").write("x")
    """
    result = run(sandbox, textwrap.dedent(code))
    assert result.error  # refused by the guard now; and the host folder is not there anyway


def test_monkeypatched_realpath(sandbox: Sandbox, outside: Path) -> None:
    code = f"""
    g = llm_query.__globals__
    g["_realpath"] = lambda path: "/tmp/x"
    g["os"].path.realpath = lambda path: "/tmp/x"
    g["__builtins__"].open("{outside}/proof", "w").write("x")
    """
    result = run(sandbox, textwrap.dedent(code))
    assert "FileNotFoundError" in (result.error or "")


# -- part 2: the guard is off; every OS-level action must still fail -----------------------------


def test_exec_of_programs(sandbox: Sandbox, outside: Path) -> None:
    result = unguarded(
        sandbox,
        f"""
        print("system", os.system("touch {outside}/proof"))
        for argv in (["/bin/sh", "-c", "touch {outside}/proof"], ["/usr/bin/env", "touch", "{outside}/proof"]):
            try:
                os.execv(argv[0], argv)
            except OSError as exc:
                print("exec", argv[0], exc.errno)
        subprocess = B.__import__("subprocess")
        done = subprocess.run([sys.executable, "-c", "open('{outside}/proof', 'w')"], capture_output=True)
        print("python", done.returncode, b"FileNotFoundError" in done.stderr)
        """,
    )
    lines = result.stdout.splitlines()
    assert lines[1] == "system 32512"  # 127 << 8: there is no shell to run
    assert lines[2:4] == ["exec /bin/sh 2", "exec /usr/bin/env 2"]
    assert lines[4] == "python 1 True"


def test_files_outside_cannot_be_written(sandbox: Sandbox, outside: Path) -> None:
    result = unguarded(
        sandbox,
        f"""
        targets = ["{outside}/proof", "/proof", "/usr/lib/proof", sys.base_prefix + "/proof",
                   "/sandbox/proof", "/etc/proof", "/proc/sys/kernel/core_pattern", "/sandbox/child.py"]
        for path in targets:
            try:
                with open(path, "a") as handle:
                    handle.write("x")
                print("WROTE", path)
            except OSError as exc:
                print("no", exc.errno)
        os.makedirs("{outside}", exist_ok=True)
        open("{outside}/proof", "w").write("only in the sandbox's tmpfs")
        print("made", os.path.exists("{outside}/proof"))
        """,
    )
    assert "WROTE" not in result.stdout
    assert "made True" in result.stdout  # inside its own /tmp; the fixture checks the host folder


def test_host_files_cannot_be_read(sandbox: Sandbox, outside: Path) -> None:
    home = Path.home()
    result = unguarded(
        sandbox,
        f"""
        for path in ["{outside}/secret.txt", "/etc/passwd", "/etc/shadow", "/work", "/home", "/var", "/run"]:
            try:
                print(path, os.listdir(path) if os.path.isdir(path) else open(path).read())
            except OSError as exc:
                print(path, "no", exc.errno)
        print(os.listdir("{home}") if os.path.isdir("{home}") else [])
        print(sorted(os.listdir("/")))
        """,
    )
    assert KEY not in result.stdout
    assert result.stdout.count(" no ") == 7, result.stdout
    # The home folder holds at most the way to the interpreter (e.g. ~/.pyenv), none of its files.
    runtime = Path(sys.base_prefix).resolve()
    allowed = {runtime.relative_to(home).parts[0]} if runtime.is_relative_to(home) else set()
    assert set(eval(result.stdout.splitlines()[-2])) <= allowed
    assert result.stdout.splitlines()[-1] == "['dev', 'etc', 'lib', 'lib64', 'proc', 'root', 'sandbox', 'tmp', 'usr']"


def test_no_network(sandbox: Sandbox, tmp_path: Path) -> None:
    unix_path = tmp_path / "host.sock"
    host_unix = socket.socket(socket.AF_UNIX)
    host_unix.bind(str(unix_path))
    host_unix.listen()
    abstract = socket.socket(socket.AF_UNIX)
    abstract_name = "\0arag-test-" + secrets.token_hex(4)
    abstract.bind(abstract_name)
    abstract.listen()
    code = f"""
    socket = B.__import__("socket")
    attempts = [
        (socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", PORT)),
        (socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", PORT)),
        (socket.AF_INET6, socket.SOCK_STREAM, ("::1", PORT)),
        (socket.AF_NETLINK, socket.SOCK_RAW, (0, 0)),
        (socket.AF_PACKET, socket.SOCK_RAW, None),
        (socket.AF_UNIX, socket.SOCK_STREAM, "{unix_path}"),
        (socket.AF_UNIX, socket.SOCK_STREAM, {abstract_name!r}),
    ]
    for family, kind, address in attempts:
        try:
            s = socket.socket(family, kind)
            s.settimeout(1)
            s.connect(address) if kind != socket.SOCK_DGRAM else s.sendto(b"x", address)
            print("REACHED", family, address)
        except (OSError, TypeError) as exc:
            print("no", getattr(exc, "errno", exc))
    print(open("/proc/net/dev").read().count(":"))
    """
    with listener() as (port, accepted):
        result = unguarded(sandbox, code.replace("PORT", str(port)))
        assert accepted() == 0
    for server in (host_unix, abstract):
        server.settimeout(0.1)
        with pytest.raises(TimeoutError):
            server.accept()
        server.close()
    assert "REACHED" not in result.stdout
    assert result.stdout.splitlines()[-1] == "1"  # one interface: the namespace's own loopback


def test_parent_proc_and_environment(sandbox: Sandbox, outside: Path) -> None:
    me = os.getpid()
    result = unguarded(
        sandbox,
        f"""
        print(os.path.exists("/proc/{me}"), os.getppid())
        seen = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                seen.append(pid)
                for name in ("environ", "cmdline"):
                    try:
                        print(open("/proc/" + pid + "/" + name, "rb").read().decode(errors="replace"))
                    except OSError as exc:
                        print("no", pid, name, exc.errno)
        print("pids", sorted(seen, key=int))
        print(dict(os.environ))
        """,
    )
    lines = result.stdout.splitlines()
    assert lines[1] == "False 0"  # this process is invisible; the child is pid 1 of its namespace
    assert lines[-2] == "pids ['1']"
    assert KEY not in result.stdout  # checked in run() too


def test_signals_reach_nothing_outside(sandbox: Sandbox) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        result = unguarded(
            sandbox,
            f"""
            signal = B.__import__("signal")
            for pid in ({os.getpid()}, {sleeper.pid}, 1):
                try:
                    os.kill(pid, signal.SIGKILL)
                    print("sent", pid)
                except OSError as exc:
                    print("no", pid, exc.errno)
            """,
        )
        assert sleeper.poll() is None, "a signal from the sandbox killed a host process"
        assert f"no {os.getpid()} 3" in result.stdout
        assert f"no {sleeper.pid} 3" in result.stdout or "sent" not in result.stdout.split("\n")[2]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_kill_minus_one_reaches_nothing_outside(sandbox: Sandbox) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        run(sandbox, GUARD_OFF + "os.kill(-1, 9)\n")
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_no_process_outlives_the_run(sandbox: Sandbox) -> None:
    result = unguarded(
        sandbox,
        """
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", "LEFTOVER-MARK"])
            os._exit(0)
        if os.fork() == 0:
            B.__import__("time").sleep(60)
        print("spawned")
        """,
    )
    assert "spawned" in result.stdout
    # run() itself asserts that no sandbox process is left; look once more after a moment
    time.sleep(0.2)
    assert sandbox_processes() == []


def test_fork_bomb_is_capped(sandbox: Sandbox) -> None:
    result = unguarded(
        sandbox,
        """
        count = 0
        try:
            while count < 500:
                if os.fork() == 0:
                    B.__import__("time").sleep(60)
                    os._exit(0)
                count += 1
        except OSError as exc:
            print("stopped at", count, exc.errno)
        """,
    )
    stopped = result.stdout.splitlines()[1].split()
    assert stopped[:2] == ["stopped", "at"]
    assert int(stopped[2]) < 16  # SandboxLimits.processes (the child itself counts)


def test_disk_filling_is_capped(sandbox: Sandbox) -> None:
    result = unguarded(
        sandbox,
        """
        written = 0
        try:
            for i in range(100):
                with open(f"/tmp/fill{i}", "wb") as handle:
                    for _ in range(15):
                        handle.write(b"x" * 2**20)
                        written += 1
        except OSError as exc:
            print("stopped at", written, "MB", exc.errno)
        try:
            open("/tmp/one", "wb").write(b"x" * 20 * 2**20)
        except OSError as exc:
            print("big file", exc.errno)
        """,
    )
    lines = result.stdout.splitlines()
    assert lines[1] == "stopped at 64 MB 28"  # ENOSPC at the tmpfs size (SandboxLimits.disk_mb)
    assert lines[2] in ("big file 27", "big file 28")  # EFBIG (file_mb) or still no space


def test_kernel_interfaces_are_refused(sandbox: Sandbox) -> None:
    result = unguarded(
        sandbox,
        """
        ctypes = B.__import__("ctypes")
        libc = ctypes.CDLL(None, use_errno=True)
        calls = {
            "unshare-user": lambda: libc.unshare(0x10000000),
            "unshare-mount": lambda: libc.unshare(0x00020000),
            "ptrace-init": lambda: libc.ptrace(16, 1, 0, 0),
            "mount": lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None),
            "chroot": lambda: libc.chroot(b"/tmp"),
            "setuid-0": lambda: libc.setuid(0),
            "keyctl": lambda: libc.syscall(250, 0, 0, 0, 0),
            "bpf": lambda: libc.syscall(321, 0, 0, 0),
            "io_uring_setup": lambda: libc.syscall(425, 1, 0),
            "perf_event_open": lambda: libc.syscall(298, 0, 0, -1, -1, 0),
            "userfaultfd": lambda: libc.syscall(323, 0),
            "clone-newuser": lambda: libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0),
        }
        for name, call in calls.items():
            print(name, call(), ctypes.get_errno())
        """,
    )
    lines = result.stdout.splitlines()[1:]
    assert len(lines) == 12, result.stdout
    for line in lines:
        _name, value, err = line.split()
        assert value == "-1", line
        assert err in ("1", "38"), line  # EPERM from seccomp (or ENOSYS)


def test_other_architectures_system_calls_kill_the_child(sandbox: Sandbox) -> None:
    code = 'ctypes = B.__import__("ctypes")\nctypes.CDLL(None).syscall(0x40000000 | 101, 0, 0, 0)\n'
    result = run(sandbox, GUARD_OFF + code)  # x32's ptrace
    assert result.limit == "seccomp"


def test_no_inherited_descriptors_or_privileges(sandbox: Sandbox) -> None:
    result = unguarded(
        sandbox,
        """
        print(sorted(int(fd) for fd in os.listdir("/proc/self/fd")))
        status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
        print(os.getresuid(), os.getresgid(), os.getgroups())
        print(*(status[k].strip() for k in ("CapEff", "CapBnd", "NoNewPrivs", "Seccomp")))
        """,
    )
    lines = result.stdout.splitlines()
    assert lines[1] == "[0, 1, 2, 3]"  # the pipes, and the descriptor listdir itself opened
    assert lines[2] == "(65534, 65534, 65534) (65534, 65534, 65534) []"
    assert lines[3] == "0000000000000000 0000000000000000 1 2"


def test_memory_is_capped_with_the_guard_off(sandbox: Sandbox) -> None:
    result = run(sandbox, GUARD_OFF + "x = bytearray(2 * 1024**3)\n")
    assert result.limit == "memory"


def test_stopped_process_is_killed_at_the_time_limit(sandbox: Sandbox) -> None:
    code = (
        "pid = os.fork()\nif pid == 0:\n    os.kill(os.getpid(), B.__import__('signal').SIGSTOP)\nos.waitpid(pid, 0)\n"
    )
    result = run(sandbox, GUARD_OFF + code)
    assert result.limit == "time"


def test_sigterm_ignored_and_a_busy_loop(sandbox: Sandbox) -> None:
    result = run(sandbox, GUARD_OFF + "s = B.__import__('signal')\ns.signal(s.SIGTERM, s.SIG_IGN)\nwhile True: pass\n")
    assert result.limit in ("time", "cpu")


def test_resources_no_per_process_limit_counts_are_refused(sandbox: Sandbox) -> None:
    """memfd pages, SysV shared memory, message queues, AIO contexts and inotify instances are
    outside the address-space limit or charged to users on the host: refused."""
    result = unguarded(
        sandbox,
        """
        ctypes = B.__import__("ctypes")
        libc = ctypes.CDLL(None, use_errno=True)
        def memfd():
            try:
                os.memfd_create("m")
                return 0
            except OSError as exc:
                return -exc.errno
        calls = {
            "memfd_create": memfd,
            "shmget": lambda: libc.shmget(0, 1 << 20, 0o1600),
            "msgget": lambda: libc.msgget(0, 0o1600),
            "semget": lambda: libc.semget(0, 1, 0o1600),
            "mq_open": lambda: libc.syscall(240, b"/q", 0o100 | 2, 0o600, None),
            "io_setup": lambda: libc.syscall(206, 128, ctypes.byref(ctypes.c_ulong(0))),
            "inotify_init1": lambda: libc.syscall(294, 0),
        }
        for name, call in calls.items():
            value = call()
            print(name, "refused" if value < 0 else "ALLOWED", ctypes.get_errno() if value == -1 else -value)
        limits = open("/proc/self/limits").read()
        for name in ("Max pending signals", "Max msgqueue size", "Max locked memory", "Max processes"):
            print(name, [line.split()[-3:-1] for line in limits.splitlines() if line.startswith(name)][0])
        """,
    )
    lines = result.stdout.splitlines()[1:]
    assert all(" refused " in line for line in lines[:7]), result.stdout
    assert lines[7:] == [
        "Max pending signals ['64', '64']",
        "Max msgqueue size ['0', '0']",
        "Max locked memory ['0', '0']",
        "Max processes ['16', '16']",
    ]


def test_dev_and_proc_show_nothing_of_the_host(sandbox: Sandbox) -> None:
    result = unguarded(
        sandbox,
        """
        print(sorted(os.listdir("/dev")))
        for path in ("/dev/ptmx", "/dev/pts", "/dev/shm", "/dev/tty"):
            print(path, os.path.exists(path))
        for path in ("/proc/cmdline", "/proc/sys/kernel/random/boot_id", "/proc/diskstats", "/proc/partitions"):
            print(path, repr(open(path).read()))
        print(open("/proc/1/cmdline", "rb").read().split(bytes(1))[-2].decode())
        """,
    )
    lines = result.stdout.splitlines()[1:]
    assert lines[0] == "['fd', 'full', 'null', 'random', 'urandom', 'zero']"
    assert all(line.endswith(" False") for line in lines[1:5])
    assert all(line.endswith(" ''") for line in lines[5:9])
    assert lines[9] == "/sandbox/child.py"  # pid 1 is the child itself: no bubblewrap process inside


def test_page_cache_and_host_figures_are_out_of_reach(sandbox: Sandbox) -> None:
    result = unguarded(
        sandbox,
        """
        ctypes = B.__import__("ctypes")
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(sys.executable, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # would evict the host's cached pages
            print("fadvise ALLOWED")
        except OSError as exc:
            print("fadvise", exc.errno)
        vec = ctypes.create_string_buffer(1)
        print("mincore", libc.mincore(ctypes.c_void_p(id(vec) & ~4095), 4096, vec), ctypes.get_errno())
        print("cachestat", libc.syscall(451, fd, 0, 0, 0), ctypes.get_errno())
        for name in ("stat", "meminfo", "loadavg", "vmstat", "key-users"):
            print(name, repr(open("/proc/" + name).read()))
        print("oom", open("/proc/self/oom_score_adj").read().strip())
        """,
    )
    lines = result.stdout.splitlines()[1:]
    assert lines[:3] == ["fadvise 1", "mincore -1 1", "cachestat -1 1"]
    assert all(line.endswith(" ''") for line in lines[3:8]), lines
    assert lines[8] == "oom 1000"  # the OOM killer takes the run before its caller


def test_concurrent_runs_are_different_host_users() -> None:
    if os.geteuid() != 0:
        pytest.skip("run as another user the sandbox's host uid is that user's")
    box = Sandbox(SandboxLimits(timeout_s=5))
    code = GUARD_OFF + "print(open('/proc/self/uid_map').read().split()[-2])\nB.__import__('time').sleep(0.3)\n"
    hosts: list[str] = []
    threads = [threading.Thread(target=lambda: hosts.append(box.run(code).stdout.split()[-1])) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(hosts)) == 3, hosts  # per-user kernel budgets are per run
    assert all(int(h) >= 1_900_000_000 for h in hosts)


def test_exiting_without_a_report_is_a_protocol_violation(sandbox: Sandbox) -> None:
    result = run(sandbox, GUARD_OFF + "os._exit(0)\n")
    assert result.limit == "protocol"
    assert "exited without reporting" in (result.error or "")


needs_cgroup = pytest.mark.skipif(cgroup_problem() is not None, reason=f"no memory cgroup here: {cgroup_problem()}")


@needs_cgroup
def test_the_run_is_capped_as_a_whole_kernel_memory_included() -> None:
    small = Sandbox(SandboxLimits(timeout_s=10, cpu_s=10, memory_mb=256, tree_memory_mb=128))
    files = "i = 0\nwhile True:\n    os.symlink('x', f'/tmp/{i}')\n    i += 1\n"  # no bytes, only inodes
    result = small.run(GUARD_OFF + files)
    assert result.limit == "memory", result
    assert "128 MB together" in (result.error or "")
    forks = (
        "for _ in range(8):\n"
        "    if os.fork() == 0:\n"
        "        x = b'x' * (100 * 2**20)\n"
        "        B.__import__('time').sleep(1)\n"
        "        os._exit(0)\n"
        "for _ in range(8):\n"
        "    os.wait()\n"
    )
    result = small.run(GUARD_OFF + forks)  # 8 x 100 MB, each under its own 256 MB address-space limit
    assert result.limit == "memory", result
    assert sandbox_processes() == []
    assert not list(Path("/sys/fs/cgroup").glob(f"**/arag-sandbox-{os.getpid()}-*"))  # each run's cgroup is removed


def test_forged_lone_surrogates_are_cleaned(sandbox: Sandbox) -> None:
    forged = b'{"type": "done", "stdout": "hi\\ud800", "error": null, "submitted": "a\\udfff", "dropped": 0}\n'
    result = run(sandbox, RAW + f"raw({forged!r})\n")
    assert (result.stdout, result.submitted) == ("hi?", "a?")
    result.report().encode("utf-8")  # what a caller does with it must not fail


def test_wall_time_counts_llm_query_time() -> None:
    sandbox = Sandbox(SandboxLimits(timeout_s=3, wall_s=2))

    def slow(prompt: str) -> str:
        time.sleep(0.8)
        return "ok"

    started = time.monotonic()
    result = sandbox.run("for _ in range(10):\n    llm_query('q')\n", llm_query=slow)
    assert result.limit == "time"
    assert "with its llm_query calls" in (result.error or "")
    assert time.monotonic() - started < 2 + 0.8 + GRACE


def test_a_parent_with_many_descriptors(sandbox: Sandbox) -> None:
    """Past fd 1024, where select() gives up: a busy server."""
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
    try:
        assert run(sandbox, "print(1)").stdout == "1\n"
    finally:
        for fd in held:
            os.close(fd)


def test_no_zombies_when_the_parent_is_a_subreaper(tmp_path: Path) -> None:
    """As pid 1 of a container (or a subreaper), the parent is who the sandbox's processes are
    reparented to: it must reap them."""
    script = (
        "import ctypes, os\n"
        "ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)\n"  # PR_SET_CHILD_SUBREAPER
        "from tools.sandbox import Sandbox\n"
        "box = Sandbox()\n"
        "for _ in range(5):\n"
        "    box.run('print(1)')\n"
        "def state(p):\n"
        "    return open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[:2]\n"
        "print(sum(state(p) == ['Z', str(os.getpid())] for p in os.listdir('/proc') if p.isdigit()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[1]
    )
    assert done.stdout.strip() == "0", done.stderr[-2000:]


def test_the_context_descriptor_is_not_inherited(monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox) -> None:
    flags: list[int] = []
    real = os.memfd_create

    def recording(name: str, flags_: int = os.MFD_CLOEXEC) -> int:
        flags.append(flags_)
        return real(name, flags_)

    monkeypatch.setattr(os, "memfd_create", recording)
    assert run(sandbox, "print(len(context))", context="abc").stdout == "3\n"
    assert flags
    assert all(f & os.MFD_CLOEXEC for f in flags)  # other programs this process starts never get it


# -- part 3: the pipe protocol; the child writes whatever it likes to its stdout ------------------

RAW = GUARD_OFF + "def raw(data):\n    os.write(1, data)\n"


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"not json\n", "not a valid message"),
        (b'{"type": "done", "stdout": 5, "error": null, "submitted": null, "dropped": 0}\n', "not a valid message"),
        (b'{"type": "done", "stdout": "", "error": null, "submitted": null, "dropped": -1}\n', "not a valid message"),
        (b'{"type": "done", "stdout": "", "error": null, "submitted": null, "dropped": 1' + b"0" * 5000 + b"}\n", ""),
        (b'{"type": "done", "stdout": "", "error": null, "submitted": null, "dropped": 0, "x": 1}\n', "not a valid"),
        (b'{"type": "shell", "command": "id"}\n', "not a valid message"),
        (b"[" * 100_000 + b"]" * 100_000 + b"\n", "not a valid message"),
        (b'{"type": "llm_query", "prompt": "\\ud800"}\n{"type": "llm_query", "prompt": "b"}\n', "before the reply"),
        (b"\xff\xfe\n", "not a valid message"),
        (b"x" * 5_000_000, "longer than"),
        (b'{"type": "done", "stdout": "' + b"y" * 30_000 + b'", "error": null, "submitted": null, "dropped": 0}\n', ""),
        (b'{"type": "ready"}\n', "a second 'ready'"),
    ],
    ids=[
        "not-json",
        "wrong-type",
        "negative",
        "5000-digits",
        "extra-field",
        "unknown-type",
        "deep-nesting",
        "request-flood",
        "bad-utf8",
        "no-newline",
        "stdout-over-cap",
        "second-ready",
    ],
)
def test_malformed_messages_end_the_child(sandbox: Sandbox, payload: bytes, why: str) -> None:
    result = run(sandbox, RAW + f"raw({payload!r})\nwhile True: pass\n", llm_query=lambda p: "ok")
    assert result.limit == "protocol", result
    assert (result.error or "").startswith("protocol violation"), result.error
    assert why in (result.error or "")


def test_forged_done_is_taken_and_the_child_is_ended(sandbox: Sandbox) -> None:
    forged = b'{"type": "done", "stdout": "forged", "error": null, "submitted": "42", "dropped": 0}\n'
    result = run(sandbox, RAW + f"raw({forged!r})\nwhile True: pass\n")
    assert (result.stdout, result.submitted, result.error) == ("forged", "42", None)  # its own claim, nothing more


def test_a_child_that_never_reads_its_replies(sandbox: Sandbox) -> None:
    request = b'{"type": "llm_query", "prompt": "q"}\n'
    huge = "z" * 5_000_000  # far more than a pipe holds
    result = run(sandbox, RAW + f"raw({request!r})\nB.__import__('time').sleep(60)\n", llm_query=lambda p: huge)
    assert result.limit == "time"


def test_closed_output_then_running(sandbox: Sandbox) -> None:
    result = run(sandbox, GUARD_OFF + "os.close(1)\nwhile True: pass\n")
    assert result.limit in ("protocol", "time", "cpu")


def test_stderr_flood_does_not_block(sandbox: Sandbox) -> None:
    result = run(sandbox, GUARD_OFF + "for _ in range(2000): os.write(2, b'e' * 65536)\nprint('after')\n")
    assert result.stdout == "GUARD-OFF\nafter\n"


def test_the_callers_llm_query_failing_or_huge_is_reported(sandbox: Sandbox) -> None:
    def failing(prompt: str) -> str:
        raise RuntimeError("sub-model down")

    result = run(sandbox, "print(llm_query('x'))", llm_query=failing)
    assert "sub-model down" in (result.error or "")
    result = run(sandbox, "print(len(llm_query('x')))", llm_query=lambda p: "w" * 3_000_000)
    assert result.stdout == "3000000\n"


# -- helpers ---------------------------------------------------------------------------------------


class listener:  # noqa: N801 - used as a context manager, reads as one
    """A TCP listener on loopback; ``accepted()`` counts the connections that reached it."""

    def __enter__(self) -> tuple[int, object]:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.server.settimeout(0.2)
        return self.server.getsockname()[1], self.accepted

    def accepted(self) -> int:
        count = 0
        while True:
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                return count
            connection.close()
            count += 1

    def __exit__(self, *exc: object) -> None:
        self.server.close()


def test_the_unprivileged_path_as_another_user() -> None:
    """Run as a non-root user (here: uid 1000 in a user namespace), bubblewrap maps the uid itself."""
    if os.geteuid() != 0:
        pytest.skip("this process is not root: every other test already ran the unprivileged path")
    script = "from tools.sandbox import Sandbox\nr = Sandbox().run('print(1)')\nprint(r.stdout.strip(), r.error)\n"
    done = subprocess.run(
        ["unshare", "--user", "--map-user=1000", "--map-group=1000", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[1],
    )
    assert done.stdout.strip() == "1 None", done.stderr[-2000:]


_CALLER = (
    "from tools.sandbox import Sandbox, SandboxLimits\n"
    "print('started', flush=True)\n"
    "Sandbox(SandboxLimits(timeout_s=60, cpu_s=60)).run('while True:\\n    pass\\n')\n"
)


def _caller() -> subprocess.Popen[str]:
    caller = subprocess.Popen(
        [sys.executable, "-c", _CALLER], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1]
    )
    assert caller.stdout is not None
    assert caller.stdout.readline().strip() == "started"
    return caller


def _code_runs() -> bool:
    """The child script runs (bubblewrap has exec'd it: its argv[0] is the interpreter, and it is
    not on its way out: an exiting process runs no more code, see :func:`_exiting`)."""
    return any(
        not line.split(": ", 1)[1].startswith(("/usr/bin/bwrap", "/bin/sh")) and not _exiting(line.split(":", 1)[0])
        for line in sandbox_processes()
    )


def _burning_cpu(seconds: float) -> list[str]:
    """Child scripts that run code: alive at both ends of ``seconds`` and using at least a
    twentieth of a core in between (a loop gets far more even on a loaded machine; a child waiting
    for code uses none once its interpreter is up, which takes a few hundredths of a second).

    The process list alone cannot tell: a caller killed while bubblewrap still sets up can leave
    a child script that starts after the kill, finds no code on its stdin and exits. That child
    never runs code (the code goes only after "ready", to a caller that is alive) and sleeps in its
    read, while the test's code (``while True: pass``) takes all the CPU it gets."""

    def ticks() -> dict[str, tuple[str, int]]:
        found = {}
        for line in sandbox_processes():
            pid, cmdline = line.split(": ", 1)
            if cmdline.startswith(("/usr/bin/bwrap", "/bin/sh")) or _exiting(pid):
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                found[pid] = (line, int(fields[11]) + int(fields[12]))
        return found

    before = ticks()
    if not before:
        return []
    time.sleep(seconds)
    per_second = os.sysconf("SC_CLK_TCK")
    after = ticks()
    return [
        line
        for pid, (line, used) in after.items()
        if pid in before and used - before[pid][1] >= seconds * per_second / 20
    ]


def _wait_until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def _exiting(pid: str) -> bool:
    """The process is on its way out (``PF_EXITING`` in its stat flags): it runs no more code. On
    cgroup v1 such a process shows the root of every hierarchy in ``/proc/PID/cgroup`` (the kernel
    reports exiting tasks there), and tearing down its namespaces can take seconds under load."""
    try:
        flags = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[6])
    except (OSError, IndexError, ValueError):
        return True  # gone
    return bool(flags & 0x4)


def _outside_a_run_cgroup() -> list[str]:
    """Live (not exiting) sandbox processes that are in no run cgroup and not on their way into one."""
    left = []
    for line in sandbox_processes():
        pid = line.split(":", 1)[0]
        with contextlib.suppress(OSError):
            outside = "arag-sandbox-" not in Path(f"/proc/{pid}/cgroup").read_text()
            if outside and not _exiting(pid) and not _joining_a_run_cgroup(line):
                left.append(line)
    return left


def _joining_a_run_cgroup(line: str) -> bool:
    """The shell that starts bubblewrap, still in its write of its own pid to a run cgroup's
    ``cgroup.procs`` (a move into a cgroup waits for an RCU grace period, which on a loaded machine
    takes seconds and shows the shell in state D or R). Its command line is still the shell's, so
    it has not exec'd bubblewrap and runs nothing else: it lands in the run cgroup, or its write
    fails (the cgroup went) and it exits. The clean-up and the test's last check see to both."""
    cmdline = line.split(": ", 1)[1]
    return cmdline.startswith('/bin/sh -c echo $$ > "$0"') and "/arag-sandbox-" in cmdline


def _described(lines: list[str]) -> list[str]:
    """Processes of sandbox_processes() with their state, what they wait in and their cgroups."""
    described = []
    for line in lines:
        pid = line.split(":", 1)[0]
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            waits = Path(f"/proc/{pid}/wchan").read_text()
            groups = [g.split(":", 2)[2] for g in Path(f"/proc/{pid}/cgroup").read_text().splitlines()]
        except (OSError, IndexError):
            described.append(f"{line[:100]} (gone)")
            continue
        exiting = ", exiting" if _exiting(pid) else ""
        described.append(f"{line[:100]} (state {state}{exiting}, waits in {waits}, cgroups {sorted(set(groups))})")
    return described


def _run_cgroups_of(pids: list[int]) -> list[str]:
    """The run cgroups that processes ``pids`` made in this process's cgroup and that are still there."""
    found = _hierarchy()
    assert not isinstance(found, str), found
    return [path.name for pid in pids for path in found.base.glob(f"arag-sandbox-{pid}-*")]


def test_the_sandbox_dies_with_its_parent() -> None:
    """The caller killed outright (SIGKILL: no finally runs) while the code runs: the run's
    processes go with it (bubblewrap's parent-death signal, set again by setpriv after the uid
    switch, which clears it)."""
    caller = _caller()
    try:
        # Running code, seen by the CPU it takes: the process list alone flickers while bubblewrap
        # execs setpriv and setpriv the interpreter. This is also what the next test checks for.
        _wait_until(lambda: bool(_burning_cpu(seconds=0.5)), 30)  # a loaded machine starts it slowly
        assert _burning_cpu(seconds=1.0), "the sandbox never started"
    finally:
        caller.kill()
        caller.wait()
    _wait_until(lambda: not sandbox_processes(), 10)
    assert sandbox_processes() == []


@pytest.mark.skipif(cgroup_problem() is not None, reason=f"no memory cgroup here: {cgroup_problem()}")
def test_a_caller_killed_during_the_start_up_leaves_nothing_for_long() -> None:
    """Killed while bubblewrap still sets the namespace up (before its processes bind their
    lives to the caller), a caller can leave a process of bubblewrap's waiting for a go-ahead that
    never comes. It never runs code (the code goes only after the child's "ready"), it sits in the
    dead caller's cgroup, and the next run's clean-up (here: another process's first run) kills it
    and removes the cgroup, so that a shell of the dead caller's still on its way in cannot join."""
    callers = []
    for attempt in range(12):
        caller = _caller()
        callers.append(caller.pid)
        try:
            _wait_until(lambda: bool(sandbox_processes()), 30)
            time.sleep(attempt * 0.004)  # kill at a different point of the start-up each time
        finally:
            caller.kill()
            caller.wait()
        # A child that got no code exits on its stdin's end (seconds on a loaded machine).
        _wait_until(lambda: not _code_runs(), 30)
        # What is left is held in the run's cgroup. The shell that starts bubblewrap joins the
        # cgroup before it execs bubblewrap, and may still be on its way in when its caller dies:
        # a move into a cgroup waits for an RCU grace period, which takes seconds on a loaded machine.
        _wait_until(lambda: not _outside_a_run_cgroup(), 30)
        assert _described(_outside_a_run_cgroup()) == []
        running = _burning_cpu(seconds=2.0)
        assert running == [], f"the code ran on after its caller was killed: {_described(running)}"
    done = subprocess.run(
        [sys.executable, "-c", "from tools.sandbox import Sandbox\nprint(Sandbox().run('print(1)').stdout)"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[1],
    )
    assert done.stdout.strip() == "1", done.stderr[-2000:]
    # The clean-up is done when that run has started: no dead caller's cgroup is left to join.
    assert _run_cgroups_of(callers) == []
    # A shell whose cgroup went exits; a killed process's namespaces can take seconds to go.
    _wait_until(lambda: not sandbox_processes(), 30)
    assert _described(sandbox_processes()) == []


@pytest.mark.skipif(cgroup_problem() is not None, reason=f"no memory cgroup here: {cgroup_problem()}")
def test_a_process_joining_a_dead_callers_cgroup_during_its_clean_up_is_killed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race behind the test above, made certain: a dead caller's shell joins the cgroup after
    the clean-up read it empty and before it removes it (its move was under way). The clean-up
    kills it all the same, and removes the cgroup."""
    found = _hierarchy()
    assert not isinstance(found, str), found
    gone = subprocess.Popen(["true"])  # a process that is gone: the dead caller
    gone.wait()
    group = found.base / f"arag-sandbox-{gone.pid}-0"
    group.mkdir()
    joined: list[subprocess.Popen[bytes]] = []
    kill = MemoryCgroup.kill

    def kill_then_join(self: MemoryCgroup, *, wait_s: float) -> bool:
        empty = kill(self, wait_s=wait_s)
        if self.path == group and not joined:
            script = 'echo $$ > "$0" && exec sleep 60'  # as Jail.start does, with sleep for bubblewrap
            joined.append(subprocess.Popen(["/bin/sh", "-c", script, str(group / "cgroup.procs")]))
            _wait_until(lambda: str(joined[0].pid) in MemoryCgroup(group, v2=self.v2).pids() or not group.exists(), 5)
        return empty

    monkeypatch.setattr(MemoryCgroup, "kill", kill_then_join)
    try:
        _remove_stale(found.base)
        assert joined, "the clean-up did not take the dead caller's cgroup"
        with contextlib.suppress(subprocess.TimeoutExpired):
            joined[0].wait(timeout=5)
        assert joined[0].returncode == -signal.SIGKILL, "a process that joined during the clean-up outlived it"
        assert not group.exists()
    finally:
        for shell in joined:
            shell.kill()
            shell.wait()
        with contextlib.suppress(OSError):
            group.rmdir()


def test_guard_off_marker_needs_the_guard_off(sandbox: Sandbox) -> None:
    """The marker the part-2 tests look for cannot be printed by guarded code that fails to escape."""
    result = run(sandbox, "import os\nprint('GUARD-OFF')")
    assert not result.stdout.startswith("GUARD-OFF")
