"""Making student code reachable by the isolated uids before grading starts.

A student's command runs under an unprivileged uid that belongs to no group. When its folder (or a folder
above it, like root's 0700 home or a `mktemp -d` checkout) is private, the command cannot even start and the
student would be graded on "exit status 1". So, before the run: each student's folder is tried as such a uid;
if it cannot be read, a read-only copy (owned by root, readable by all, one per folder) is made in a place
every uid can reach, and the command runs there. What stays unreachable (the program itself, e.g. a venv's
python under /root) is said in one line, and grading stops with exit status 2 before anything runs.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from .rubric import Student

# not needed to run a student's server, and large: left out of read-only copies
SKIP = shutil.ignore_patterns(".git", ".venv", ".cache", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache")
MAX_COPY = 500 * 1024 * 1024
# as the student's uid: 3 folder not readable, 4 a file or folder in it not readable, 5 program not found
_CHECK = ('cd -- "$1" 2>/dev/null && [ -r . ] || exit 3; '
          'find . -name .git -prune -o ! -readable -print 2>/dev/null | grep -q . && exit 4; '
          '[ -z "$2" ] || command -v -- "$2" >/dev/null 2>&1 || exit 5; exit 0')


def program(command: str) -> str:
    """The program a shell command line starts (after `exec`, `env` and VAR=value words)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return ""
    while words and (words[0] in ("exec", "env") or ("=" in words[0] and not words[0].startswith("="))):
        words.pop(0)
    return words[0] if words else ""


def _try(drop: list[str], folder: str, prog: str) -> int:
    env_path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    argv = [*drop, "env", "-i", f"PATH={env_path}", "/bin/sh", "-c", _CHECK, "sh", folder, prog]
    try:
        return subprocess.run(argv, capture_output=True, timeout=60).returncode
    except (OSError, subprocess.TimeoutExpired):
        return 3


def _size(folder: Path) -> int:
    total = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in (".git", ".venv", "__pycache__")]
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
        if total > MAX_COPY:
            break
    return total


class _TooLarge(Exception):
    pass


def _read_only_copy(source: Path, into: Path) -> Path:
    """A read-only copy of `source` in `into`, bounded: it never takes more than MAX_COPY octets of disk, and
    never copies `into` into itself (a folder holding the copies may sit inside the student's folder)."""
    target = into / f"{len(list(into.iterdir())):03d}-{source.name or 'root'}"
    holder = into.resolve()
    copied = 0

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = set(SKIP(folder, names))
        for name in names:
            path = Path(folder, name)
            mode = path.lstat().st_mode
            # only files, folders and links: a device (a container rootfs's /dev/zero) would be read forever;
            # never another file system (a mounted container layer) or the copies' own folder
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)) or (
                    stat.S_ISDIR(mode) and (os.path.ismount(path) or path.resolve() in (holder, target.resolve()))):
                skipped.add(name)
        return skipped

    def bounded_copy(src: str, dst: str) -> str:
        nonlocal copied
        copied += os.lstat(src).st_size
        if copied > MAX_COPY:
            raise _TooLarge(source)
        return shutil.copy2(src, dst)

    try:
        shutil.copytree(source, target, symlinks=True, ignore=ignore, copy_function=bounded_copy)
    except _TooLarge:  # not an OSError: copytree lets it through at once
        shutil.rmtree(target, ignore_errors=True)
        raise
    for root, dirs, files in os.walk(target):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o555)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                executable = os.stat(path).st_mode & stat.S_IXUSR
                os.chmod(path, 0o555 if executable else 0o444)
    target.chmod(0o555)
    return target


def make_reachable(students: list[Student], uids: dict[str, int], drop: Callable[[int], list[str]],
                   cwd: Path) -> tuple[Path | None, list[str]]:
    """Point unreachable students at read-only copies of their folders (`entry['workdir']`); returns the
    folder holding the copies (to remove after the run) and one line per student that still cannot run."""
    problems: list[str] = []
    copies: dict[Path, Path] = {}
    holder: Path | None = None
    tried: dict[tuple[str, str], int] = {}  # every student uid is "other" alike: one try per folder and program

    def attempt(uid: int, folder: str, prog: str) -> int:
        if (folder, prog) not in tried:
            tried[(folder, prog)] = _try(drop(uid), folder, prog)
        return tried[(folder, prog)]

    for s in students:
        uid = uids.get(s.label)
        if s.kind != "command" or uid is None:
            continue
        folder = Path(s.entry.get("workdir") or cwd)
        prog = program(str(s.entry["command"]))
        code = attempt(uid, str(folder), prog)
        if code in (3, 4):
            if folder not in copies:
                size = _size(folder)
                if size > MAX_COPY:
                    problems.append(f"student {s.label}: folder {folder} is not readable by the student's uid and "
                                    f"too large to copy ({size // 2**20} MB); make it readable (chmod o+rx on it "
                                    "and the folders above) or grade with --isolation none")
                    continue
                if holder is None:
                    holder = Path(tempfile.mkdtemp(prefix="smtpc-grade-code-"))
                    holder.chmod(0o711)
                try:
                    copies[folder] = _read_only_copy(folder, holder)
                except _TooLarge:
                    problems.append(f"student {s.label}: folder {folder} is not readable by the student's uid and "
                                    f"too large to copy (over {MAX_COPY // 2**20} MB); make it readable (chmod o+rx "
                                    "on it and the folders above) or grade with --isolation none")
                    continue
            s.entry["workdir"] = str(copies[folder])
            code = attempt(uid, str(copies[folder]), prog)
        if code == 5:
            problems.append(f"student {s.label}: the program {prog!r} of the command {s.entry['command']!r} cannot "
                            "be found or run by the student's uid (a folder above it is private?); install it where "
                            "every user can run it, or grade with --isolation none")
        elif code in (3, 4):
            problems.append(f"student {s.label}: folder {folder} is not readable by the student's uid, even as a "
                            "copy; grade with --isolation none")
    return holder, problems
