"""The engine end to end: real servers on loopback, and faulty ones it must judge without hanging."""

from __future__ import annotations

import json
import re
import shutil
import time
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from tests.support import REPO, run_suite

ENGINE = REPO / "tests" / "corpus" / "engine" / "scenarios"
CORE = [str(ENGINE / "features.yaml")]
RESULTS_SCHEMA = json.loads(resources.files("conformance").joinpath("schema/results.schema.json").read_text())

EXPECTED_BUILTIN = {
    "engine-pipeline-transaction": "pass",
    "engine-chunks": "pass",
    "engine-quit-close": "pass",
    "engine-silence": "pass",
    "engine-info-branch": "info",
    "engine-non-strict-alternative": "non-strict",
    "engine-require-missing": "unsupported",
    "engine-requires-top-level": "unsupported",
    "engine-must-miss": "fail",
    "engine-should-miss": "non-strict",
    "engine-credentials": "unsupported",
}


def test_builtin_outcomes_and_documented_json() -> None:
    run = run_suite(paths=CORE)
    assert run.outcomes() == EXPECTED_BUILTIN, run.stdout[-3000:]
    assert run.exit_code == 1  # the MUST miss fails the run
    jsonschema.validate(run.document, RESULTS_SCHEMA)
    target = run.document["targets"][0]
    assert target["kind"] == "builtin" and target["banner"].startswith("220 ")
    assert "8BITMIME" in target["ehlo_keywords"]
    info = run.result("engine-info-branch")
    assert info["branch"] == "NOOP answered 250"
    miss = run.result("engine-must-miss")
    assert miss["message"] == "Expected: 554 / Actual: 250 2.0.0 OK"
    assert miss["step"]["line"] > 0 and "expect: 554" in miss["step"]["yaml"]
    assert miss["decisive_code"] == 250
    # the scenario by its absolute path: the line works from any folder (tests/integration/test_newcomer.py)
    features = REPO / "tests/corpus/engine/scenarios/features.yaml"
    assert f"pytest -p no:cacheprovider '{features}::engine-must-miss[builtin]'" in miss["reproduce"]
    quit_close = run.result("engine-quit-close")
    assert quit_close["connection"] == "closed"
    assert quit_close["codes"] == [220, 250, 221]
    pipelined = run.result("engine-pipeline-transaction")
    # MAIL + 3 RCPT + DATA went out in a single write
    writes = [e for e in pipelined["transcript"] if e["dir"] == "C"]
    assert any(w["data"].count("\\r\\n") == 5 and w["data"].startswith("MAIL FROM") for w in writes)
    body = next(w["data"] for w in writes if "Subject: pipelined" in w["data"])
    assert "\\r\\n..leading dot\\r\\n.\\r\\n" in body
    chunks = [e for e in run.result("engine-chunks")["transcript"] if e["dir"] == "C"]
    assert [c["data"] for c in chunks[:3]] == ["EHL", "O c", "lie"]


def test_strict_makes_non_strict_fail() -> None:
    run = run_suite("-k", "should-miss", paths=CORE)
    assert run.exit_code == 0 and run.outcomes() == {"engine-should-miss": "non-strict"}
    strict = run_suite("-k", "should-miss", "--smtp-strict", paths=CORE)
    assert strict.exit_code == 1


def test_starttls_upgrade_against_a_tls_server(faulty) -> None:
    address = faulty("starttls")
    run = run_suite("--smtp-target", f"tls={address}", paths=[str(ENGINE / "starttls.yaml")])
    assert run.outcomes() == {"engine-starttls": "pass", "engine-starttls-step": "pass"}, run.stdout[-3000:]
    events = [e["data"] for e in run.result("engine-starttls")["transcript"] if e["dir"] == "*"]
    assert any(e.startswith("TLS established: TLSv1.") for e in events)
    assert run.document["targets"][0]["tls"] == "starttls"


