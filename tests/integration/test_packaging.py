"""The wheel carries everything a user needs: the catalog, schemas, the requirements inventory, templates."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support import REPO


def test_wheel_ships_catalog_and_data(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("smtp_conformance-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n for n in names if n.startswith("conformance/scenarios/") and n.endswith(".yaml")}
    in_repo = {f"conformance/scenarios/{p.relative_to(REPO / 'scenarios').as_posix()}"
               for p in (REPO / "scenarios").rglob("*.yaml")}
    assert shipped == in_repo
    for needed in ("conformance/data/requirements.json", "conformance/schema/scenario.schema.json",
                   "conformance/schema/results.schema.json", "conformance/report/templates/report.html.j2",
                   "conformance/builtin.py"):
        assert needed in names, needed
    # the RFC texts that `validate` checks quotes against, byte for byte as in the repository
    rfc_dir = REPO / "conformance" / "data" / "rfc"
    texts = sorted(rfc_dir.glob("rfc*.txt"))
    assert len(texts) >= 18 and "conformance/data/rfc/README.md" in names
    for text in texts:
        member = f"conformance/data/rfc/{text.name}"
        assert member in names, member
        assert zipfile.ZipFile(wheel).read(member) == text.read_bytes(), member
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "smtp-conformance = conformance.cli:main" in text and "smtp_conformance = conformance.plugin" in text
