"""The commands the README and docs/ mark as runnable (`<!-- runnable -->` before a ```sh block) run as written.

Each command runs from a scratch folder that looks like the repository's root (the venv, examples and
scenarios linked in), so the reports it writes do not touch the checkout's reports/. A command may find
FAILs (exit 1: the example students have deliberate mistakes) but must not be a usage error (exit 2) or
print a traceback.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support import REPO

MARK = re.compile(r"<!-- runnable -->\n```sh\n(.*?)```", re.S)


def runnable_commands() -> list[tuple[str, str]]:
    found = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for block in MARK.findall(doc.read_text()):
            joined = block.replace("\\\n", " ")
            for line in joined.splitlines():
                command = line.strip()
                if command and not command.startswith("#"):
                    found.append((doc.name, command))
    return found


COMMANDS = runnable_commands()


def test_the_readme_has_runnable_commands() -> None:
    assert any(doc == "README.md" and "grade" in cmd for doc, cmd in COMMANDS), COMMANDS


@pytest.mark.parametrize(("doc", "command"), COMMANDS, ids=[f"{d}:{c[:60]}" for d, c in COMMANDS])
def test_documented_command_runs(doc: str, command: str, tmp_path: Path) -> None:
    venv = REPO / ".venv"
    if not (venv / "bin" / "smtp-conformance").exists():
        pytest.skip("no .venv in the checkout (make install)")
    for name in (".venv", "examples", "scenarios"):
        (tmp_path / name).symlink_to(REPO / name)
    if command.startswith(". "):  # activating the venv: the other commands run inside it anyway
        assert (tmp_path / command[2:].strip()).exists()
        return
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", f". .venv/bin/activate && {command}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0, 1), f"{doc}: {command}\nexit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    if " run " in f" {command} ":
        assert (tmp_path / "reports" / "results.json").exists(), proc.stdout[-2000:]