def test_starttls_scenario_unsupported_without_starttls(faulty) -> None:
    run = run_suite("--smtp-target", faulty(), paths=[str(ENGINE / "starttls.yaml")])
    assert run.outcomes() == {"engine-starttls": "unsupported", "engine-starttls-step": "unsupported"}
    assert "did not advertise STARTTLS" in run.result("engine-starttls-step")["message"]


def test_one_run_several_targets(faulty) -> None:
    good, bad = faulty(), faulty("wrong-codes")
    run = run_suite("--smtp-target", f"good={good}", "--smtp-target", f"bad={bad}", "-k", "must-miss or quit",
                    paths=CORE)
    assert run.outcomes("good") == {"engine-must-miss": "fail", "engine-quit-close": "pass"}
    assert [t["label"] for t in run.document["targets"]] == ["good", "bad"]
    assert "[good]" in run.result("engine-quit-close", "good")["nodeid"]


def test_xdist_gives_the_same_results() -> None:
    run = run_suite("-n", "2", paths=CORE)
    assert run.outcomes() == EXPECTED_BUILTIN
    assert run.document["targets"][0]["banner"].startswith("220 ")


def test_command_target_keeps_logs_and_is_stopped(tmp_path: Path) -> None:
    script = tmp_path / "server.sh"
    # it also leaves a daemon behind that escapes the process tree (setsid, reparented to init)
    script.write_text(f"#!/bin/sh\necho starting on $1\nsetsid sleep 3131 >/dev/null 2>&1 &\n"
                      f"exec {shutil.which('python3') or 'python3'} -m tests.servers.faulty --port $1\n")
    script.chmod(0o755)
    run = run_suite("--smtp-target", f"student=cmd:{script} {{port}}", "-k", "quit", paths=CORE)
    assert run.outcomes() == {"engine-quit-close": "pass"}, run.stdout[-3000:]
    target = run.document["targets"][0]
    assert target["kind"] == "command"
    assert "starting on" in target["logs"]["stdout"]
    assert target["details"]["exit_status"] is not None  # it was stopped
    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p) == "sleep 3131"]
    assert not leftovers, "the daemon that left the process tree was not killed"


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


# ----- misbehaving servers: a verdict within bounded time and memory ---------------------------------
TIMEOUT = 2.0


@pytest.mark.parametrize(("fault", "outcome", "message"), [
    ("no-greeting", "fail", "no usable greeting"),
    ("garbage", "fail", "no usable greeting"),
    ("reset-on-connect", "fail", "no usable greeting"),
    ("close-on-connect", "fail", "no usable greeting"),
    ("flood", "fail", "no usable greeting"),
    ("endless-multiline", "fail", "no usable greeting"),
])
def test_dead_servers_fail_fast(faulty, fault: str, outcome: str, message: str) -> None:
    started = time.monotonic()
    run = run_suite("--smtp-target", faulty(fault), "--smtp-timeout", str(TIMEOUT), paths=CORE)
    elapsed = time.monotonic() - started
    outcomes = set(run.outcomes().values())
    assert outcomes <= {outcome, "unsupported"}, run.outcomes()
    assert all(message in r["message"] for r in run.document["results"] if r["outcome"] == outcome)
    # the probe judges the greeting once: the run costs about one timeout, not one per scenario
    assert elapsed < 5 * TIMEOUT + 10, elapsed
    assert run.exit_code == 1


