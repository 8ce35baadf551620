"""A student's server that leaves processes behind. Before serving it forks
  * a child that ignores SIGTERM and stays in the server's process tree (SIGKILL is needed), and
  * a daemon the classic way (fork, setsid, fork, exit): it ignores SIGTERM too and, reparented away
    from the server, is in neither its process tree nor its process group nor its session.
The server itself is tests/servers/faulty.py without faults, so it scores full marks.
Usage (from the repository root): python3 tests/grading/students/fork.py --port PORT
"""

import os
import signal
import sys
import time


def linger() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(60)


def main() -> None:
    port = sys.argv[sys.argv.index("--port") + 1]
    if os.fork() == 0:
        linger()
    daemon = os.fork()
    if daemon == 0:
        os.setsid()
        if os.fork() == 0:
            linger()
        os._exit(0)
    os.waitpid(daemon, 0)
    os.execv(sys.executable, [sys.executable, "-m", "tests.servers.faulty", "--port", port])


if __name__ == "__main__":
    main()
