"""Read-only copies of students' folders are bounded: never the copies' own folder, never past MAX_COPY."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conformance.grading import reach


def test_a_copy_never_contains_the_folder_holding_the_copies(tmp_path: Path) -> None:
    source = tmp_path / "p"
    source.mkdir()
    (source / "server.py").write_text("print('hi')\n")
    holder = source / "smtpc-grade-code-x"  # e.g. TMPDIR inside the student's folder
    holder.mkdir()
    copy = reach._read_only_copy(source, holder)
    assert sorted(os.listdir(copy)) == ["server.py"]


def test_a_copy_stops_at_the_size_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "big"
    source.mkdir()
    for n in range(5):
        (source / f"f{n}").write_bytes(b"x" * 400)
    monkeypatch.setattr(reach, "MAX_COPY", 1000)
    holder = tmp_path / "holder"
    holder.mkdir()
    with pytest.raises(reach._TooLarge):
        reach._read_only_copy(source, holder)
    assert os.listdir(holder) == []  # the partial copy is removed


def test_a_copy_leaves_out_devices_and_fifos(tmp_path: Path) -> None:
    source = tmp_path / "rootfs"
    (source / "dev").mkdir(parents=True)
    os.mkfifo(source / "dev" / "pipe")  # read forever, like a container rootfs's /dev/zero
    (source / "server.py").write_text("print('hi')\n")
    holder = tmp_path / "holder"
    holder.mkdir()
    copy = reach._read_only_copy(source, holder)
    assert sorted(os.listdir(copy)) == ["dev", "server.py"] and os.listdir(copy / "dev") == []
