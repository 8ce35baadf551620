"""The container engine for the tests that need one (Podman through scripts/containers/setup, or a Docker engine).

`engine(unavailable)` runs scripts/containers/setup (where podman is installed, or under CI), applies its
`export` lines to this process and to testcontainers' configuration for the duration of the block, checks
that the engine answers and that the local images are there, and yields the exported environment. When
anything is missing it calls `unavailable(reason)`, which skips (or fails under CI) in the caller's way.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator

import pytest

from tests.support import REPO

SETUP = REPO / "scripts" / "containers" / "setup"
POSTFIX_IMAGE = "smtp-conformance/postfix:latest"
PYSMTP_IMAGE = "smtp-conformance/pysmtp:latest"
IMAGES = (POSTFIX_IMAGE, PYSMTP_IMAGE)  # built by scripts/containers/build-images


def parse_exports(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, _, value = words[1].partition("=")
            env[key] = value
    return env


@contextlib.contextmanager
def engine(unavailable: Callable[[str], None], *, ci: bool) -> Iterator[dict[str, str]]:
    """scripts/containers/setup's environment, applied to os.environ (and testcontainers' config) in the block."""
    env: dict[str, str] = {}
    if shutil.which("podman") or ci:
        try:
            proc = subprocess.run([str(SETUP)], capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            unavailable(f"scripts/containers/setup did not run: {exc}")
        if proc.returncode != 0:
            unavailable(f"scripts/containers/setup failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        env = parse_exports(proc.stdout)
        if "DOCKER_HOST" not in env:
            unavailable(f"scripts/containers/setup printed no DOCKER_HOST:\n{proc.stdout}")
    # else: no podman here; try whatever Docker engine the environment points at.
    mp = pytest.MonkeyPatch()
    try:
        for key, value in env.items():
            mp.setenv(key, value)
        import docker
        from testcontainers.core.config import ConnectionMode
        from testcontainers.core.config import testcontainers_config as tc_config

        if env:  # testcontainers reads its configuration when first imported, maybe before setenv
            mp.setattr(tc_config, "tc_host_override", env.get("TC_HOST", "127.0.0.1"))
            mp.setattr(tc_config, "connection_mode_override", ConnectionMode.docker_host)
            mp.setattr(tc_config, "ryuk_disabled", True)
        try:
            client = docker.from_env()
            client.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
            unavailable(f"no container engine answers (run scripts/containers/setup): {exc}")
        absent = []
        for image in IMAGES:
            try:
                client.images.get(image)
            except docker.errors.ImageNotFound:
                absent.append(image)
        client.close()
        if absent:
            unavailable(f"images missing: {', '.join(absent)} (run scripts/containers/build-images)")
        yield env
    finally:
        mp.undo()
