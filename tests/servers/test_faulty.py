"""Raw-socket checks of tests/servers/faulty.py: the default (correct) mode
and the defining behaviour of every fault."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.servers import faulty
from tests.servers.faulty import FAULTS, XSS, start_in_thread

HOST = "faulty.example.test"
GREETING = f"220 {HOST} ESMTP faulty\r\n".encode()
EHLO_LINES = [
    f"250-{HOST}",
    "250-PIPELINING",
    "250-SIZE 10485760",
    "250-8BITMIME",
    "250-ENHANCEDSTATUSCODES",
    "250 HELP",
]
ROOT = Path(__file__).resolve().parents[2]
ENH_RE = re.compile(r"^(\d)\d\d[ -](\d)\.\d{1,3}\.\d{1,3} ")


class Reply:
    def __init__(self, lines: list[bytes]) -> None:
        self.raw = b"".join(lines)
        self.lines = [ln.rstrip(b"\r\n").decode("utf-8", "replace") for ln in lines]
        self.code = int(self.lines[-1][:3])

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def __repr__(self) -> str:
        return f"Reply({self.lines!r})"


class Client:
    def __init__(self, addr: tuple[str, int], timeout: float = 3.0) -> None:
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def line(self) -> bytes:
        while b"\n" not in self.buf:
            self._fill()
        idx = self.buf.index(b"\n") + 1
        out, self.buf = self.buf[:idx], self.buf[idx:]
        return out

    def reply(self) -> Reply:
        lines = []
        while True:
            ln = self.line()
            lines.append(ln)
            if len(ln) < 4 or ln[3:4] != b"-":
                return Reply(lines)

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def cmd(self, line: str) -> Reply:
        self.send(line + "\r\n")
        return self.reply()

    def greet(self) -> Reply:
        r = self.reply()
        assert r.code == 220, r
        return r

    def ehlo(self) -> Reply:
        self.greet()
        r = self.cmd("EHLO client.example")
        assert r.code == 250, r
        return r

    def silent(self, wait: float = 0.3) -> bool:
        """True if nothing arrives within ``wait`` seconds (connection open)."""
        if self.buf:
            return False
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(3.0)
        self.buf += data
        return False

    def end_state(self, wait: float = 2.0) -> str:
        """'eof', 'reset', 'open' (nothing within ``wait``) or 'data'."""
        if self.buf:
            return "data"
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return "open"
        except ConnectionResetError:
            return "reset"
        self.buf += data
        return "data" if data else "eof"


@pytest.fixture
def serve():
    stops = []
    clients = []

    def start(*faults: str, **kw) -> Client:
        host, port, stop = start_in_thread(list(faults), **kw)
        stops.append(stop)
        start.addr = (host, port)
        c = Client((host, port))
        clients.append(c)
        return c

    def connect() -> Client:
        c = Client(start.addr)
        clients.append(c)
        return c

    start.connect = connect
    yield start
    for c in clients:
        c.close()
    for stop in stops:
        stop()


def stored(maildir: Path) -> list[bytes]:
    files = sorted((maildir / "new").iterdir())
    return [_body(f.read_bytes()) for f in files]


def _body(msg: bytes) -> bytes:
    """Strip the Return-Path and the 3-line Received header the server adds."""
    assert msg.startswith(b"Return-Path: <")
    lines = msg.split(b"\r\n", 4)
    assert lines[1].startswith(b"Received: from ")
    return lines[4]


def transaction(c: Client, body: bytes = b"Subject: t\r\n\r\nhello\r\n") -> Reply:
    assert c.cmd("MAIL FROM:<sender@client.example>").code == 250
    assert c.cmd("RCPT TO:<user@example.test>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(body + b".\r\n")
    return c.reply()


# ---------------------------------------------------------------- default


def test_greeting_and_ehlo(serve):
    c = serve()
    assert c.line() == GREETING
    r = c.cmd("EHLO client.example")
    assert r.lines == EHLO_LINES
    assert r.raw.count(b"\r\n") == len(EHLO_LINES)


def test_helo_and_missing_arguments(serve):
    c = serve()
    c.greet()
    assert c.cmd("EHLO").code == 501
    assert c.cmd("HELO ").code == 501
    r = c.cmd("HELO client.example")
    assert r.lines == [f"250 {HOST}"]


def test_before_helo(serve):
    c = serve()
    c.greet()
    for line in ("MAIL FROM:<a@client.example>", "RCPT TO:<user@example.test>", "DATA"):
        assert c.cmd(line).code == 503, line
    assert c.cmd("RSET").code == 250
    assert c.cmd("NOOP").code == 250
    assert c.cmd("HELP").code == 214
    assert c.cmd("VRFY user").code == 252
    assert c.cmd("EXPN list").code == 502


def test_sequencing(serve):
    c = serve()
    c.ehlo()
    assert c.cmd("RCPT TO:<user@example.test>").code == 503
    assert c.cmd("DATA").code == 503
    assert c.cmd("MAIL FROM:<a@client.example>").code == 250
    assert c.cmd("MAIL FROM:<a@client.example>").code == 503
    assert c.cmd("DATA").code == 503
    assert c.cmd("RCPT TO:<user@example.test>").code == 250
    assert c.cmd("DATA x").code == 501
    assert c.cmd("DATA").code == 354
    c.send(".\r\n")
    assert c.reply().code == 250
    # transaction reset after DATA
    assert c.cmd("RCPT TO:<user@example.test>").code == 503


def test_rset_and_ehlo_reset_transaction(serve):
    c = serve()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@client.example>").code == 250
    assert c.cmd("RSET").code == 250
    assert c.cmd("RCPT TO:<user@example.test>").code == 503
    assert c.cmd("MAIL FROM:<a@client.example>").code == 250
    assert c.cmd("EHLO again.example").code == 250
    assert c.cmd("RCPT TO:<user@example.test>").code == 503
    assert c.cmd("RSET x").code == 501


@pytest.mark.parametrize(
    "arg",
    [
        "FROM:a@client.example",
        "FROM:<a@client.example",
        "FROM:<a b@client.example>",
        "FROM:<@>",
        "FROM:<a@>",
        "FROM:<a@b..example>",
        "FROM:<a..b@client.example>",
        "FROM:<a@-b.example>",
        "FROM:<a@[300.1.1.1]>",
        "FROM:<a@[IPv6:zz::1]>",
        "FROM:<postmaster>",
        "FROM:<a@client.example>SIZE=1",
        "FROM:<a@client.example> SIZE=x",
        "FROM:<a@client.example> BODY=9BIT",
        "FROM:<a@client.example> =x",
        "FROM:<\u00e9@client.example>",
        "TO:<a@client.example>",
        "",
    ],
)
def test_mail_syntax_errors(serve, arg):
    c = serve()
    c.ehlo()
    r = c.cmd(f"MAIL {arg}".rstrip())
    assert r.code == 501, r


@pytest.mark.parametrize(
    "arg",
    [
        "FROM:<>",
        "from:<a@client.example>",
        "FROM: <a@client.example>",
        "FROM:<a.b+c@sub.client.example>",
        'FROM:<"a b>c"@client.example>',
        "FROM:<a@[127.0.0.1]>",
        "FROM:<a@[IPv6:::1]>",
        "FROM:<@r1.example,@r2.example:a@client.example>",
        "FROM:<a@client.example> SIZE=100 BODY=8BITMIME",
        "FROM:<> BODY=7BIT",
    ],
)
def test_mail_accepted(serve, arg):
    c = serve()
    c.ehlo()
    r = c.cmd(f"MAIL {arg}")
    assert r.code == 250, r


def test_unknown_parameters_555(serve):
    c = serve()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@client.example> FOO=bar").code == 555
    assert c.cmd("MAIL FROM:<a@client.example>").code == 250
    assert c.cmd("RCPT TO:<user@example.test> NOTIFY=NEVER").code == 555
    assert c.cmd("RCPT TO:<user@example.test> bad=").code == 501


def test_recipients(serve):
    c = serve()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@client.example>").code == 250
    for ok in (
        "<postmaster>",
        "<POSTMASTER>",
        "<PostMaster@example.test>",
        "<postmaster@EXAMPLE.TEST>",
        "<user@example.test>",
        "<@relay.example:user@example.test>",
    ):
        r = c.cmd(f"RCPT TO:{ok}")
        assert r.code == 250 and r.lines[-1].startswith("250 2.1.5 "), (ok, r)
    for relay in ("<user@other.example>", "<postmaster@other.example>", "<u@[127.0.0.1]>"):
        r = c.cmd(f"RCPT TO:{relay}")
        assert r.code == 550 and r.lines[-1].startswith("550 5.7.1 "), (relay, r)
    assert c.cmd("RCPT TO:user@example.test").code == 501
    assert c.cmd("RCPT TO:<postmaster").code == 501


def test_thousand_recipients_then_452(serve):
    c = serve()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@client.example>").code == 250
    c.send("".join(f"RCPT TO:<u{i}@example.test>\r\n" for i in range(1001)))
    codes = [c.reply().code for _ in range(1001)]
    assert codes[:1000] == [250] * 1000
    r_last = codes[1000]
    assert r_last == 452
    assert c.cmd("RCPT TO:<postmaster>").lines == ["452 4.5.3 Too many recipients"]


def test_data_end_only_crlf_dot_crlf(serve, tmp_path):
    c = serve(maildir=tmp_path)
    c.ehlo()
    body = (
        b"Subject: smuggle\r\n\r\nstart\n.\nMAIL FROM:<x@client.example>\n"
        b"a\n.\r\nb\r\n.\nc\r.\rd\r.\r\ne\r\n\x00.\r\nf\r\n"
    )
    r = transaction(c, body)
    assert r.code == 250 and r.lines[0].startswith("250 2.0.0 ")
    assert c.silent(0.2)
    # only one dot-stuffed line in there: "\r\n.\nc..." loses its leading dot
    assert stored(tmp_path) == [body.replace(b"b\r\n.\nc", b"b\r\n\nc")]


def test_dot_unstuffing_and_maildir(serve, tmp_path):
    c = serve(maildir=tmp_path)
    c.ehlo()
    body = b"..leading\r\n...two\r\n.x\r\nmid.dle\r\n"
    assert transaction(c, body).code == 250
    assert transaction(c, b"").code == 250
    msgs = stored(tmp_path)
    assert msgs == [b".leading\r\n..two\r\nx\r\nmid.dle\r\n", b""]
    raw = sorted((tmp_path / "new").iterdir())[0].read_bytes()
    assert raw.startswith(b"Return-Path: <sender@client.example>\r\nReceived: from client.example")
    assert b"with ESMTP id" in raw and b"for <user@example.test>;" in raw


def test_long_text_line_accepted(serve, tmp_path):
    c = serve(maildir=tmp_path)
    c.ehlo()
    body = b"x" * 998 + b"\r\n" + b"y" * 5000 + b"\r\n"
    assert transaction(c, body).code == 250
    assert stored(tmp_path) == [body]


def test_size(serve):
    c = serve()
    c.ehlo()
    r = c.cmd("MAIL FROM:<a@client.example> SIZE=10485761")
    assert r.code == 552 and r.lines[0].startswith("552 5.3.4")
    assert c.cmd("MAIL FROM:<a@client.example> SIZE=10485760").code == 250
    assert c.cmd("RCPT TO:<user@example.test>").code == 250
    assert c.cmd("DATA").code == 354
    c.send((b"z" * 1022 + b"\r\n") * 10241 + b".\r\n")
    assert c.reply().code == 552
    assert c.cmd("RCPT TO:<user@example.test>").code == 503


def test_misc_commands(serve):
    c = serve()
    c.ehlo()
    assert c.cmd("NOOP").lines == ["250 2.0.0 Ok"]
    assert c.cmd("NOOP some argument").code == 250
    assert c.cmd("noop").code == 250
    assert c.cmd("eHlO x.example").code == 250
    assert c.cmd("VRFY user").code == 252
    assert c.cmd("VRFY").code == 501
    assert c.cmd("EXPN list").code == 502
    help_reply = c.cmd("HELP")
    assert help_reply.code == 214 and len(help_reply.lines) > 1
    assert c.cmd("FOO bar").code == 500
    assert c.cmd("").code == 500
    assert c.cmd("STARTTLS").code == 502
    assert c.cmd("TURN").code == 502


def test_command_line_limit(serve):
    c = serve()
    c.ehlo()
    assert c.cmd("NOOP " + "x" * 505).code == 250  # 512 octets with CRLF
    assert c.cmd("NOOP " + "x" * 506).code == 500
    assert c.cmd("NOOP " + "x" * 5000).code == 500
    assert c.cmd("NOOP").code == 250


def test_bare_lf_in_command_is_not_a_line_end(serve):
    c = serve()
    c.ehlo()
    c.send("NOOP\nNOOP\r\n")
    assert c.reply().code == 500
    assert c.silent(0.2)
    c.send("NOOP\n")
    assert c.silent(0.2)
    c.send("\r\n")
    assert c.reply().code == 500


def test_pipelining(serve):
    c = serve()
    c.ehlo()
    c.send(
        "MAIL FROM:<a@client.example>\r\nRCPT TO:<user@example.test>\r\nRCPT TO:<x@other.example>\r\nNOOP\r\n"
    )
    assert [c.reply().code for _ in range(4)] == [250, 250, 550, 250]


def test_enhanced_codes_everywhere(serve):
    c = serve()
    c.greet()
    seen = [c.cmd("NOOP")]  # before EHLO too (RFC 2034 section 4)
    c.cmd("EHLO x.example")
    for line in (
        "NOOP",
        "RSET",
        "VRFY u",
        "EXPN u",
        "HELP",
        "FOO",
        "RCPT TO:<u@example.test>",
        "MAIL FROM:<bad",
        "MAIL FROM:<a@b.example> X=1",
        "MAIL FROM:<a@b.example>",
        "RCPT TO:<u@other.example>",
        "RCPT TO:<u@example.test>",
        "NOOP " + "x" * 600,
    ):
        seen.append(c.cmd(line))
    assert c.cmd("DATA").code == 354
    c.send(".\r\n")
    seen.append(c.reply())
    seen.append(c.cmd("QUIT"))
    for r in seen:
        for ln in r.lines:
            m = ENH_RE.match(ln)
            assert m and m.group(1) == m.group(2), ln


def test_quit(serve):
    c = serve()
    c.ehlo()
    r = c.cmd("QUIT")
    assert r.lines == [f"221 2.0.0 {HOST} Bye"]
    assert c.end_state() == "eof"


def test_idle_timeout(serve):
    c = serve(idle_timeout=0.3)
    c.greet()
    r = c.reply()
    assert r.code == 421 and r.lines[0].startswith("421 4.4.2")
    assert c.end_state() == "eof"


def test_concurrent_connections(serve):
    first = serve()
    first.greet()
    clients = [serve.connect() for _ in range(60)]
    results = []

    def talk(cl: Client) -> None:
        cl.ehlo()
        results.append(cl.cmd("QUIT").code)

    threads = [threading.Thread(target=talk, args=(cl,)) for cl in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [221] * 60
    assert first.cmd("NOOP").code == 250


def test_unknown_fault_rejected():
    with pytest.raises(ValueError):
        start_in_thread(["no-such-fault"])


def test_every_fault_documented():
    readme = (Path(__file__).parent / "README.md").read_text()
    for name in FAULTS:
        assert f"``{name}``" in faulty.__doc__, name
        assert f"`{name}`" in readme, name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_and_sigterm(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.servers.faulty", "--port", str(port), "--fault", "xss,no-enhanced",
         "--maildir", str(tmp_path / "md"), "--domain", "cli.test"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                c = Client(("127.0.0.1", port))
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        assert XSS in c.greet().text
        c.cmd("EHLO x.example")
        assert c.cmd("MAIL FROM:<a@b.example>").code == 250
        assert c.cmd("RCPT TO:<someone@cli.test>").lines[0].startswith("250 Recipient ok")
        assert c.cmd("RCPT TO:<someone@example.test>").code == 550
        c.close()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert out == b"" and err == b""
    assert (tmp_path / "md" / "new").is_dir()


def test_cli_unknown_fault():
    proc = subprocess.run(
        [sys.executable, "-m", "tests.servers.faulty", "--port", "0", "--fault", "bogus"],
        cwd=ROOT, capture_output=True, timeout=10,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == b"" and b"bogus" in proc.stderr


# ----------------------------------------------------------------- faults


def test_no_greeting(serve):
    c = serve("no-greeting")
    assert c.silent(0.3)
    c.send("EHLO x.example\r\n")
    assert c.end_state(0.3) == "open"


def test_refuse_554(serve):
    c = serve("refuse-554")
    assert c.line() == b"554 no service\r\n"
    assert c.cmd("EHLO x.example").code == 503
    assert c.cmd("MAIL FROM:<a@b.example>").code == 503
    assert c.cmd("NOOP").code == 503
    assert c.cmd("QUIT").code == 221
    assert c.end_state() == "eof"


def test_flood(serve):
    c = serve("flood")
    got = b""
    while len(got) < 300_000:
        data = c.sock.recv(65536)
        assert data
        got += data
    assert set(got) == {ord("A")}


def test_endless_multiline(serve):
    c = serve("endless-multiline")
    for _ in range(3000):
        assert c.line() == f"220-{HOST} xxx\r\n".encode()


def test_reset(serve):
    c = serve("reset")
    c.greet()
    c.send("EHLO x.example\r\n")
    assert c.end_state() == "reset"


def test_reset_on_connect(serve):
    try:
        c = serve("reset-on-connect")
    except ConnectionResetError:  # the RST can beat connect() back to the client
        return
    assert c.end_state() == "reset"


def test_close_on_connect(serve):
    c = serve("close-on-connect")
    assert c.end_state() == "eof"


def test_xss(serve):
    c = serve("xss")
    g = c.line()
    assert g.startswith(f"220 {HOST} ".encode()) and XSS.encode() in g and g.endswith(b"\r\n")
    r = c.cmd("EHLO x.example")
    assert r.lines[0] == f"250-{HOST} {XSS}" and r.lines[1:] == EHLO_LINES[1:]
    r = c.cmd("NOOP")
    assert r.lines == [f"250 2.0.0 Ok {XSS}"]
    assert c.cmd("FOO").lines[0].startswith("500 5.5.1 ")


def test_garbage(serve):
    c = serve("garbage")
    assert c.line() == b"\x00\xff\xfe garbage\r\n"
    assert c.cmd("EHLO x.example").code == 250


def test_slow(serve):
    c = serve("slow")
    c.sock.settimeout(2)
    time.sleep(1.2)
    c.sock.setblocking(False)
    got = c.sock.recv(100)
    c.sock.setblocking(True)
    assert got[:1] == b"2" and 2 <= len(got) <= 4


def test_wrong_codes(serve):
    c = serve("wrong-codes")
    c.greet()
    assert c.cmd("MAIL FROM:<a@b.example>").code == 250  # before EHLO
    c.cmd("EHLO x.example")
    assert c.cmd("FOO").code == 250
    assert c.cmd("RCPT TO:<u@example.test>").code == 250
    assert c.cmd("DATA").code == 250
    assert c.cmd("RCPT TO:<u@other.example>").code == 250
    assert c.cmd("MAIL FROM:bad").code == 250


def test_bare_lf_replies(serve):
    c = serve("bare-lf-replies")
    assert c.line() == f"220 {HOST} ESMTP faulty\n".encode()
    r = c.cmd("EHLO x.example")
    assert b"\r" not in r.raw and r.raw.count(b"\n") == 6


def test_mixed_multiline(serve):
    c = serve("mixed-multiline")
    c.greet()
    r = c.cmd("EHLO x.example")
    codes = [ln[:3] for ln in r.lines]
    assert codes == ["250", "251", "252", "253", "254", "250"]


def test_no_domain_ehlo(serve):
    c = serve("no-domain-ehlo")
    c.greet()
    assert c.cmd("EHLO x.example").lines[0] == "250-Hello"


def test_no_sequencing(serve):
    c = serve("no-sequencing")
    c.ehlo()
    assert c.cmd("RCPT TO:<u@example.test>").code == 250
    assert c.cmd("MAIL FROM:<a@b.example>").code == 250
    assert c.cmd("MAIL FROM:<a@b.example>").code == 250
    c2 = serve.connect()
    c2.ehlo()
    assert c2.cmd("DATA").code == 354
    c2.send(".\r\n")
    assert c2.reply().code == 250


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\n.\r\n", b"\r\n.\n"])
def test_lf_ends_data(serve, tmp_path, fake_end):
    c = serve("lf-ends-data", maildir=tmp_path)
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@b.example>").code == 250
    assert c.cmd("RCPT TO:<u@example.test>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(b"first" + fake_end + b"MAIL FROM:<evil@b.example>\r\n")
    assert c.reply().code == 250  # end of data
    assert c.reply().code == 250  # the smuggled MAIL
    assert stored(tmp_path) == [b"first\r\n"]
    # commands still need CRLF
    c.send("NOOP\n")
    assert c.silent(0.2)


def test_lf_does_not_end_data_by_default(serve):
    c = serve()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@b.example>").code == 250
    assert c.cmd("RCPT TO:<u@example.test>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(b"first\n.\nMAIL FROM:<evil@b.example>\r\n")
    assert c.silent(0.2)
    c.send(b".\r\n")
    assert c.reply().code == 250
    assert c.silent(0.1)


def test_bare_lf_lines(serve, tmp_path):
    c = serve("bare-lf-lines", maildir=tmp_path)
    c.greet()
    c.send("EHLO x.example\nNOOP\n")
    assert c.reply().code == 250
    assert c.reply().code == 250
    c.send("MAIL FROM:<a@b.example>\nRCPT TO:<u@example.test>\nDATA\n")
    assert [c.reply().code for _ in range(3)] == [250, 250, 354]
    c.send("x\n.\n")
    assert c.reply().code == 250
    assert stored(tmp_path) == [b"x\r\n"]


def test_no_unstuff(serve, tmp_path):
    c = serve("no-unstuff", maildir=tmp_path)
    c.ehlo()
    assert transaction(c, b"..x\r\n").code == 250
    assert stored(tmp_path) == [b"..x\r\n"]


def test_short_limits(serve):
    local64, domain250 = "l" * 64, ".".join(["d" * 49] * 5)
    c = serve()
    c.ehlo()
    assert c.cmd(f"MAIL FROM:<{local64}@{domain250}>").code == 250
    assert c.cmd("NOOP " + "x" * 400).code == 250
    c = serve("short-limits")
    c.ehlo()
    assert c.cmd(f"MAIL FROM:<{'l' * 33}@b.example>").code == 501
    assert c.cmd(f"MAIL FROM:<a@{'d' * 30}.{'d' * 34}>").code == 501
    assert c.cmd("NOOP " + "x" * 300).code == 500
    assert c.cmd(f"MAIL FROM:<{'l' * 32}@b.example>").code == 250


def test_max_10_rcpts(serve):
    def rcpt_codes(c: Client, n: int) -> list[int]:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>").code == 250
        c.send("".join(f"RCPT TO:<u{i}@example.test>\r\n" for i in range(n)))
        return [c.reply().code for _ in range(n)]

    assert rcpt_codes(serve(), 100) == [250] * 100
    assert rcpt_codes(serve("max-10-rcpts"), 12) == [250] * 10 + [550, 550]


def test_no_quit_close(serve):
    c = serve("no-quit-close")
    c.ehlo()
    assert c.cmd("QUIT").code == 221
    assert c.end_state(0.3) == "open"
    assert c.cmd("NOOP").code == 250


def test_quit_no_reply(serve):
    c = serve("quit-no-reply")
    c.ehlo()
    c.send("QUIT\r\n")
    assert c.end_state() == "eof"


def test_no_postmaster(serve):
    c = serve("no-postmaster")
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@b.example>").code == 250
    assert c.cmd("RCPT TO:<Postmaster>").code == 550
    assert c.cmd("RCPT TO:<postmaster@example.test>").code == 550
    assert c.cmd("RCPT TO:<u@example.test>").code == 250


def test_no_null_sender(serve):
    c = serve("no-null-sender")
    c.ehlo()
    r = c.cmd("MAIL FROM:<>")
    assert r.code == 553 and r.lines[0].startswith("553 5.1.7")


def test_no_helo_check(serve):
    c = serve("no-helo-check")
    c.greet()
    assert c.cmd("MAIL FROM:<a@b.example>").code == 250
    assert c.cmd("RCPT TO:<u@example.test>").code == 250


def test_strict_pre_helo(serve):
    c = serve("strict-pre-helo")
    c.greet()
    for line in ("RSET", "NOOP", "HELP", "VRFY u", "EXPN u"):
        assert c.cmd(line).code == 503, line
    c.cmd("EHLO x.example")
    assert c.cmd("NOOP").code == 250
    assert c.cmd("RSET").code == 250


def test_no_rset_state(serve):
    c = serve("no-rset-state")
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@b.example>").code == 250
    assert c.cmd("RSET").code == 250
    assert c.cmd("RCPT TO:<u@example.test>").code == 250


def test_ehlo_no_reset(serve):
    c = serve("ehlo-no-reset")
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@b.example>").code == 250
    assert c.cmd("EHLO x.example").code == 250
    assert c.cmd("RCPT TO:<u@example.test>").code == 250


def test_data_no_reset(serve):
    c = serve("data-no-reset")
    c.ehlo()
    assert transaction(c).code == 250
    assert c.cmd("RCPT TO:<u@example.test>").code == 250
    assert c.cmd("DATA").code == 354


def test_no_enhanced(serve):
    c = serve("no-enhanced")
    c.ehlo()
    assert "250-ENHANCEDSTATUSCODES" in c.cmd("EHLO x.example").lines
    assert c.cmd("NOOP").lines == ["250 Ok"]
    assert c.cmd("FOO").lines == ["500 Command unrecognized"]


def test_enhanced_mismatch(serve):
    c = serve("enhanced-mismatch")
    c.ehlo()
    assert c.cmd("NOOP").lines == ["250 5.0.0 Ok"]
    assert c.cmd("MAIL FROM:<a@b.example>").code == 250
    assert c.cmd("RCPT TO:<u@other.example>").lines == ["550 2.7.1 Relaying denied"]


def _tls_client() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _starttls(c: Client, extra: bytes = b"") -> None:
    c.send(b"STARTTLS\r\n" + extra)
    r = c.reply()
    assert r.lines == ["220 2.0.0 Ready to start TLS"]
    assert not c.buf
    c.sock = _tls_client().wrap_socket(c.sock, server_hostname=HOST)


def test_starttls_correct(serve):
    c = serve("starttls")
    c.greet()
    assert c.cmd("STARTTLS").code == 503  # EHLO first
    r = c.cmd("EHLO x.example")
    assert "250-STARTTLS" in r.lines
    assert c.cmd("STARTTLS now").code == 501
    assert c.cmd("MAIL FROM:<a@b.example>").code == 250
    _starttls(c, b"NOOP\r\n")
    assert c.silent(0.3)  # the pipelined plaintext NOOP was discarded
    assert c.cmd("MAIL FROM:<a@b.example>").code == 503  # EHLO required again
    r = c.cmd("EHLO x.example")
    assert r.code == 250 and "250-STARTTLS" not in r.lines
    assert c.cmd("STARTTLS").code == 503
    assert transaction(c).code == 250
    assert c.cmd("QUIT").code == 221


def test_starttls_inject(serve):
    c = serve("starttls-inject")
    c.ehlo()
    _starttls(c, b"NOOP\r\n")
    assert c.reply().code == 250  # the plaintext NOOP executed inside TLS
    assert c.cmd("MAIL FROM:<a@b.example>").code == 503


def test_pipelining_drop(serve):
    c = serve("pipelining-drop")
    c.ehlo()
    c.send("NOOP\r\nRSET\r\nNOOP\r\n")
    assert c.reply().code == 250
    assert c.silent(0.3)
    assert c.cmd("NOOP").code == 250


def test_size_not_enforced(serve):
    c = serve("size-not-enforced")
    c.greet()
    assert "250-SIZE 1000" in c.cmd("EHLO x.example").lines
    assert c.cmd("MAIL FROM:<a@b.example> SIZE=50000").code == 250
    assert c.cmd("RCPT TO:<u@example.test>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(b"y" * 50000 + b"\r\n.\r\n")
    assert c.reply().code == 250


def test_reply_line_too_long(serve):
    c = serve("reply-line-too-long")
    c.ehlo()
    c.send("HELP\r\n")
    line = c.line()
    assert len(line) == 600 and line.startswith(b"214 2.0.0 ")
    assert c.cmd("NOOP").code == 250


def test_rcpt_aborts_transaction(serve):
    c = serve("rcpt-aborts-transaction")
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@b.example>").code == 250
    assert c.cmd("RCPT TO:<u@example.test>").code == 250
    assert c.cmd("RCPT TO:<u@other.example>").code == 550
    assert c.cmd("RCPT TO:<u@example.test>").code == 503


def test_no_998(serve):
    line998 = b"x" * 998 + b"\r\n"
    c = serve("no-998")
    c.ehlo()
    r = transaction(c, line998)
    assert r.code == 554
    assert transaction(c, b"x" * 997 + b"\r\n").code == 250


def test_combined_faults(serve):
    c = serve("xss", "no-enhanced", "bare-lf-replies")
    assert c.line().endswith(f"{XSS}\n".encode())
    c.send("NOOP\r\n")
    assert c.line() == f"250 Ok {XSS}\n".encode()


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_fault_starts_and_stops(fault):
    host, port, stop = start_in_thread([fault])
    try:
        with contextlib.suppress(ConnectionResetError), socket.create_connection((host, port), timeout=1):
            pass
    finally:
        t0 = time.monotonic()
        stop()
        stop()
        assert time.monotonic() - t0 < 2


def test_stop_closes_open_connections():
    host, port, stop = start_in_thread(["no-greeting"])
    c = Client((host, port))
    stop()
    assert c.end_state(1.0) in ("eof", "reset")
    c.close()


def test_starttls_failed_handshake_is_quiet(serve, capfd):
    c = serve("starttls")
    c.ehlo()
    assert c.cmd("STARTTLS").code == 220
    c.send(b"this is not a TLS ClientHello\r\n" * 4)
    assert c.end_state() in ("eof", "reset")
    c2 = serve.connect()
    c2.ehlo()
    assert c2.cmd("QUIT").code == 221
    out, err = capfd.readouterr()
    assert out == "" and err == ""
