"""Walking the folders to ingest: which files are read, and why every other entry is not.

Nothing is skipped without a word. Every entry left out comes back as a :class:`Skipped` with its
kind and a reason that says how to include it; :meth:`Walk.summary` counts them by kind
("skipped: 2 hidden (use --hidden), 14 ignored by .gitignore, 3 unsupported").

The rules, in order: version-control and tool folders (``.git``, ``node_modules``, virtualenvs,
caches) are never walked; hidden entries are left out unless ``hidden``; ``.gitignore`` files
(those of the enclosing repository above a folder, then the folder's own, nested ones included)
are respected unless ``gitignore`` is off; only regular files are read (a FIFO named ``x.txt``
would block a reader forever); a symlink whose target is outside every given path is left out
unless ``follow_symlinks``, and a symlink loop is reported, not followed. Paths named explicitly
are taken even when hidden or ignored: the user asked for them.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pathspec

__all__ = ["SKIP_KINDS", "FoundFile", "SkipKind", "Skipped", "Walk", "WalkOptions", "walk"]

SkipKind = Literal[
    "hidden",
    "ignored",
    "tool",
    "unsupported",
    "outside",
    "loop",
    "broken",
    "special",
    "too-large",
    "missing",
    "unreadable",
    "duplicate",
]

SKIP_KINDS: dict[SkipKind, str] = {
    "hidden": "hidden (use --hidden)",
    "ignored": "ignored by .gitignore (use --no-gitignore)",
    "tool": "version-control or tool folders",
    "unsupported": "unsupported",
    "outside": "symlinks to outside the given paths (use --follow-symlinks)",
    "loop": "symlink loops",
    "broken": "broken symlinks",
    "special": "not regular files",
    "too-large": "too large (raise ARAG_INGEST_MAX_FILE_MB)",
    "missing": "not found",
    "unreadable": "unreadable",
    "duplicate": "reached twice (symlinks to inside, paths named twice)",
}
"""What each kind of skip is called in a summary, with how to include such entries."""

_VCS = (".git", ".hg", ".svn", ".bzr", "_darcs", "CVS")
_TOOLS = ("node_modules", "__pycache__", ".venv", "venv", ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache")
TOOL_FOLDERS = frozenset((*_VCS, *_TOOLS, ".ipynb_checkpoints", ".eggs"))
"""Folders that hold tools' state, not documents; a folder with a ``pyvenv.cfg`` is a virtualenv too."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """An entry that is not ingested, and why."""

    path: str
    kind: SkipKind
    reason: str
    folder: bool = False
    """A whole folder was left out (its contents were not looked at)."""


@dataclass(frozen=True, slots=True)
class FoundFile:
    """A regular file to load: its absolute, resolved path and what ``stat`` said of it."""

    path: Path
    size: int
    mtime_ns: int
    device: int = 0
    inode: int = 0
    """Which file the walk saw: a reader checks the file it opens is this one (not one swapped in
    since, e.g. a symlink to outside the given paths)."""

    @property
    def fingerprint(self) -> tuple[int, int]:
        """(size, modification time): equal fingerprints mean the file was not touched."""
        return (self.size, self.mtime_ns)


@dataclass(frozen=True, slots=True)
class WalkOptions:
    """Which entries a walk takes."""

    suffixes: frozenset[str]
    """File types that can be loaded (lower case, with the dot)."""
    hidden: bool = False
    """Take entries whose name starts with a dot (tool folders stay out)."""
    gitignore: bool = True
    """Leave out what ``.gitignore`` files ignore."""
    follow_symlinks: bool = False
    """Follow symlinks whose target is outside the given paths."""
    max_file_bytes: int | None = None
    """Leave out files larger than this."""


@dataclass
class Walk:
    """The files a walk found, in a stable order, and every entry it left out."""

    files: list[FoundFile] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    roots: list[Path] = field(default_factory=list)
    """The given paths, absolute and resolved."""
    warnings: list[str] = field(default_factory=list)
    """Problems that left nothing out but are worth saying (an unreadable ``.gitignore`` line)."""

    def counts(self) -> Counter[SkipKind]:
        """Entries left out, by kind."""
        return Counter(s.kind for s in self.skipped)

    def summary(self) -> str:
        """``"skipped: 2 hidden (use --hidden), 3 unsupported"``, or ``""`` when nothing was."""
        counts = self.counts()
        parts = [f"{counts[kind]} {label}" for kind, label in SKIP_KINDS.items() if counts[kind]]
        return f"skipped: {', '.join(parts)}" if parts else ""


