"""Mutated scenario files never crash the loader: every outcome is scenarios or `file:line: problem` lines."""

from __future__ import annotations

import random
from pathlib import Path

from conformance.loader import Loader, load_requirement_ids
from conformance.targets import load_targets_file

REPO = Path(__file__).resolve().parents[2]
SEEDS = sorted((REPO / "scenarios" / "rfc5321").glob("*.yaml"))[:12] + [
    REPO / "tests" / "corpus" / "engine" / "scenarios" / "features.yaml"]
PIECES = ["\n", ":", "- ", "  ", "{", "}", "[", "]", "'", '"', "\\x", "\\q", "{rcpt}", "{nope}", "&a", "*a",
          "!!python/object:os.system", "\t", "\x00", "é", "expect: 999", "send:", "use: nothing", "level: MAY",
          "steps: 3", "- expect: {code: [1]}", "repeat: -1", "timeout: 0", "---\n", "<<: *a", "2026-13-40"]


def mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 4)):
        pos = rng.randrange(len(text) + 1)
        action = rng.random()
        if action < 0.4:
            text = text[:pos] + rng.choice(PIECES) + text[pos:]
        elif action < 0.7:
            text = text[:pos] + text[pos + rng.randint(1, 20):]
        else:
            line_start = text.rfind("\n", 0, pos) + 1
            text = text[:line_start] + " " * rng.randint(1, 3) + text[line_start:]
    return text


def test_mutated_scenarios_give_problems_not_tracebacks(tmp_path: Path) -> None:
    rng = random.Random(20261127)
    loader = Loader(load_requirement_ids())
    folder = tmp_path / "scenarios"
    folder.mkdir()
    for n in range(400):
        seed = rng.choice(SEEDS)
        path = folder / f"m{n}.yaml"
        path.write_text(mutate(seed.read_text(), rng), encoding="utf-8")
        scenarios, problems = loader.load_file(path)  # must not raise
        for problem in problems:
            assert "\n" not in str(problem) and problem.line >= 0
        assert scenarios or problems


def test_mutated_targets_files_give_problems_not_tracebacks(tmp_path: Path) -> None:
    rng = random.Random(7)
    seed = "targets:\n  - label: a\n    address: 127.0.0.1:2525\n    domain: example.test\n  - builtin: true\n"
    for n in range(200):
        path = tmp_path / f"t{n}.yaml"
        path.write_text(mutate(seed, rng), encoding="utf-8")
        targets, problems = load_targets_file(path)  # must not raise
        assert all("\n" not in str(p) for p in problems)
