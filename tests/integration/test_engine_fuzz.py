"""Servers that answer with random, broken bytes: the engine always reaches a verdict, never an ERROR or a crash."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time

from tests.support import REPO, run_suite

FRAGMENTS = [b"220 ok\r\n", b"250 ok\r\n", b"250-a\r\n", b"250-b\n", b"354 go\r\n", b"221 bye\r\n", b"503 no\r\n",
             b"421 closing\r\n", b"25", b"0 ok\r\n", b"\r\n", b"\n", b"\x00\xff", b"<script>", b"9999 x\r\n",
             b"250 " + b"x" * 700 + b"\r\n", b"250-" * 50, b"abc\r\n", b" \r\n", b"2\r\n"]


def serve(conn: socket.socket, rng: random.Random, stop: threading.Event) -> None:
    with conn:
        conn.settimeout(0.3)
        try:
            if rng.random() < 0.9:  # mostly a proper greeting, so that dialogues get going
                conn.sendall(b"220 fuzz.example.test ESMTP\r\n")
                with contextlib.suppress(TimeoutError):
                    conn.recv(4096)
            for _ in range(rng.randint(1, 12)):
                if stop.is_set():
                    return
                action = rng.random()
                if action < 0.05:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    return  # reset
                if action < 0.10:
                    return  # clean close
                if action < 0.15:
                    time.sleep(rng.uniform(0, 0.4))  # a pause
                conn.sendall(b"".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 4))))
                with contextlib.suppress(TimeoutError):
                    conn.recv(4096)
        except OSError:
            pass


def start(seed: int, stop: threading.Event) -> int:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    rng = random.Random(seed)

    def accept() -> None:
        with listener:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                threading.Thread(target=serve, args=(conn, random.Random(rng.random()), stop), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def test_random_servers_always_get_verdicts() -> None:
    stop = threading.Event()
    try:
        ports = [start(seed, stop) for seed in range(12)]
        args = [a for i, p in enumerate(ports) for a in ("--smtp-target", f"r{i}=127.0.0.1:{p}")]
        run = run_suite(*args, "--smtp-timeout", "1", paths=[str(REPO / "tests" / "corpus" / "engine" / "scenarios"
                                                                / "features.yaml")], timeout=300)
    finally:
        stop.set()
    assert run.exit_code in (0, 1), run.stdout[-3000:] + run.stderr[-2000:]
    assert run.document is not None
    outcomes = {r["outcome"] for r in run.document["results"]}
    assert "error" not in outcomes, [(r["target"], r["id"], r["message"]) for r in run.document["results"]
                                      if r["outcome"] == "error"]
    assert len(run.document["results"]) == 12 * 11
