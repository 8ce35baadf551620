"""A student's server that greets and then never answers anything (it reads and discards input).
Usage: python3 hang.py --port PORT
"""

import socket
import sys
import threading


def serve(conn: socket.socket) -> None:
    with conn:
        conn.sendall(b"220 hang.example ESMTP\r\n")
        while conn.recv(4096):
            pass


def main() -> None:
    port = int(sys.argv[sys.argv.index("--port") + 1])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
