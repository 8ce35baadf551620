"""A student's server that greets properly, then answers every command with an endless multi-line reply
(`250-xxx…` lines, never a last line) until the client goes away; it also floods its own stderr.
Usage: python3 flood.py --port PORT
"""

import socket
import sys
import threading

LINE = b"250-" + b"x" * 70 + b"\r\n"


def serve(conn: socket.socket) -> None:
    with conn:
        try:
            conn.sendall(b"220 flood.example ESMTP\r\n")
            if not conn.recv(4096):
                return
            while True:
                conn.sendall(LINE * 500)
        except OSError:
            return


def main() -> None:
    port = int(sys.argv[sys.argv.index("--port") + 1])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    sys.stderr.write("flooding\n" * 100_000)  # about 900 kB of log
    sys.stderr.flush()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
