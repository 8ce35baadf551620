"""Integration tests of scripts/servers/NAME: real SMTP servers on loopback.

Each server is started on a free port in a fresh state directory, gets a real
SMTP transaction, and is stopped; the test then checks that the mail landed
where the start script said, that a foreign recipient was refused (MailDev,
a catch-all, accepts it), that the port is closed and that no process of the
server is left. A server that is not installed (scripts/servers/install) is
skipped, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import missing

REPO = Path(__file__).resolve().parents[2]
SERVERS = REPO / "scripts" / "servers"
NAMES = ["postfix", "exim", "opensmtpd", "aiosmtpd", "smtp-server", "maildev", "haraka"]
CATCH_ALL = {"maildev"}  # accepts every recipient by design
SINGLE_INSTANCE = {"opensmtpd"}  # compiled-in control socket and queue
DELIVERY_TIMEOUT = 20.0
# Tests of a single-instance server take this lock (pytest-xdist workers).
SINGLE_INSTANCE_LOCK = "/tmp/smtp-servers-{name}.lock"


def run(name: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SERVERS / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def require_installed(name: str) -> None:
    result = run(name, "check")
    if result.returncode != 0:
        missing(f"{name} is not installed: {result.stderr.strip()}")


@contextlib.contextmanager
def exclusive(name: str) -> Iterator[None]:
    if name not in SINGLE_INSTANCE:
        yield
        return
    with open(SINGLE_INSTANCE_LOCK.format(name=name), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(count: int = 1) -> int:
    """A port P with P..P+count-1 free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port + count <= 65535 and all(port_is_free(p) for p in range(port, port + count)):
            return port
    raise RuntimeError("no free port")


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def live_processes() -> dict[int, tuple[int, str]]:
    """pid -> (session id, command line) of every process that is not a zombie."""
    found: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        found[int(entry.name)] = (int(fields[3]), cmdline)
    return found


def leftovers(session: int, statedir: Path) -> list[str]:
    return [
        f"{pid}: {cmd}"
        for pid, (sid, cmd) in live_processes().items()
        if sid == session or str(statedir) in cmd
    ]


@pytest.fixture
def statedir() -> Iterator[Path]:
    # Not tmp_path: Postfix, Exim and OpenSMTPD drop root and must be able to
    # reach the directory, and /tmp/pytest-of-root is mode 0700.
    path = Path(tempfile.mkdtemp(prefix="smtp-servers-test-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Started:
    """A server started by its script; stop() is safe to call twice."""

    def __init__(self, name: str, statedir: Path, port: int) -> None:
        self.name, self.statedir, self.port = name, statedir, port
        result = run(name, "start", str(port), str(statedir))
        assert result.returncode == 0, f"{name} start failed:\n{result.stderr}"
        lines = [line for line in result.stdout.splitlines() if line]
        assert len(lines) <= 1, result.stdout
        self.where = dict(line.split("=", 1) for line in lines)
        self.session = int((statedir / f"{name}.pid").read_text())

    def stop(self) -> None:
        result = run(self.name, "stop", str(self.statedir), timeout=30)
        assert result.returncode == 0, result.stderr

    def assert_gone(self) -> None:
        deadline = time.monotonic() + 5
        while (left := leftovers(self.session, self.statedir)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"{self.name} left processes: {left}"
        assert not port_accepts(self.port), f"{self.name}: port {self.port} still open"


def start(name: str, statedir: Path) -> Started:
    port = free_port(2 if name == "maildev" else 1)
    return Started(name, statedir, port)


def send(port: int, token: str, refuse_foreign: bool) -> None:
    """One transaction; checks the foreign recipient on the way."""
    message = (
        f"From: a@example.net\r\nTo: user@example.test\r\nSubject: {token}\r\n"
        f"Message-ID: <{token}@example.net>\r\n\r\nbody {token}\r\n"
    )
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        code, reply = smtp.ehlo("client.example.net")
        assert code == 250, reply
        code, reply = smtp.mail("a@example.net")
        assert code == 250, reply
        code, reply = smtp.rcpt("x@foreign.invalid")
        if refuse_foreign:
            assert 400 <= code < 600, f"foreign recipient accepted: {code} {reply!r}"
        else:
            assert code == 250, reply
        code, reply = smtp.rcpt("user@example.test")
        assert code == 250, reply
        code, reply = smtp.data(message.encode())
        assert code == 250, reply


def delivered(server: Started, token: str) -> bool:
    if "api" in server.where:
        with urllib.request.urlopen(f"{server.where['api']}/api/email", timeout=10) as response:
            emails = json.load(response)
        return any(email.get("subject") == token for email in emails)
    maildir = Path(server.where["maildir"])
    assert maildir == server.statedir / "Maildir"
    return any(token.encode() in f.read_bytes() for f in (maildir / "new").iterdir())


def wait_delivered(server: Started, token: str) -> None:
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while not delivered(server, token):
        assert time.monotonic() < deadline, f"{server.name}: message {token} not delivered"
        time.sleep(0.2)


@pytest.mark.parametrize("name", NAMES)
def test_start_deliver_refuse_stop(name: str, statedir: Path) -> None:
    require_installed(name)
    with exclusive(name):
        server = start(name, statedir)
        try:
            assert port_accepts(server.port)
            token = f"t-{uuid.uuid4().hex}"
            send(server.port, token, refuse_foreign=name not in CATCH_ALL)
            wait_delivered(server, token)
        finally:
            server.stop()
        server.assert_gone()
        server.stop()  # idempotent
    assert not (statedir / f"{name}.pid").exists()


@pytest.mark.parametrize("name", NAMES)
def test_two_instances(name: str) -> None:
    require_installed(name)
    dirs = [Path(tempfile.mkdtemp(prefix=f"smtp-servers-test-{i}-", dir="/tmp")) for i in (1, 2)]
    for d in dirs:
        d.chmod(0o755)
    with contextlib.ExitStack() as stack:
        stack.enter_context(exclusive(name))
        stack.callback(shutil.rmtree, dirs[0], ignore_errors=True)
        stack.callback(shutil.rmtree, dirs[1], ignore_errors=True)
        check_two_instances(name, dirs)


def check_two_instances(name: str, dirs: list[Path]) -> None:
    first = start(name, dirs[0])
    try:
        if name in SINGLE_INSTANCE:
            result = run(name, "start", str(free_port()), str(dirs[1]))
            assert result.returncode == 1
            assert "only one instance" in result.stderr
        else:
            check_second_instance(name, first, dirs[1])
    finally:
        first.stop()
    first.assert_gone()


def check_second_instance(name: str, first: Started, statedir: Path) -> None:
    second = start(name, statedir)
    try:
        tokens = [f"t-{uuid.uuid4().hex}" for _ in range(2)]
        for server, token in zip((first, second), tokens, strict=True):
            send(server.port, token, refuse_foreign=name not in CATCH_ALL)
        for server, token, other in zip((first, second), tokens, reversed(tokens), strict=True):
            wait_delivered(server, token)
            assert not delivered(server, other)
    finally:
        second.stop()
    second.assert_gone()
    assert port_accepts(first.port), "stopping one instance stopped the other"


def test_start_refuses_busy_port_and_bad_usage(statedir: Path) -> None:
    require_installed("aiosmtpd")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("aiosmtpd", "start", str(port), str(statedir))
        assert result.returncode == 1
        assert "already in use" in result.stderr
    assert run("aiosmtpd", "start", "70000", str(statedir)).returncode == 2
    assert run("aiosmtpd", "frobnicate").returncode == 2
    assert run("aiosmtpd", "stop", str(statedir / "never-started")).returncode == 0
