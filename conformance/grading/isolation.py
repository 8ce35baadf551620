"""Running student commands apart: one unprivileged uid each, resource limits, and killing what they leave."""

from __future__ import annotations

import contextlib
import math
import os
import pwd
import random
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .rubric import Student

TOKEN_VAR = "SMTPC_GRADING_RUN"
UIDS_VAR = "SMTPC_GRADING_UIDS"

# resource limits for isolated student commands (prlimit): processes+threads per student uid, size of any
# file written (stdout/stderr logs included), no core dumps, open files; CPU seconds are set per student.
LIMIT_NPROC = 256
LIMIT_FSIZE = 64 * 1024 * 1024
LIMIT_NOFILE = 1024
UID_RANGE = (1_000_000, 2_000_000)
TOKEN_VAR = "SMTPC_GRADING_RUN"
UIDS_VAR = "SMTPC_GRADING_UIDS"

class IsolationError(Exception):
    pass


def _process_uids() -> dict[int, int]:
    """pid -> real uid of every live (non-zombie) process."""
    out: dict[int, int] = {}
    if not os.path.isdir("/proc"):  # not Linux: no sweeping (and no uid isolation)
        return out
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry.name}/status").read_text()
        except OSError:
            continue
        state = uid = None
        for line in status.splitlines():
            if line.startswith("State:"):
                state = line.split()[1]
            elif line.startswith("Uid:"):
                uid = int(line.split()[1])
                break
        if uid is not None and state != "Z":
            out[int(entry.name)] = uid
    return out


def _uid_is_free(uid: int, running: set[int]) -> bool:
    if uid in running:
        return False
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return True
    return False