def test_flood_after_greeting_keeps_memory_bounded(tmp_path: Path) -> None:
    """A server that floods in the middle of a dialogue: a verdict, and the client's memory stays small."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                conn.sendall(b"220 flood.example ESMTP\r\n")
                conn.recv(1024)
                conn.sendall(b"250-flood.example\r\n250 HELP\r\n")
                conn.recv(1024)
                chunk = b"250-" + b"x" * 60 + b"\r\n"
                sent = 0
                while not stop.is_set() and sent < 100 * 1024 * 1024:
                    conn.sendall(chunk * 1000)
                    sent += len(chunk) * 1000
            except OSError:
                pass

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        run = run_suite("--smtp-target", f"127.0.0.1:{port}", "--smtp-timeout", str(TIMEOUT), "-k", "must-miss",
                        paths=CORE, measure_rss=True)
    finally:
        stop.set()
        listener.close()
    result = run.result("engine-must-miss")
    assert result["outcome"] == "fail"
    assert "multi-line reply longer than" in " ".join(result["findings"])
    assert run.peak_rss_kib is not None and run.peak_rss_kib < 400 * 1024, f"peak RSS {run.peak_rss_kib} KiB"


def test_slow_server_gets_a_verdict_in_bounded_time(faulty) -> None:
    started = time.monotonic()
    run = run_suite("--smtp-target", faulty("slow"), "--smtp-timeout", str(TIMEOUT), "-k", "quit", paths=CORE)
    assert run.outcomes() == {"engine-quit-close": "fail"}
    assert "no complete reply" in run.result("engine-quit-close")["message"]
    assert time.monotonic() - started < 30


def test_hostile_server_bytes_are_escaped_everywhere(faulty, tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    run = run_suite("--smtp-target", f"xss={faulty('xss')}", "--smtp-html", str(html), "-k", "must-miss",
                    paths=CORE)
    assert '<script>alert("x")</script>' in run.document["targets"][0]["banner"]  # JSON keeps the text
    page = html.read_text()
    assert '<script>alert("x")</script>' not in page
    assert "&lt;script&gt;alert(" in page
    # only the report's own script tags: as many as in a report of harmless data
    from conformance.report.html import render_html

    harmless = render_html({**run.document, "targets": [], "results": []})
    assert len(re.findall(r"<script\b", page)) == len(re.findall(r"<script\b", harmless))


# ----- delivery inspection -----------------------------------------------------------------------------
DELIVERY = [str(ENGINE / "delivery.yaml")]


def test_delivery_check_reads_the_builtin_maildir() -> None:
    run = run_suite(paths=DELIVERY)
    assert run.outcomes() == {"engine-delivery-unstuffed": "pass", "engine-delivery-patterns": "pass",
                              "engine-delivery-pattern-miss": "fail", "engine-delivery-dots": "pass"}, \
        run.stdout[-3000:]
    assert run.result("engine-delivery-pattern-miss")["message"].endswith(
        "Actual: a stored message does not match /^X-Never-There:/")
    events = [e["data"] for e in run.result("engine-delivery-unstuffed")["transcript"] if e["dir"] == "*"]
    assert any("1 stored message(s) with the token" in e for e in events)


def test_delivery_check_catches_a_server_that_does_not_unstuff(faulty, tmp_path: Path) -> None:
    good_dir, bad_dir = tmp_path / "good", tmp_path / "bad"
    good, bad = faulty(maildir=str(good_dir)), faulty("no-unstuff", maildir=str(bad_dir))
    run = run_suite("--smtp-targets", str(_targets(tmp_path, {"good": (good, good_dir), "bad": (bad, bad_dir)})),
                    "-k", "unstuffed", paths=DELIVERY)
    assert run.outcomes("good") == {"engine-delivery-unstuffed": "pass"}, run.stdout[-3000:]
    failed = run.result("engine-delivery-unstuffed", "bad")
    assert failed["outcome"] == "fail"
    assert "a stored message lacks" in failed["message"]


def test_delivery_without_mailbox_is_unsupported(faulty) -> None:
    run = run_suite("--smtp-target", faulty(), "-k", "unstuffed", paths=DELIVERY)
    assert run.outcomes() == {"engine-delivery-unstuffed": "unsupported"}
    assert "mailbox" in run.result("engine-delivery-unstuffed")["message"]


def _targets(tmp_path: Path, entries: dict[str, tuple[str, Path]]) -> Path:
    path = tmp_path / "targets.yaml"
    lines = ["targets:"]
    for label, (address, maildir) in entries.items():
        lines += [f"  - label: {label}", f"    address: {address}", f"    mailbox: maildir:{maildir}"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("faults", "outcome", "message"), [
    ((), "pass", ""),
    (("no-enhanced",), "fail", "no enhanced status code"),
    (("enhanced-mismatch",), "fail", "enhanced code"),
])
def test_enhanced_status_codes_checked_on_every_reply(faulty, faults, outcome: str, message: str) -> None:
    run = run_suite("--smtp-target", faulty(*faults), paths=[str(ENGINE / "enhanced.yaml")])
    result = run.result("engine-enhanced-codes")
    assert result["outcome"] == outcome, result["message"]
    assert message in result["message"]


SYNTAX = [str(ENGINE / "syntax.yaml")]


@pytest.mark.parametrize(("fault", "outcome"), [(None, "pass"), ("bare-lf-replies", "fail"),
                                                ("mixed-multiline", "fail")])
def test_wellformed_replies(faulty, fault, outcome) -> None:
    run = run_suite("--smtp-target", faulty(*([fault] if fault else [])), "-k", "wellformed", paths=SYNTAX)
    result = run.result("engine-wellformed-ehlo")
    assert result["outcome"] == outcome, result["message"]
    if fault:
        assert "Actual: 250-faulty.example.test" in result["message"] and "[" in result["message"]


def test_client_disconnect_then_mailbox() -> None:
    run = run_suite("-k", "disconnect or variables", paths=SYNTAX)
    assert run.outcomes() == {"engine-disconnect-not-delivered": "pass", "engine-delivered-variables": "pass"}, \
        run.stdout[-3000:]
    events = [e["data"] for e in run.result("engine-disconnect-not-delivered")["transcript"] if e["dir"] == "*"]
    assert "client closed the connection" in events


def test_steps_after_disconnect_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "x.yaml").write_text(
        "id: after-disconnect\ntitle: a send after disconnect\nrfc: 5321\nsection: '4.1'\nlevel: MUST\n"
        "quote: nothing to quote here really\nsteps:\n  - use: ehlo\n  - disconnect: true\n  - send: NOOP\n")
    run = run_suite(paths=[str(folder)])
    assert run.exit_code == 2
    assert "x.yaml:10: after disconnect only wait and delivered steps make sense" in run.stdout


def test_cli_run_writes_json_html_junit_and_selects_by_tag(tmp_path: Path) -> None:
    import subprocess
    import sys
    import xml.etree.ElementTree as ET

    out = {k: tmp_path / f"r.{k}" for k in ("json", "html", "xml")}
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--scenarios", str(REPO / "scenarios"),
                           "--tag", "seed", "--json", str(out["json"]), "--html", str(out["html"]),
                           "--junit", str(out["xml"])], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    document = json.loads(out["json"].read_text())
    assert document["results"] and all("seed" in r["tags"] for r in document["results"])
    jsonschema.validate(document, RESULTS_SCHEMA)
    cases = ET.parse(out["xml"]).getroot().iter("testcase")
    names = [c.get("name") for c in cases]
    assert len(names) == len(document["results"]) and all(n.endswith("[builtin]") for n in names)
    assert "<table" in out["html"].read_text()


def test_implicit_tls_target(tmp_path: Path) -> None:
    """--smtp-tls implicit: TLS from the first byte (RFC 8314), against a small TLS-only server."""
    import socket
    import ssl
    import subprocess
    import threading

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve(raw: socket.socket) -> None:
        try:
            with ctx.wrap_socket(raw, server_side=True) as conn:
                conn.sendall(b"220 tls.example.test ESMTP\r\n")
                buf = b""
                while b"QUIT" not in buf:
                    data = conn.recv(4096)
                    if not data:
                        return
                    buf += data
                    if data.upper().startswith(b"EHLO"):
                        conn.sendall(b"250-tls.example.test\r\n250 8BITMIME\r\n")
                conn.sendall(b"221 bye\r\n")
        except (OSError, ssl.SSLError):
            pass

    def accept() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=serve, args=(raw,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        run = run_suite("--smtp-target", f"127.0.0.1:{port}", "--smtp-tls", "implicit", "-k", "quit", paths=CORE)
        plain = run_suite("--smtp-target", f"127.0.0.1:{port}", "--smtp-timeout", "2", "-k", "quit", paths=CORE)
    finally:
        stop.set()
        listener.close()
    assert run.outcomes() == {"engine-quit-close": "pass"}, run.stdout[-2000:]
    assert run.document["targets"][0]["tls"] == "implicit"
    assert "(implicit TLS)" in run.result("engine-quit-close")["transcript"][0]["data"]
    assert plain.outcomes() == {"engine-quit-close": "fail"}  # without TLS there is no greeting to read


def test_implicit_tls_against_a_plaintext_server_fails(faulty) -> None:
    run = run_suite("--smtp-target", faulty(), "--smtp-tls", "implicit", "--smtp-timeout", "3", "-k", "quit",
                    paths=CORE)
    result = run.result("engine-quit-close")
    assert result["outcome"] == "fail" and "implicit TLS failed" in result["message"], result["message"]


def test_non_pass_transcripts_only() -> None:
    run = run_suite("--smtp-transcripts", "non-pass", "-k", "quit or must-miss or require-missing", paths=CORE)
    assert run.result("engine-quit-close")["transcript"] == []  # pass
    assert run.result("engine-require-missing")["transcript"] == []  # unsupported
    assert run.result("engine-must-miss")["transcript"]  # fail: kept


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_a_baselined_deviation_is_marked_in_the_json(tmp_path: Path, workers: list[str]) -> None:
    """The baseline match is set where the result is settled (the runner's sink, or runtest on an xdist
    worker) and reaches the results JSON; the run passes, since the deviation is expected."""
    baseline = tmp_path / "builtin.yaml"
    baseline.write_text("deviations:\n  - id: engine-must-miss\n    outcome: fail\n"
                        "    reason: the scenario is written to fail against the builtin\n")
    run = run_suite("--smtp-baseline", str(baseline), "-k", "must-miss or quit", *workers, paths=CORE)
    miss, quit_close = run.result("engine-must-miss"), run.result("engine-quit-close")
    assert miss["outcome"] == "fail" and miss["baselined"] is True, miss
    assert "baselined" not in quit_close and quit_close["nodeid"].endswith("::engine-quit-close[builtin]")
    assert run.exit_code == 0, run.stdout[-2000:]


def test_starttls_if_offered_goes_on_in_plaintext() -> None:
    """`starttls: if-offered` (the AUTH fragments): a server with AUTH but no STARTTLS is still checked."""
    import base64

    from tests.servers.scripted import ScriptedServer, Servers, Session

    class PlainAuth(Session):
        def cmd_EHLO(self, arg: str) -> None:
            self.send("250-plain.example.test", "250-AUTH PLAIN", "250 HELP")

        def cmd_AUTH(self, arg: str) -> None:
            mechanism, _, response = arg.partition(" ")
            ok = mechanism.upper() == "PLAIN" and base64.b64decode(response) == b"\0u@example.test\0pw"
            self.send("235 2.7.0 ok" if ok else "535 5.7.8 no")

    with Servers() as servers:
        address = servers.start(ScriptedServer(PlainAuth)).address
        run = run_suite("--smtp-target", address, "--smtp-auth", "u@example.test:pw", "-k", "plain-initial-response",
                        paths=[str(REPO / "scenarios" / "rfc4954" / "4-auth-command.yaml")])
    result = run.result("rfc4954-4-plain-initial-response")
    assert result["outcome"] == "pass", result["message"]
    events = [e["data"] for e in result["transcript"] if e["dir"] == "*"]
    assert "STARTTLS not offered: the dialogue goes on in plaintext" in events