def walk(paths: Iterable[str | Path], options: WalkOptions) -> Walk:
    """Expand files and folders (recursively) into the files to load and the entries left out.

    Paths come out resolved (the real path of each file). Each folder is opened without following
    a symlink and checked to be the one its parent listed, and each entry is judged by ``lstat``
    relative to that open folder, so swapping a folder or file for a symlink while the walk runs
    cannot lead it outside the given paths.
    """
    given = [Path(p).expanduser().absolute() for p in paths]
    result = Walk(roots=[Path(os.path.realpath(p)) for p in given])
    seen: set[tuple[int, int]] = set()
    for path, real in zip(given, result.roots, strict=True):
        try:
            info = real.stat()  # a path named explicitly is followed: the user asked for it
        except OSError as exc:
            result.skipped.append(_stat_failure(path, exc))
            continue
        if stat.S_ISDIR(info.st_mode):
            _walk_folder(real, info, options, result, seen)
        else:
            _take_file(real, info, options, result, seen)
    return result


def _walk_folder(
    root: Path, info: os.stat_result, options: WalkOptions, result: Walk, seen: set[tuple[int, int]]
) -> None:
    visited = {(info.st_dev, info.st_ino)}
    above = _enclosing_ignores(root, result) if options.gitignore else []
    stack: list[tuple[Path, tuple[int, int], list[_Ignore]]] = [(root, (info.st_dev, info.st_ino), above)]
    while stack:
        folder, identity, ignores = stack.pop()
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            result.skipped.append(Skipped(str(folder), "unreadable", f"cannot open: {_why(exc)}", folder=True))
            continue
        try:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != identity:
                reason = "replaced while the walk ran (by a symlink?); not walked"
                result.skipped.append(Skipped(str(folder), "unreadable", reason, folder=True))
                continue
            try:
                names = sorted(os.listdir(fd))  # noqa: PTH208 - of the open folder, not of a path
            except OSError as exc:
                result.skipped.append(Skipped(str(folder), "unreadable", f"cannot list: {_why(exc)}", folder=True))
                continue
            if options.gitignore and ".gitignore" in names:
                found = _Ignore.read(folder, result, dir_fd=fd)
                ignores = [*ignores, found] if found else ignores
            stack.extend(reversed(_entries(folder, fd, names, ignores, options, result, seen, visited)))
        finally:
            os.close(fd)


def _entries(
    folder: Path,
    fd: int,
    names: list[str],
    ignores: list[_Ignore],
    options: WalkOptions,
    result: Walk,
    seen: set[tuple[int, int]],
    visited: set[tuple[int, int]],
) -> list[tuple[Path, tuple[int, int], list[_Ignore]]]:
    """Judge the entries of one open folder; returns its sub-folders to walk, in order."""
    folders: list[tuple[Path, tuple[int, int], list[_Ignore]]] = []
    for name in names:
        path = folder / name
        if name == ".gitignore" and options.gitignore:
            continue  # read above: it says what to skip, it is not a document
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError as exc:
            result.skipped.append(_stat_failure(path, exc))
            continue
        is_link = stat.S_ISLNK(info.st_mode)
        if is_link:
            try:
                info = path.stat()  # what the link leads to
            except OSError as exc:
                result.skipped.append(_stat_failure(path, exc))
                continue
        is_dir = stat.S_ISDIR(info.st_mode)
        skip = _rule(path, name, is_dir, ignores, options)
        if skip is None and is_link:
            skip = _symlink_rule(path, is_dir, options, result.roots)
            path = Path(os.path.realpath(path))  # a followed link is walked and stored as its target
        if skip is not None:
            result.skipped.append(skip)
        elif not is_dir:
            _take_file(path, info, options, result, seen)
        elif (info.st_dev, info.st_ino) in visited:  # a followed symlink (or a bind mount) that leads back
            reason = "a folder already walked (a loop through a followed symlink); not walked again"
            result.skipped.append(Skipped(str(folder / name), "loop", reason, folder=True))
        else:
            visited.add((info.st_dev, info.st_ino))
            folders.append((path, (info.st_dev, info.st_ino), ignores))
    return folders


def _rule(path: Path, name: str, is_dir: bool, ignores: Sequence[_Ignore], options: WalkOptions) -> Skipped | None:
    if is_dir and (name in TOOL_FOLDERS or (path / "pyvenv.cfg").is_file()):
        return Skipped(str(path), "tool", "a version-control, tool or virtualenv folder", folder=True)
    if name.startswith(".") and not options.hidden:
        return Skipped(str(path), "hidden", "hidden; use --hidden to include hidden entries", folder=is_dir)
    if _last_says_ignored(ignores, path, is_dir):
        return Skipped(str(path), "ignored", "ignored by .gitignore; use --no-gitignore to include it", folder=is_dir)
    return None


def _symlink_rule(path: Path, is_dir: bool, options: WalkOptions, roots: list[Path]) -> Skipped | None:
    """A symlink to inside the given paths is not followed: its target is walked under its own
    path (or left out for its own reason), so nothing is ingested twice and no link makes a loop.
    A symlink to outside is followed only with ``follow_symlinks``."""
    target = Path(os.path.realpath(path))
    if any(target.is_relative_to(root) for root in roots):
        if is_dir and Path(os.path.realpath(path.parent)).is_relative_to(target):
            return Skipped(str(path), "loop", f"a symlink to {target}, a folder that contains it: a loop", folder=True)
        reason = f"a symlink to {target}, which is inside the given paths and taken (or not) under its own path"
        return Skipped(str(path), "duplicate", reason, folder=is_dir)
    if not options.follow_symlinks:
        reason = f"a symlink to {target}, outside the given paths; use --follow-symlinks to include it"
        return Skipped(str(path), "outside", reason, folder=is_dir)
    return None


