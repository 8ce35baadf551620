"""A student's server that tells who it runs as: its greeting carries its uid, gid, groups, whether it can
see the grader's secret environment variable, the report folder and the other students' HOMEs; then it
closes the connection (so every other check fails fast).
Usage: python3 whoami.py --port PORT --peek PATH
"""

import os
import socket
import sys


def probe(path: str) -> str:
    try:
        os.listdir(path)
        return "readable"
    except FileNotFoundError:
        return "missing"
    except PermissionError:
        return "denied"


def main() -> None:
    port = int(sys.argv[sys.argv.index("--port") + 1])
    peek = sys.argv[sys.argv.index("--peek") + 1]
    home = os.environ.get("HOME", "")
    facts = {
        "uid": os.getuid(), "gid": os.getgid(), "groups": ",".join(map(str, os.getgroups())) or "-",
        "secret": os.environ.get("GRADING_TEST_SECRET", "-"), "out": probe(peek),
        "homes": probe(os.path.dirname(home)) if home else "-", "home": probe(home) if home else "-",
    }
    banner = "220 whoami " + " ".join(f"{k}={v}" for k, v in facts.items()) + "\r\n"
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(banner.encode())


if __name__ == "__main__":
    main()