@dataclass
class Isolation:
    """How student commands run, and how whatever they leave behind is found again.

    `uid` (needs root, setpriv and prlimit): each command student gets an unused uid of its own (no
    passwd entry needed), no supplementary groups, no capabilities, no-new-privs, a scrubbed environment
    with a private HOME/TMPDIR, and prlimit caps on processes (per uid), file size, CPU seconds, open files
    and core dumps. Students cannot signal, ptrace or read the files of each other or of the grader.
    `none`: commands run as the grader's user, unchanged.
    Either way a run token goes into their environment; after the run every process carrying the token or
    owned by a student uid is killed (daemons that escaped the process tree included).
    """

    mode: str
    token: str = field(default_factory=lambda: secrets.token_hex(12))
    uids: dict[str, int] = field(default_factory=dict)
    homes: Path | None = None

    @classmethod
    def create(cls, requested: str, students: list[Student], uid_base: int | None = None) -> tuple[Isolation, str]:
        """(isolation, a note for the teacher). Raises IsolationError when `uid` was requested but cannot be."""
        commands = [s for s in students if s.kind == "command"]
        can, why = cls._uid_possible()
        if requested == "none" or (requested == "auto" and not can) or not commands:
            note = "" if requested == "none" or not commands else f"student commands run as this user ({why})"
            return cls("none"), note
        if not can:
            raise IsolationError(f"--isolation uid: {why}")
        iso = cls("uid")
        block = iso._uid_block(len(commands), uid_base)
        iso.uids = {s.label: uid for s, uid in zip(commands, block, strict=True)}
        iso.homes = Path(tempfile.mkdtemp(prefix="smtpc-grade-homes-"))
        iso.homes.chmod(0o711)  # students may enter (to reach their own HOME) but not list it
        for label, uid in iso.uids.items():
            home = iso.homes / label
            home.mkdir(mode=0o700)
            os.chown(home, uid, uid)
        probe = subprocess.run(iso._drop(block[0]) + ["/bin/true"], capture_output=True, text=True, timeout=30)
        if probe.returncode != 0:
            iso.cleanup()
            why = f"setpriv could not switch to uid {block[0]}: {probe.stderr.strip()[:200]}"
            if requested == "uid":
                raise IsolationError(f"--isolation uid: {why}")
            return cls("none"), f"student commands run as this user ({why})"
        return iso, ""

    @staticmethod
    def _uid_possible() -> tuple[bool, str]:
        if not sys.platform.startswith("linux"):
            return False, "per-student uids need Linux"
        if os.geteuid() != 0:
            return False, "not root: cannot switch students to other uids"
        missing = [tool for tool in ("setpriv", "prlimit") if shutil.which(tool) is None]
        if missing:
            return False, f"{' and '.join(missing)} not installed (util-linux)"
        return True, ""

    @staticmethod
    def _uid_block(count: int, base: int | None) -> list[int]:
        running = set(_process_uids().values())
        if base is not None:
            block = list(range(base, base + count))
            taken = [u for u in block if not _uid_is_free(u, running)]
            if taken:
                raise IsolationError(f"--uid-base {base}: uid {taken[0]} has a passwd entry or running processes")
            return block
        rng = random.SystemRandom()
        for _ in range(100):
            start = rng.randrange(UID_RANGE[0], UID_RANGE[1] - count)
            block = list(range(start, start + count))
            if all(_uid_is_free(u, running) for u in block):
                return block
        raise IsolationError("no free block of uids found; give --uid-base")

    @staticmethod
    def _drop(uid: int) -> list[str]:
        return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
                "--inh-caps=-all", "--bounding-set=-all", "--"]

    def wrap(self, student: Student, time_limit: float, startup: float) -> str:
        """The student's command line, as the targets file gives it to /bin/sh -c (with {port} kept)."""
        command = str(student.entry["command"])
        uid = self.uids.get(student.label)
        if self.mode != "uid" or uid is None or self.homes is None:
            return command
        home = str(self.homes / student.label)
        env = {"HOME": home, "TMPDIR": home, "PORT": "{port}", TOKEN_VAR: self.token,
               "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")}
        env.update({k: os.environ[k] for k in ("LANG", "LC_ALL", "TZ") if k in os.environ})
        cpu = int(math.ceil(time_limit + startup + 60))
        limits = ["prlimit", f"--nproc={LIMIT_NPROC}", f"--fsize={LIMIT_FSIZE}", f"--nofile={LIMIT_NOFILE}",
                  "--core=0", f"--cpu={cpu}", "--"]
        argv = [*limits, *self._drop(uid), "env", "-i", *(f"{k}={v}" for k, v in env.items()), "/bin/sh", "-c"]
        return "exec " + shlex.join(argv) + " " + shlex.quote(command)

    def sweep(self) -> int:
        """SIGKILL every process owned by a student uid or carrying the run token; returns how many."""
        killed = 0
        for _ in range(50):
            victims = _marked(set(self.uids.values()), self.token)
            if not victims:
                break
            for pid in victims:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
            time.sleep(0.05)
        return killed

    def cleanup(self) -> None:
        if self.homes is not None:
            shutil.rmtree(self.homes, ignore_errors=True)
            self.homes = None

    def describe(self) -> str:
        if self.mode == "uid":
            return (f"each student command under its own uid ({min(self.uids.values())}–{max(self.uids.values())}), "
                    f"no capabilities, scrubbed environment, limits: {LIMIT_NPROC} processes, "
                    f"{LIMIT_FSIZE // (1024 * 1024)} MiB per file, {LIMIT_NOFILE} open files")
        return "none: student commands run as the grading user"


def terminate(uids: set[int], token: str, grace: float = 3.0) -> int:
    """SIGTERM every process of the student uids (or, without uids, carrying the run token), SIGKILL what is
    left after `grace` seconds (all of them share it); returns how many were still there for SIGKILL."""
    by_token = not uids  # with uids, every student process has one; only the grader's own helpers have the token
    victims = _marked(uids, token, by_token)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while victims and time.monotonic() < deadline:
        time.sleep(0.02)
        victims = _marked(uids, token, by_token)
    signalled = len(victims)
    for _ in range(50):
        if not victims:
            break
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
        victims = _marked(uids, token, by_token)
    return signalled


def _marked(uids: set[int], token: str, by_token: bool = True) -> list[int]:
    """Live processes whose real uid is one of `uids`, or (by_token) ours with the run token in their
    environment. The real uid comes from /proc/PID/status: a process can make itself non-dumpable, which
    hands its /proc files to root, but not change what status reports."""
    marker = f"{TOKEN_VAR}={token}".encode()
    me, my_uid = os.getpid(), os.getuid()
    found = []
    for pid, uid in _process_uids().items():
        if pid == me:
            continue
        hit = uid in uids
        if not hit and by_token and uid == my_uid:
            try:
                hit = marker in Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                hit = False
        if hit:
            found.append(pid)
    return found