def _take_file(
    path: Path, info: os.stat_result, options: WalkOptions, result: Walk, seen: set[tuple[int, int]]
) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "a device"
        result.skipped.append(Skipped(str(path), "special", f"{kind}, not a regular file; only regular files are read"))
        return
    if path.suffix.lower() not in options.suffixes:
        kinds = " ".join(sorted(options.suffixes))
        reason = f"unsupported file type {path.suffix or '(none)'!r}; supported: {kinds}"
        result.skipped.append(Skipped(str(path), "unsupported", reason))
        return
    if options.max_file_bytes is not None and info.st_size > options.max_file_bytes:
        result.skipped.append(Skipped(str(path), "too-large", too_large(info.st_size, options.max_file_bytes)))
        return
    identity = (info.st_dev, info.st_ino)
    if identity in seen:
        result.skipped.append(Skipped(str(path), "duplicate", "the same file as one already taken (named twice?)"))
        return
    seen.add(identity)
    result.files.append(FoundFile(path, info.st_size, info.st_mtime_ns, info.st_dev, info.st_ino))


def too_large(size: int, limit: int) -> str:
    """The reason for leaving out a file over the size cap, with how to raise the cap."""
    mb = -(-size // 2**20)
    return (
        f"{size / 2**20:.1f} MB, over the {limit / 2**20:g} MB per-file cap; "
        f"set ARAG_INGEST_MAX_FILE_MB={mb} (or more) to ingest it"
    )


def _stat_failure(path: Path, exc: OSError) -> Skipped:
    if exc.errno == errno.ELOOP:
        return Skipped(str(path), "loop", "a symlink loop (it resolves to itself)")
    if exc.errno == errno.ENOENT:
        if path.is_symlink():
            return Skipped(str(path), "broken", f"a broken symlink (to {path.readlink()})")
        return Skipped(str(path), "missing", "no such file or folder")
    return Skipped(str(path), "unreadable", f"cannot read: {_why(exc)}")


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


# -- .gitignore ------------------------------------------------------------------------------


_GITIGNORE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class _Ignore:
    """One ``.gitignore`` and the folder its patterns are relative to."""

    base: Path
    spec: pathspec.GitIgnoreSpec

    @classmethod
    def read(cls, folder: Path, result: Walk, dir_fd: int | None = None) -> _Ignore | None:
        """The folder's ``.gitignore``, read as a hostile file: a regular file only (not a FIFO or
        a symlink to a device), its first MB, each line that is not a valid pattern dropped with
        a warning. None (with a warning) when it cannot be used at all."""
        where = folder / ".gitignore"
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(".gitignore" if dir_fd is not None else where, flags, dir_fd=dir_fd)
        except OSError as exc:
            result.warnings.append(f"{where}: not used: {_why(exc)} (a symlink is not followed)")
            return None
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                result.warnings.append(f"{where}: not used: not a regular file")
                return None
            data = handle.read(_GITIGNORE_BYTES + 1)
        if len(data) > _GITIGNORE_BYTES:
            result.warnings.append(f"{where}: only its first MB is used")
            data = data[:_GITIGNORE_BYTES]
        lines = data.decode("utf-8", errors="replace").splitlines()
        try:
            return cls(folder, pathspec.GitIgnoreSpec.from_lines(lines))
        except Exception:
            kept = []
            for number, line in enumerate(lines, start=1):
                try:
                    pathspec.GitIgnoreSpec.from_lines([line])
                except Exception as exc:
                    result.warnings.append(f"{where}: line {number} not used: {exc}")
                else:
                    kept.append(line)
            return cls(folder, pathspec.GitIgnoreSpec.from_lines(kept))

    def check(self, path: Path, is_dir: bool) -> bool | None:
        """True: ignored; False: re-included by a ``!`` pattern; None: not mentioned."""
        try:
            relative = path.relative_to(self.base).as_posix()
        except ValueError:
            return None
        return self.spec.check_file(relative + "/" if is_dir else relative).include


def _last_says_ignored(ignores: Sequence[_Ignore], path: Path, is_dir: bool) -> bool:
    # As in git, the deepest .gitignore that mentions the path decides.
    for ignore in reversed(ignores):
        verdict = ignore.check(path, is_dir)
        if verdict is not None:
            return verdict
    return False


def _enclosing_ignores(root: Path, result: Walk) -> list[_Ignore]:
    """The ``.gitignore`` files above ``root`` up to the top of its git repository, outermost first."""
    above: list[_Ignore] = []
    for folder in root.parents:
        if (folder / ".gitignore").is_file() and (found := _Ignore.read(folder, result)):
            above.append(found)
        if (folder / ".git").exists():
            return above[::-1]
    return []  # not inside a repository: folders above it say nothing about it
