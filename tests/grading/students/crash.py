"""A student's server that crashes on its 3rd connection (the suite's readiness check and probe are the
first two): it greets that connection, then exits with status 1 as soon as the client speaks or leaves.

Otherwise it answers 250 to everything (221 and close to QUIT): not a good server, but never reached.
Usage: python3 crash.py --port PORT
"""

import os
import socket
import sys
import threading


def serve(conn: socket.socket, number: int) -> None:
    with conn:
        conn.sendall(b"220 crash.example ESMTP\r\n")
        buf = b""
        while True:
            data = conn.recv(4096)
            if number == 3:
                os._exit(1)
            if not data:
                return
            buf += data
            while b"\r\n" in buf:
                line, buf = buf.split(b"\r\n", 1)
                if line.upper().startswith(b"QUIT"):
                    conn.sendall(b"221 bye\r\n")
                    return
                conn.sendall(b"250 OK\r\n")


def main() -> None:
    port = int(sys.argv[sys.argv.index("--port") + 1])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    count = 0
    while True:
        conn, _ = listener.accept()
        count += 1
        threading.Thread(target=serve, args=(conn, count), daemon=True).start()


if __name__ == "__main__":
    main()
