"""Every broken scenario in tests/corpus/scenarios gives `file:line: problem`, exit 2, no traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.loader import Loader, load_requirement_ids

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "scenarios"
CASES = sorted(p for p in CORPUS.glob("*.yaml") if not p.name.startswith("_"))


def expectation(path: Path) -> tuple[int | None, str]:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    match = re.match(r"# expect: (?:(\d+): )?(.*)$", first)
    assert match, f"{path.name}: first line must be '# expect: [LINE: ]TEXT'"
    return (int(match.group(1)) if match.group(1) else None), match.group(2)


def test_corpus_has_many_kinds() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_problem_names_file_line_and_what(path: Path) -> None:
    line, text = expectation(path)
    _, problems = Loader(load_requirement_ids(), check_quotes=True).load_file(path)
    assert problems, "the loader accepted a broken file"
    rendered = [str(p) for p in problems]
    for problem in rendered:
        assert re.match(r"^\S+\.yaml:\d+: \S", problem), problem
        assert "\n" not in problem and "Traceback" not in problem
    wanted = [p for p in problems if text in p.message]
    assert wanted, f"no problem mentions {text!r}: {rendered}"
    if line is not None:
        assert any(p.line == line for p in wanted), f"expected line {line}: {rendered}"


def test_cli_validate_exit_2_one_line_each() -> None:
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "validate", str(CORPUS)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line and not line.endswith("problem(s)")]
    assert len(lines) >= len(CASES)
    assert all(re.match(r"^\S+\.yaml:\d+: ", line) for line in lines), lines


def test_pytest_collection_reports_the_same_lines(tmp_path: Path) -> None:
    """Under plain pytest a broken file is a collection error: exit 2, our one-liner, no traceback."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "broken.yaml").write_bytes((CORPUS / "typo-step-key.yaml").read_bytes())
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(folder)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "broken.yaml:10: steps[1]: unknown key 'sned'" in proc.stdout
    assert "Traceback" not in proc.stdout


def test_run_refuses_broken_scenarios_before_starting_anything(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--scenarios",
                           str(CORPUS / "bad-level.yaml"), "--json", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "bad-level.yaml:6: level: 'MUSTN'" in proc.stderr
    assert not (tmp_path / "r.json").exists()


def test_bad_targets_file_is_a_usage_error(tmp_path: Path) -> None:
    targets = tmp_path / "targets.yaml"
    targets.write_text("targets:\n  - label: a\n    adress: 127.0.0.1:25\n")
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--targets", str(targets)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"{targets}:3: " in proc.stderr and "adress" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("spec", ["nonsense", "cmd:server-without-port", "host:99999", ""])
def test_bad_target_spec_is_a_usage_error(spec: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--target", spec],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("--target: ")
    assert "Traceback" not in proc.stderr
