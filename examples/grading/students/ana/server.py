"""Example student 'ana' (see ../labsmtp.py): no deliberate mistakes."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from labsmtp import run  # noqa: E402

run(set())
