"""Generated documentation must match the scenarios and baselines it is generated from."""

from __future__ import annotations

import filecmp
from pathlib import Path

from conformance.catalog import load_requirements, write_catalog, write_deviations
from conformance.loader import Loader, default_scenario_paths, load_requirement_ids

REPO = Path(__file__).resolve().parents[2]


def _catalog():
    catalog = Loader(load_requirement_ids()).load_paths([REPO / "scenarios"])
    assert not catalog.problems, catalog.problems
    return catalog


def test_catalog_pages_are_current(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    assert default_scenario_paths() == [Path("scenarios")]
    catalog = Loader(load_requirement_ids()).load_paths([Path("scenarios")])
    written = write_catalog(catalog.scenarios, load_requirements(), tmp_path, REPO)
    for page in written:
        committed = REPO / "docs" / "catalog" / page.name
        assert committed.exists(), f"run `make docs`: {committed} is missing"
        assert filecmp.cmp(page, committed, shallow=False), f"run `make docs`: {committed} is out of date"


def test_known_deviations_is_current(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    catalog = Loader(load_requirement_ids()).load_paths([Path("scenarios")])
    out = tmp_path / "known-deviations.md"
    write_deviations(catalog.scenarios, REPO / "baselines", out)
    committed = REPO / "docs" / "known-deviations.md"
    assert committed.exists() and out.read_text() == committed.read_text(), "run `make docs`"
