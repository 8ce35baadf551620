"""Container targets (`preset:NAME`, `image:REF`): start, readiness, identity, and never a leftover.

Run:  .venv/bin/python -m pytest tests/integration/test_container_target.py

The engine comes from scripts/containers/setup (its `export` lines are applied to this process and so
to the suite runs it spawns); the images from scripts/containers/build-images. Without them the engine
tests skip, or fail under CI=true. Each suite run gets its own SMTP_CONFORMANCE_SESSION, so "nothing
left" is checked for that run's containers only (other runs may share the engine).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.containers import engine as containers_engine
from tests.support import REPO, SCENARIOS, missing, run_suite

SEQUENCING = SCENARIOS / "rfc5321" / "4.3.2-sequencing.yaml"
SEQUENCING_ID = "rfc5321-4.3.2-rcpt-before-mail"


def node(label: str) -> str:
    """The one scenario this file runs, against one target (the scenario file holds more)."""
    return f"{SEQUENCING}::{SEQUENCING_ID}[{label}]"
LABEL = "org.smtp-conformance"
LABEL_SESSION = "org.smtp-conformance.session"

containers = pytest.mark.containers


@pytest.fixture(scope="session")
def engine() -> Iterator[dict[str, str]]:
    """scripts/containers/setup's environment, applied to os.environ (and testcontainers' config)."""
    with containers_engine(missing, ci=os.environ.get("CI") == "true") as env:
        import conformance.targets.container  # noqa: F401 - its SESSION_ID now, not under a test's monkeypatch

        yield env


@pytest.fixture
def session(engine: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A run id for the suite processes this test spawns; afterwards none of its containers may remain."""
    sid = f"test-{uuid.uuid4().hex}"
    monkeypatch.setenv("SMTP_CONFORMANCE_SESSION", sid)
    yield sid
    left = labelled(sid)
    if left:
        from conformance.targets.container import cleanup_leftovers

        cleanup_leftovers(session=sid)
        pytest.fail(f"containers left behind by session {sid}: {left}")


