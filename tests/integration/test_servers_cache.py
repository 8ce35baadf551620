"""The servers' cache lives outside the checkout, so a checkout under a private (0700) folder still works.

Exim re-executes itself as Debian-exim from the cache; when the cache was `.cache/servers` inside the
checkout, a clone in a `mktemp -d` folder (or in /root) failed with "is not reachable by user
'Debian-exim'" (issue 13). These tests clone the repository into such a folder and start Exim from there.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support import REPO, SERVERS, free_port, missing

CACHE_SH = SERVERS / "cache.sh"


def default_cache(env: dict[str, str], user: str | None = None) -> str:
    # the function's text, not its path: the unprivileged user may not reach the checkout
    cmd = ["bash", "-c", CACHE_SH.read_text() + "\nsrv_default_cache"]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", "--regid=65534", "--clear-groups", *cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=30).stdout.strip()


def test_default_cache_is_outside_any_checkout() -> None:
    base = {"PATH": os.environ["PATH"]}
    assert default_cache({**base, "SMTP_SERVERS_CACHE": "/srv/c"}) == "/srv/c"
    if os.getuid() != 0:
        home = os.environ["HOME"]
        assert default_cache({**base, "HOME": home}) == f"{home}/.cache/smtp-conformance/servers"
        return
    assert default_cache({**base, "HOME": "/root"}) == "/var/cache/smtp-conformance/servers"
    # an unprivileged user gets the XDG cache, its own HOME's .cache without XDG_CACHE_HOME
    assert default_cache({**base, "HOME": "/h", "XDG_CACHE_HOME": "/x"}, "nobody") == "/x/smtp-conformance/servers"
    assert default_cache({**base, "HOME": "/h"}, "nobody") == "/h/.cache/smtp-conformance/servers"


def clone_into_private_folder() -> Path:
    """A clone of this repository in a fresh mode-0700 folder, with the work tree's scripts/servers on top
    (so uncommitted changes to the scripts are what is tested)."""
    private = Path(tempfile.mkdtemp(prefix="smtpc-clone-"))
    assert private.stat().st_mode & 0o777 == 0o700
    clone = private / "smtp-conformance"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)], check=True,
                   capture_output=True, timeout=300)
    shutil.rmtree(clone / "scripts" / "servers")
    shutil.copytree(SERVERS, clone / "scripts" / "servers", symlinks=True)
    return clone


def test_exim_starts_from_a_clone_in_a_0700_folder() -> None:
    if os.getuid() != 0:
        pytest.skip("Exim runs as Debian-exim: the servers need root")
    env = {k: v for k, v in os.environ.items() if k != "SMTP_SERVERS_CACHE"}  # the default cache
    if subprocess.run([str(SERVERS / "exim"), "check"], env=env, capture_output=True, timeout=60).returncode:
        missing("exim is not installed in the default cache (scripts/servers/install exim)")
    clone = clone_into_private_folder()
    statedir = Path(tempfile.mkdtemp(prefix="smtpc-exim-", dir="/tmp"))
    exim = clone / "scripts" / "servers" / "exim"
    try:
        port = free_port()
        started = subprocess.run([str(exim), "start", str(port), str(statedir)], env=env, capture_output=True,
                                 text=True, timeout=90)
        assert started.returncode == 0, started.stderr
        assert "not reachable" not in started.stderr
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.sendmail("a@example.net", ["user@example.test"], b"Subject: clone\r\n\r\nfrom a 0700 clone\r\n")
        new = statedir / "Maildir" / "new"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(new.iterdir()):
            time.sleep(0.2)
        assert [p for p in new.iterdir() if b"from a 0700 clone" in p.read_bytes()]
    finally:
        subprocess.run([str(exim), "stop", str(statedir)], env=env, capture_output=True, timeout=60)
        shutil.rmtree(statedir, ignore_errors=True)
        shutil.rmtree(clone.parent, ignore_errors=True)
