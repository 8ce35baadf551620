"""Targets that are local processes: a student's server (`command`) and the embedded default (`builtin`).

The process gets a free loopback port through `{port}`, runs in its own session so that it and every
child it forks can be killed together, and has its stdout/stderr kept for the report.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..escapes import escape_bytes
from .base import Endpoint, Target, TargetError

LOG_TAIL = 64 * 1024


class PortBook:
    """Ports handed to this process's targets and not yet given back.

    A free port is found by binding port 0 and closing the socket; the server binds it later. Thirty
    targets starting at once can be handed the same port (the kernel offers a closed port again): the
    second server then fails to bind while its start-up check connects to the first one's server, and every
    dialogue meant for it goes to the other (seen: one target of 30 with none of its mail stored). The book
    is process-wide because the targets that must not collide are started by different runners' threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._taken: set[tuple[str, int]] = set()

    def take(self, host: str) -> int:
        with self._lock:
            for _ in range(100):
                with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind((host, 0))
                    port = sock.getsockname()[1]
                if (host, port) not in self._taken:
                    self._taken.add((host, port))
                    return port
            raise TargetError(f"no free port on {host} that this process has not handed out already")

    def give_back(self, host: str, port: int) -> None:
        with self._lock:
            self._taken.discard((host, port))


PORTS = PortBook()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now on host, never one handed to another live target of this process."""
    return PORTS.take(host)


def _descendants(pid: int) -> list[int]:
    """Every process below pid, found through /proc (children that left the process group too)."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):  # plain names and open(): every target's stop reads all of /proc
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(b")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """SIGTERM the whole tree, then SIGKILL whatever is left after `grace` seconds."""
    if proc.poll() is not None and not _descendants(proc.pid):
        return
    tree = [proc.pid, *_descendants(proc.pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 2.0)
        while time.monotonic() < deadline:
            if proc.poll() is not None and not any(_alive(pid) for pid in tree[1:]):
                return
            time.sleep(0.05)
    proc.poll()


MARKER_ENV = "SMTP_CONFORMANCE_TARGET"


def kill_marked(marker: str) -> None:
    """SIGKILL every process whose environment carries this target's marker (double-forked daemons)."""
    needle = f"{MARKER_ENV}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class ProcessTarget(Target):
    command: str = ""
    host: str = "127.0.0.1"
    workdir: str | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _tmp: str | None = field(default=None, repr=False)
    _port: int = 0
    _booked: int = 0  # the port while PORTS holds it for this target (given back once, by the first stop)
    _argv: list[str] = field(default_factory=list, repr=False)
    # stop() may run (Ctrl-C) while start() is still in its worker thread: they must not miss each other
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stopping: bool = False
    # every process of this target inherits this value: daemons that left the process tree are found by it
    _marker: str = field(default_factory=lambda: uuid.uuid4().hex, repr=False)

    def argv(self, port: int, tmp: str) -> list[str]:
        return ["/bin/sh", "-c", self.command.replace("{port}", str(port))]

    def start(self) -> Endpoint:
        self._tmp = tempfile.mkdtemp(prefix=f"smtp-conformance-{self.kind}-")
        self._port = self._booked = free_port(self.host)
        self._argv = self.argv(self._port, self._tmp)
        out = open(Path(self._tmp) / "stdout", "wb")  # noqa: SIM115 - owned by the child
        err = open(Path(self._tmp) / "stderr", "wb")  # noqa: SIM115
        try:
            with self._lock:
                if self._stopping:
                    raise TargetError(f"{self.label}: interrupted before it started")
                self._proc = subprocess.Popen(
                    self._argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.workdir,
                    start_new_session=True,
                    env={**os.environ, "PORT": str(self._port), MARKER_ENV: self._marker},
                )
        except OSError as exc:
            raise TargetError(f"cannot start {self.spec!r}: {exc.strerror}") from None
        finally:
            out.close()
            err.close()
        self._wait_listening()
        return Endpoint(self.host, self._port, implicit_tls=self.params.tls == "implicit", server_hostname=self.host)

    def _wait_listening(self) -> None:
        """Ready once the port accepts connections; the probe then judges the greeting itself."""
        deadline = time.monotonic() + self.params.startup_timeout
        assert self._proc is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                last = [line.strip() for line in self._tail("stderr", 2000).splitlines() if line.strip()][-3:]
                raise TargetError(f"{self.label}: process exited with status {self._proc.returncode} before "
                                  f"listening on port {self._port}; last stderr lines: "
                                  + (" | ".join(last)[-400:] if last else "(none)"))
            try:
                with socket.create_connection((self.host, self._port), timeout=1.0):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TargetError(f"{self.label}: nothing listened on {self.host}:{self._port} within "
                          f"{self.params.startup_timeout:g} s")

    def _tail(self, name: str, limit: int = LOG_TAIL) -> str:
        if not self._tmp:
            return ""
        try:
            with open(Path(self._tmp) / name, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - limit))
                return escape_bytes(fh.read()).replace("\\n", "\n")
        except OSError:
            return ""

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        if self._proc is not None:
            kill_tree(self._proc)
        kill_marked(self._marker)
        booked, self._booked = self._booked, 0
        if booked:  # not twice: by then another target may hold it
            PORTS.give_back(self.host, booked)
        if self._tmp:
            # logs are read before the temporary directory goes (a second stop keeps them)
            self._logs = {"stdout": self._tail("stdout"), "stderr": self._tail("stderr")}
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def logs(self) -> dict[str, str]:
        if self._tmp:
            return {"stdout": self._tail("stdout"), "stderr": self._tail("stderr")}
        return getattr(self, "_logs", {})

    def details(self) -> dict[str, object]:
        info: dict[str, object] = {"command": shlex.join(self._argv) if self._argv else self.command}
        if self._proc is not None:
            info["pid"] = self._proc.pid
            if self._proc.poll() is not None:
                info["exit_status"] = self._proc.returncode
        return info


@dataclass
class CommandTarget(ProcessTarget):
    kind: str = "command"


@dataclass
class BuiltinTarget(ProcessTarget):
    """aiosmtpd in a child process, delivering to a Maildir in a temporary directory."""

    kind: str = "builtin"

    def argv(self, port: int, tmp: str) -> list[str]:
        maildir = self.params.maildir or str(Path(tmp) / "Maildir")
        self.params = self.params.with_(maildir=maildir)
        return [sys.executable, "-m", "conformance.builtin", "--host", self.host, "--port", str(port),
                "--maildir", maildir, "--domain", self.params.domain]

    def details(self) -> dict[str, object]:
        import aiosmtpd

        return {**super().details(), "server": f"aiosmtpd {aiosmtpd.__version__}"}