def labelled(session: str | None = None) -> list[str]:
    """Ids of labelled containers (of one run), through the API and, if present, the podman CLI."""
    import docker

    label = f"{LABEL_SESSION}={session}" if session else LABEL
    client = docker.from_env()
    try:
        ids = {c.id[:12] for c in client.containers.list(all=True, filters={"label": label})}
    finally:
        client.close()
    if shutil.which("podman") and os.environ.get("CONTAINERS_CONF"):
        out = subprocess.run(["podman", "ps", "-a", "--filter", f"label={label}", "--format", "{{.ID}}"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        ids |= {line.strip()[:12] for line in out.splitlines() if line.strip()}
    return sorted(ids)


def identity(run, label: str) -> dict:  # type: ignore[no-untyped-def]
    assert run.document is not None, f"no results:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}"
    for target in run.document["targets"]:
        if target["label"] == label:
            return target
    raise AssertionError(f"no target {label}: {[t['label'] for t in run.document['targets']]}")


# ----- parsing (no engine needed) ---------------------------------------------------------------------
def test_spec_syntax() -> None:
    from conformance.targets import TargetError, TargetParams, parse_target
    from conformance.targets.container import ImageTarget

    t = parse_target("preset:postfix")
    assert isinstance(t, ImageTarget)
    assert (t.kind, t.label, t.spec, t.image, t.port, t.api_port, t.preset) == (
        "image", "postfix", "preset:postfix", "smtp-conformance/postfix:latest", 25, None, "postfix")
    t = parse_target("hog=preset:pysmtp,env.PYSMTP_MAX_SIZE=1000")
    assert (t.label, t.port, t.api_port) == ("hog", 1025, 8025)
    assert t.env == {"PYSMTP_DOMAINS": "example.test", "PYSMTP_MAX_SIZE": "1000"}
    t = parse_target("preset:mailpit")
    assert (t.image, t.port, t.api_port) == ("axllent/mailpit", 1025, 8025)
    t = parse_target("image:registry.example:5000/team/mail:1.2,port=2525,api_port=8080")
    assert (t.label, t.image, t.port, t.api_port, t.preset) == (
        "mail:1.2", "registry.example:5000/team/mail:1.2", 2525, 8080, None)
    assert parse_target("image:smtp-conformance/postfix:latest").label == "postfix"
    assert parse_target("preset:2525").kind == "address"  # a host named "preset" still works
    for bad, words in [("preset:postfx", "unknown preset"), ("image:", "empty"), ("image:Bad/Name", "not an image"),
                       ("image:x,port=99999", "out of range"), ("image:x,bogus=1", "unknown option"),
                       ("image:x,image=y", "unknown option"), ("image:x,port=25,api_port=25", "both 25"),
                       ("image:x,env.1A=2", "environment variable")]:
        with pytest.raises(TargetError, match=words):
            parse_target(bad)
    entry = ImageTarget.from_entry({"preset": "postfix", "container_command": ["postfix", "start-fg"],
                                    "env": {"A": True, "B": 2}}, TargetParams())
    assert (entry.image, entry.command, entry.env, entry.spec) == (
        "smtp-conformance/postfix:latest", ["postfix", "start-fg"], {"A": "true", "B": "2"}, "preset:postfix")


def test_targets_file(tmp_path: Path) -> None:
    from conformance.targets import load_targets_file

    path = tmp_path / "targets.yaml"
    path.write_text(textwrap.dedent("""\
        targets:
          - image: localhost/my-postfix:dev
            preset: postfix
            label: mine
          - image: smtp-conformance/pysmtp:latest
            port: 1025
            api_port: 8025
            env: {PYSMTP_DOMAINS: example.test}
            container_command: [python3, /srv/server.py]
          - image: smtp-conformance/postfix:latest
            preset: builtin
        """))
    targets, problems = load_targets_file(path)
    assert [(t.label, t.image, t.port, t.preset) for t in targets] == [  # type: ignore[attr-defined]
        ("mine", "localhost/my-postfix:dev", 25, "postfix"), ("pysmtp", "smtp-conformance/pysmtp:latest", 1025, None)]
    assert len(problems) == 1 and "unknown preset 'builtin'" in problems[0].message, problems


def test_no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from conformance.targets import TargetError, parse_target

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    target = parse_target("preset:postfix")
    with pytest.raises(TargetError, match="no container engine: set DOCKER_HOST or run scripts/containers/setup"):
        target.start()
    target.stop()


# ----- against the engine -----------------------------------------------------------------------------
@containers
def test_postfix_preset_runs_scenario(session: str) -> None:
    run = run_suite("--smtp-target", "preset:postfix", paths=[node("postfix")])
    assert run.outcomes() == {SEQUENCING_ID: "pass"}, run.stdout[-3000:]
    ident = identity(run, "postfix")
    details = ident["details"]
    assert ident["kind"] == "image" and ident["spec"] == "preset:postfix" and ident["error"] is None
    assert details["image_id"].startswith("sha256:") and details["image"] == "smtp-conformance/postfix:latest"
    assert details["session"] == session and details["preset"] == "postfix"
    assert ident["address"] == details["ports"]["25/tcp"] and ident["address"].startswith("127.0.0.1:")
    assert ident["banner"].startswith("220 mail.example.test ESMTP Postfix")
    assert "PIPELINING" in ident["ehlo_keywords"]
    assert "connect from" in ident["logs"]["stdout"]  # the container's log, kept after removal
    print("timings:", details["timings"])
    assert labelled(session) == []


@containers
def test_image_spec_runs_scenario(session: str) -> None:
    """The issue's own words: `pytest --smtp-target image:<the local postfix image>`."""
    run = run_suite("--smtp-target", "image:smtp-conformance/postfix:latest", paths=[node("postfix")])
    assert run.outcomes() == {SEQUENCING_ID: "pass"}, run.stdout[-3000:]
    assert identity(run, "postfix")["details"]["image_id"].startswith("sha256:")
    assert labelled(session) == []


@containers
def test_pysmtp_preset_ehlo_and_api(session: str) -> None:
    from conformance.targets import parse_target

    target = parse_target("preset:pysmtp")
    try:
        endpoint = target.start()
        details = target.details()
        assert endpoint.host == "127.0.0.1"
        assert details["api"] == "http://" + str(details["ports"]["8025/tcp"])  # type: ignore[index]
        with smtplib.SMTP(endpoint.host, endpoint.port, timeout=10) as smtp:
            code, ehlo = smtp.ehlo("client.example.net")
            assert code == 250 and smtp.has_extn("8bitmime"), ehlo
            assert smtp.mail("tester@example.net")[0] == 250
            assert smtp.rcpt("relay-test@foreign.invalid")[0] == 550  # PYSMTP_DOMAINS=example.test
        with urllib.request.urlopen(str(details["api_messages"]), timeout=10) as resp:
            assert json.load(resp)["total"] == 0
        print("timings:", details["timings"])
    finally:
        target.stop()
    assert target.details()["container"]  # the identity survives stop()
    assert labelled(session) == [] and labelled(details["session"]) == []  # type: ignore[arg-type]

    run = run_suite("--smtp-target", "preset:pysmtp", paths=[node("pysmtp")])
    ident = identity(run, "pysmtp")
    assert run.outcomes() == {SEQUENCING_ID: "pass"}, run.stdout[-3000:]
    assert "SIZE 10485760" in ident["ehlo_keywords"] and "8BITMIME" in ident["ehlo_keywords"]
    assert ident["details"]["api"].startswith("http://127.0.0.1:")
    assert ident["details"]["api_messages"].endswith("/api/v2/messages")


@containers
def test_preset_mailboxes(session: str, tmp_path: Path) -> None:
    """Delivery checks read Postfix's Maildir inside the container and pysmtp's MailHog-shaped API."""
    scenario = tmp_path / "scenarios" / "delivery.yaml"
    scenario.parent.mkdir()
    scenario.write_text(textwrap.dedent("""\
        id: harness-container-delivery
        title: An accepted message is stored once, dot-unstuffed
        rfc: 5321
        section: 4.5.2
        level: MUST
        quote: >
          If the first character is a period and there are other characters on the line, the first
          character is deleted.
        stored: checked
        steps:
          - expect: 220
          - send: EHLO {client}
            expect: 250
          - send: MAIL FROM:<{sender}>
            expect: 250
          - send: RCPT TO:<{rcpt}>
            expect: 250
          - send: DATA
            expect: 354
          - message: |
              Subject: {token}

              .leading dot
            expect: 250
          - delivered:
              count: 1
              contains: ['\\n.leading dot\\n']
              lacks: ['..leading']
        """))
    run = run_suite("--smtp-target", "preset:postfix", "--smtp-target", "preset:pysmtp", paths=[str(scenario)],
                    tmp=tmp_path)
    for label, spec in (("postfix", "container-maildir:"), ("pysmtp", "mailhog:http://127.0.0.1:")):
        result = run.result("harness-container-delivery", label)
        assert result["outcome"] == "pass", (label, result["message"], run.stdout[-3000:])
        events = [e["data"] for e in result["transcript"] if e["dir"] == "*"]
        assert any(e.startswith(f"mailbox {spec}") and "1 stored message" in e for e in events), (label, events)
    assert labelled(session) == []


@containers
def test_broken_images_are_errors(session: str, tmp_path: Path) -> None:
    targets = tmp_path / "targets.yaml"
    targets.write_text(textwrap.dedent("""\
        targets:
          - image: smtp-conformance/does-not-exist:latest
            label: absent
          - image: smtp-conformance/postfix:latest
            container_command: [sh, -c, "echo main.cf is broken >&2; exit 3"]
            label: exits
          - image: smtp-conformance/postfix:latest
            container_command: sleep 600
            startup_timeout: 2
            label: mute
          - image: smtp-conformance/postfix:latest
            container_command: /no/such/binary
            label: noexec
        """))
    started = time.monotonic()
    expected = {"absent": "does-not-exist:latest' is not available locally",
                "exits": "container exited with status 3 before greeting; log: main.cf is broken",
                "mute": "no 220 greeting on 127.0.0.1:",
                "noexec": "/no/such/binary"}
    # --smtp-keep-unusable: their scenarios are kept as ERRORs, so that the report shows the identities
    run = run_suite("--smtp-targets", str(targets), "--smtp-keep-unusable", paths=[node(label) for label in expected],
                    tmp=tmp_path)
    elapsed = time.monotonic() - started
    assert run.exit_code == 1, run.stdout[-3000:]
    for label, words in expected.items():
        # probed before any scenario ran: one line each, with the cause
        named = [line for line in run.stderr.splitlines() if line.startswith(f"target {label}: ")]
        assert len(named) == 1 and words in named[0], (label, run.stderr[-3000:])
        assert run.outcomes(label) == {SEQUENCING_ID: "error"}, (label, run.stdout[-3000:])
        message = run.result(SEQUENCING_ID, label)["message"]
        assert words in message and "\n" not in message and "Traceback" not in message, (label, message)
        assert identity(run, label)["error"] == message
    assert "Traceback" not in run.stdout + run.stderr
    assert identity(run, "exits")["details"]["exit_status"] == 3
    assert "main.cf is broken" in identity(run, "exits")["logs"]["stderr"]
    assert elapsed < 30, f"broken targets took {elapsed:.1f} s"
    assert labelled(session) == []


@containers
@pytest.mark.parametrize(("sig", "phase"), [(signal.SIGINT, "starting"), (signal.SIGINT, "running"),
                                            (signal.SIGTERM, "starting"), (signal.SIGTERM, "running")])
def test_interrupt_leaves_nothing(session: str, tmp_path: Path, sig: signal.Signals, phase: str) -> None:
    """Ctrl-C / SIGTERM while the container starts, or while a dialogue is under way."""
    slow = tmp_path / "scenarios" / "slow.yaml"
    slow.parent.mkdir()
    slow.write_text(textwrap.dedent("""\
        id: harness-slow-silence
        title: A long silence, so that the run can be interrupted in the middle
        rfc: 5321
        section: 4.5.3.2
        level: INFO
        quote: >
          An SMTP server SHOULD have a timeout of at least 5 minutes while it is awaiting the next command
        steps:
          - expect: 220
          - send: EHLO {client}
            expect: 250
          - silence: 90
        """))
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(slow),
           "--smtp-target", "preset:postfix", "--smtp-json", str(tmp_path / "results.json")]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not labelled(session):
            assert proc.poll() is None, f"pytest ended before the container appeared:\n{proc.communicate()[0]}"
            assert time.monotonic() < deadline, "no container appeared within 60 s"
            time.sleep(0.05)
        if phase == "running":
            time.sleep(3)  # greeting (well under 3 s here) and EHLO done: the silence step is under way
        proc.send_signal(sig)
        sent = time.monotonic()
        out, _ = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"{sig.name} while {phase}: pytest exited {proc.returncode} after {took:.2f} s")
    assert proc.returncode != 0, out[-3000:]
    assert "KeyboardInterrupt" in out, out[-3000:]
    assert labelled(session) == [], out[-3000:]
    assert took < 20, f"exit took {took:.1f} s:\n{out[-3000:]}"


@containers
def test_cleanup_leftovers(engine: dict[str, str]) -> None:
    import docker

    from conformance.targets.container import cleanup_leftovers

    sid = f"test-{uuid.uuid4().hex}"
    client = docker.from_env()
    try:
        # A crashed run's container: labelled, running a process that ignores SIGTERM.
        container = client.containers.run(
            "smtp-conformance/postfix:latest", ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
            detach=True, labels={LABEL: "1", LABEL_SESSION: sid}, ports={"25/tcp": ("127.0.0.1", None)})
        other = client.containers.run(
            "smtp-conformance/postfix:latest", ["sleep", "600"], detach=True,
            labels={"org.example.unrelated": "1"})
        try:
            assert labelled(sid) == [container.id[:12]]
            started = time.monotonic()
            removed = cleanup_leftovers(session=sid)
            took = time.monotonic() - started
            assert removed == [container.id]
            assert labelled(sid) == []
            assert took < 5, f"force removal took {took:.1f} s"
            assert cleanup_leftovers(session=sid) == []
            other.reload()  # not ours: untouched
            assert other.status == "running"
        finally:
            for c in (container, other):
                with contextlib.suppress(docker.errors.NotFound):
                    c.remove(force=True)
    finally:
        client.close()
