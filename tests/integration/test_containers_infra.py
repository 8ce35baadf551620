"""The container infrastructure: Podman (or Docker) + testcontainers + the local images.

Run:  .venv/bin/python -m pytest tests/integration/test_containers_infra.py

The engine comes from scripts/containers/setup (called here through subprocess;
its `export` lines are applied to this process). Images come from
scripts/containers/build-images. Without podman or without the images the tests
skip, unless CI=true, where they fail.

Every container is published on 127.0.0.1 only and reached only through that
port; Ryuk is disabled, so each test removes its own container (the `with`
block does, also on errors and Ctrl-C) and then checks nothing is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import smtplib
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from tests.containers import POSTFIX_IMAGE, PYSMTP_IMAGE
from tests.containers import engine as containers_engine

pytestmark = pytest.mark.containers

POSTFIX_MAILDIR = "/var/mail/vhosts/example.test/user"
PYSMTP_SPOOL = "/var/spool/pysmtp"
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip, or fail when CI=true: in CI a missing engine is a broken machine."""
    if CI:
        pytest.fail(f"container infrastructure unavailable (CI=true): {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine() -> Iterator[dict[str, str]]:
    """The environment for testcontainers; applied to os.environ for the session."""
    with containers_engine(unavailable, ci=CI) as env:
        yield env


def publish_on_loopback(container, *ports: int) -> None:
    """Publish container ports on 127.0.0.1 with an engine-chosen host port.

    testcontainers 4.15's with_bind_ports() takes only an int or "port[/proto]"
    for the host side, so set the docker-py binding (host_ip, host_port) directly.
    """
    for port in ports:
        container.ports[f"{port}/tcp"] = ("127.0.0.1", None)


def mapped(container, port: int) -> tuple[str, int]:
    host = container.get_container_host_ip()
    assert host == "127.0.0.1", f"containers must be reached through loopback, got {host}"
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    bindings = wrapped.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"]
    assert all(b["HostIp"] == "127.0.0.1" for b in bindings), bindings
    return host, int(container.get_exposed_port(port))


def wait_for_banner(host: str, port: int, timeout: float = 60.0) -> float:
    """Wait until the server greets with 220 over SMTP; return the seconds waited.

    A TCP connect alone proves nothing: a port proxy can accept before the server listens.
    """
    start = time.monotonic()
    last: object = None
    while time.monotonic() - start < timeout:
        try:
            with smtplib.SMTP(host, port, timeout=5) as smtp:
                smtp.quit()
            return time.monotonic() - start
        except (OSError, smtplib.SMTPException) as exc:
            last = exc
            time.sleep(0.2)
    raise TimeoutError(f"no 220 banner on {host}:{port} within {timeout} s (last: {last!r})")


def message(token: str, to: str) -> str:
    return (
        f"From: tester@client.test\r\nTo: {to}\r\nSubject: infra {token}\r\n"
        f"Message-ID: <{token}@client.test>\r\n\r\nbody {token}\r\n.dot-stuffed line\r\n"
    )


def exec_ok(container, cmd: list[str]) -> str:
    code, output = container.exec(cmd)
    assert code == 0, f"{cmd} exited {code}: {output!r}"
    return output.decode("utf-8", "replace")


def assert_gone(container_id: str) -> None:
    """The container is removed: via the engine API, and (if present) `podman ps -a`."""
    import docker
    from testcontainers.core.labels import LABEL_SESSION_ID, SESSION_ID

    client = docker.from_env()
    try:
        left = client.containers.list(all=True, filters={"label": f"{LABEL_SESSION_ID}={SESSION_ID}"})
        assert not left, f"containers left by this session: {[c.name for c in left]}"
    finally:
        client.close()
    if shutil.which("podman") and os.environ.get("CONTAINERS_CONF"):
        out = subprocess.run(
            ["podman", "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Image}} {{.Status}}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert container_id not in out, f"podman ps -a still lists {container_id}:\n{out}"


@contextlib.contextmanager
def started(container, name: str, smtp_port: int, *other_ports: int) -> Iterator[tuple[str, int]]:
    """Run the container with its ports on loopback until its SMTP banner comes; yield (host, SMTP port).
    Afterwards the container must be gone."""
    publish_on_loopback(container, smtp_port, *other_ports)
    with container:
        cid = container.get_container_id()
        host, port = mapped(container, smtp_port)
        waited = wait_for_banner(host, port)
        print(f"{name} banner after {waited:.2f} s on {host}:{port}")
        yield host, port
    assert_gone(cid)


def test_postfix_container(engine: dict[str, str]) -> None:
    from testcontainers.core.container import DockerContainer

    token = uuid.uuid4().hex
    container = DockerContainer(POSTFIX_IMAGE)
    with started(container, "postfix", 25) as (host, port):
        with smtplib.SMTP(host, port, timeout=30) as smtp:
            code, ehlo = smtp.ehlo("client.test")
            assert code == 250, ehlo
            assert ehlo.startswith(b"mail.example.test"), ehlo
            for keyword in ("pipelining", "size", "8bitmime", "enhancedstatuscodes"):
                assert smtp.has_extn(keyword), (keyword, ehlo)

            assert smtp.mail("tester@client.test")[0] == 250
            assert smtp.rcpt("user@example.test")[0] == 250
            code, reply = smtp.data(message(token, "user@example.test"))
            assert code == 250, reply

            # Unqualified postmaster (RFC 5321 4.5.1) lands in the same Maildir.
            assert smtp.mail("tester@client.test")[0] == 250
            assert smtp.rcpt("postmaster")[0] == 250
            code, reply = smtp.data(message(token + "-pm", "postmaster"))
            assert code == 250, reply

            # Not a relay, not even for the host: foreign domains are refused.
            assert smtp.mail("tester@client.test")[0] == 250
            code, reply = smtp.rcpt("someone@foreign.test")
            assert 500 <= code < 600, (code, reply)
            assert b"Relay access denied" in reply, reply
            smtp.rset()

        # Delivery is asynchronous (queue manager -> virtual(8)): poll the Maildir.
        deadline = time.monotonic() + 30
        found: list[str] = []
        while time.monotonic() < deadline:
            listing = exec_ok(container, ["ls", "-1", f"{POSTFIX_MAILDIR}/new"]).split()
            found = (
                exec_ok(container, ["grep", "-l", "-r", token, f"{POSTFIX_MAILDIR}/new"]).split()
                if listing
                else []
            )
            if len(found) >= 2:
                break
            time.sleep(0.3)
        logs = container.get_logs()[0].decode("utf-8", "replace")
        assert len(found) >= 2, f"messages not delivered to {POSTFIX_MAILDIR}/new:\n{logs[-3000:]}"
        stored = exec_ok(container, ["cat", found[0]])
        assert f"Message-ID: <{token}" in stored
        assert "\n.dot-stuffed line" in stored and "\n..dot-stuffed" not in stored
        assert "status=sent (delivered to maildir)" in logs, logs[-3000:]
        assert "someone@foreign.test" in logs and "Relay access denied" in logs


def test_pysmtp_container(engine: dict[str, str]) -> None:
    from testcontainers.core.container import DockerContainer

    token = uuid.uuid4().hex
    container = DockerContainer(PYSMTP_IMAGE).with_env("PYSMTP_DOMAINS", "example.test")
    with started(container, "pysmtp", 1025, 8025) as (host, port):
        _, http_port = mapped(container, 8025)
        with smtplib.SMTP(host, port, timeout=30) as smtp:
            code, ehlo = smtp.ehlo("client.test")
            assert code == 250, ehlo
            assert smtp.has_extn("8bitmime") and smtp.has_extn("size"), ehlo
            assert smtp.mail("tester@client.test")[0] == 250
            assert smtp.rcpt("user@example.test")[0] == 250
            assert smtp.rcpt("postmaster")[0] == 250
            code, reply = smtp.data(message(token, "user@example.test"))
            assert code == 250, reply
            assert smtp.mail("tester@client.test")[0] == 250
            code, reply = smtp.rcpt("someone@foreign.test")
            assert code == 550, (code, reply)

        api = f"http://{host}:{http_port}"
        with urllib.request.urlopen(f"{api}/api/messages", timeout=10) as resp:
            messages = json.load(resp)
        assert len(messages) == 1, messages
        got = messages[0]
        assert got["from"] == "tester@client.test"
        assert got["to"] == ["user@example.test", "postmaster"]
        assert got["helo"] == "client.test"
        assert f"body {token}\r\n.dot-stuffed line\r\n" in got["data"]

        with urllib.request.urlopen(f"{api}/api/v2/messages", timeout=10) as resp:
            mailhog = json.load(resp)
        assert mailhog["total"] == 1
        assert mailhog["items"][0]["Content"]["Headers"]["Subject"] == [f"infra {token}"]

        listing = exec_ok(container, ["ls", "-1", PYSMTP_SPOOL]).split()
        assert listing == [f"{got['id']}.eml"], listing
        assert token in exec_ok(container, ["cat", f"{PYSMTP_SPOOL}/{got['id']}.eml"])

        req = urllib.request.Request(f"{api}/api/v1/messages", method="DELETE")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(f"{api}/api/messages", timeout=10) as resp:
            assert json.load(resp) == []
